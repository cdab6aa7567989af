"""`tgrpo-bench report`: RL runs against the SFT evaluations they started from, as a markdown table and JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.cli import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="RL run directories (runs/rl/...)")
    parser.add_argument("--baseline", type=Path, nargs="+", required=True,
                        help="`tgrpo-bench eval` directories of the SFT checkpoint, one per task")
    parser.add_argument("--out", type=Path, help="write OUT.md and OUT.json (default: print only)")
    parser.add_argument("--allow-mismatch", action="store_true",
                        help="pair a run with a baseline whose protocol or simulator versions differ "
                             "(the differences are listed under the table)")


def run(args: argparse.Namespace) -> int:
    from bench.rl_pairs import build_rows
    from bench.rl_report import ReportError, commit_warning, markdown

    try:
        rows = build_rows(args.runs, args.baseline, args.allow_mismatch)
    except ReportError as err:
        raise UsageError(str(err)) from err
    if (warning := commit_warning(rows)) is not None:
        print(warning, file=sys.stderr)
    table = markdown(rows)
    print(table, end="")
    if args.out is not None:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.with_suffix(".md").write_text(table)
            args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
        except OSError as err:
            raise UsageError(f"cannot write {args.out}: {err.strerror or err}") from err
        print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")
    return 0
