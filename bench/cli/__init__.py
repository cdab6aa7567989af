"""`tgrpo-bench` console script: one module per verb; verb modules import heavy packages only inside `run`.

Each verb module defines ``add_arguments(parser)`` and ``run(args) -> int``.
Errors the user can fix (unknown suite, bad task id, unwritable directory, ...) raise
:class:`UsageError`; they print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

VERBS: dict[str, tuple[str, str]] = {
    "eval": ("bench.cli.eval", "evaluate a policy on LIBERO under the pinned protocol"),
    "profile": ("bench.cli.profile", "time the advantage and loss kernels"),
    "train": ("bench.cli.train", "train SFT per suite or an online RL method per task"),
    "rewards": ("bench.cli.rewards", "multi-stage dense reward specs: generate, check, validate, key poses"),
    "demos": ("bench.cli.demos", "record scripted-expert demonstrations (LIBERO HDF5) and reference key poses"),
    "plot": ("bench.cli.plot", "learning curves of RL runs (PNG)"),
    "report": ("bench.cli.report", "RL runs before/after against their SFT baseline (markdown + JSON)"),
    "reproduce": ("bench.cli.reproduce", "the whole pipeline for a suite and profile, cached stage by stage"),
    "compare": ("bench.cli.compare", "our results against the paper's (or our recorded) numbers, cell by cell"),
    "check": ("bench.cli.check", "rerun the regression set and compare with expected_results/regression/"),
    "record": ("bench.cli.record", "record the regression references (refuses a dirty tree)"),
}


class UsageError(ValueError):
    """Bad input from the user: reported as one line, exit code 2."""


def int_list(text: str) -> list[int]:
    """argparse type for "0,3,7"."""
    try:
        return [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tgrpo-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (module_name, help_text) in VERBS.items():
        verb_parser = sub.add_parser(verb, help=help_text, description=help_text)
        verb_parser.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(verb_parser)
    return parser


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill`, `docker stop`: stop like Ctrl-C, worker processes included
    try:
        return int(module.run(args) or 0)
    except UsageError as err:
        print(f"tgrpo-bench {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tgrpo-bench {args.verb}: interrupted; finished results are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
