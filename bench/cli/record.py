"""`tgrpo-bench record`: run regression cases and write their references (docs/regression.md).

Refuses a dirty tree (modified or untracked files): a reference names the commit it was recorded at, so that
commit must be what ran. `--train-checkpoint` first makes the small SFT checkpoint again (only when its format
changed: the `sft` and `rl` cases guard what the stack does with fixed weights).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.cli import UsageError
from bench.cli.check import add_arguments as add_case_arguments
from bench.cli.check import selected_cases


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_case_arguments(parser)
    parser.add_argument("--train-checkpoint", action="store_true",
                        help="retrain the SFT checkpoint of the sft/rl cases first (demos + SFT, minutes)")


def run(args: argparse.Namespace) -> int:
    from bench.regression.checkpoint import train_checkpoint
    from bench.regression.measure import measure
    from bench.regression.references import write_reference
    from tgrpo.provenance import code_state, provenance

    cases = selected_cases(args)
    state = code_state()
    if state["git_dirty"] is not False:
        why = "has uncommitted changes" if state["git_dirty"] else "is not a git checkout"
        raise UsageError(f"the source tree {why}: commit first, so each reference names the code that made it")
    try:
        Path(args.refs).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create {args.refs}: {err}") from err
    if args.train_checkpoint:
        with tempfile.TemporaryDirectory(prefix="tgrpo-record-") as tmp:
            print(f"checkpoint: {train_checkpoint(args.refs, Path(tmp))}", file=sys.stderr)
    block = provenance()
    for case in cases:
        t0 = time.monotonic()
        values = measure(case, args.refs)
        path = write_reference(args.refs, case, values, time.monotonic() - t0,
                               {**block, "regression_case": case.name})
        print(f"recorded {case.name:18s} {time.monotonic() - t0:6.1f} s  {path}", flush=True)
    return 0
