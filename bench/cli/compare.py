"""`tgrpo-bench compare`: our evaluations and RL runs against a reference (published or our own), cell by cell."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULT",
                        help="`tgrpo-bench eval` directory, RL run directory, or METHOD=DIR to name an evaluation's "
                             "method (e.g. sft=results/eval/sft_object)")
    parser.add_argument("--reference", default="paper",
                        help="paper, ours, or a path to a reference file or directory (default: paper)")
    parser.add_argument("--out", type=Path, help="write compare.md, cells.csv, claims.csv and one PNG per suite here")
    parser.add_argument("--profile", choices=("smoke", "small", "paper"), default=None,
                        help="profile of evaluations that record none (a plain `tgrpo-bench eval`, the SFT evaluation "
                             "of `make reproduce`); smoke / small get no tier. Default: compared at face value")
    parser.add_argument("--allow-mismatch", action="store_true",
                        help="pair results whose protocol or simulator versions differ (listed in the output)")


def run(args: argparse.Namespace) -> int:
    from bench.compare import CompareError, run_compare, write_comparison
    from bench.expected import ExpectedError

    try:
        comparison = run_compare(args.results, args.reference, args.profile, args.allow_mismatch)
    except (CompareError, ExpectedError) as err:
        raise UsageError(str(err)) from err
    print(comparison.markdown)
    if args.out is not None:
        try:
            pngs = write_comparison(args.out, comparison)
        except OSError as err:
            raise UsageError(f"cannot write {args.out}: {err.strerror or err}") from err
        print(f"wrote {args.out}/compare.md, cells.csv, claims.csv, compare.json and {len(pngs)} PNG(s)")
    return 0
