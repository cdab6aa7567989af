"""`tgrpo-bench compare`: our evaluations and RL runs against a reference (published or our own), cell by cell."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from bench.cli import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULT",
                        help="`tgrpo-bench eval` directory, RL run directory, or METHOD=DIR to name an evaluation's "
                             "method (e.g. sft=results/eval/sft_object)")
    parser.add_argument("--reference", default="paper",
                        help="paper, regression, or a path to a reference file or directory (default: paper)")
    parser.add_argument("--out", type=Path, help="write compare.md, cells.csv, claims.csv and one PNG per suite here")
    parser.add_argument("--profile", choices=("smoke", "small", "paper"), default=None,
                        help="profile of evaluations that record none (a plain `tgrpo-bench eval`, the SFT evaluation "
                             "of `make reproduce`); smoke / small get no tier. Default: compared at face value")
    parser.add_argument("--allow-mismatch", action="store_true",
                        help="pair results whose protocol or simulator versions differ (listed in the output)")


def run(args: argparse.Namespace) -> int:
    from bench.compare import (
        CompareError,
        build_cells,
        cell_rows,
        check_versions,
        load_result,
        markdown,
        ordering_claims,
        sweep_claims,
    )
    from bench.expected import ExpectedError, load_reference
    from tgrpo.rl.methods import method_names

    try:
        reference = load_reference(args.reference)
        known = set(method_names()) | {r.method for r in reference.rows}
        results = list({str(r.path.resolve()): r for r in (load_result(s, known, args.profile) for s in args.results)}.values())
        mismatches = check_versions(results, reference)
    except (CompareError, ExpectedError) as err:
        raise UsageError(str(err)) from err
    if mismatches and not args.allow_mismatch:
        raise UsageError(f"results differ in protocol or simulator versions ({mismatches[0]}); "
                         "pass --allow-mismatch to compare them anyway")
    cells = build_cells(results)
    rows = cell_rows(cells, reference)
    claims = ordering_claims(cells) + sweep_claims(cells)
    text = markdown(rows, claims, reference, mismatches)
    print(text)
    if args.out is not None:
        _write(args.out, text, rows, claims)
    return 0


def _write(out: Path, text: str, rows: list[dict], claims: list[dict]) -> None:
    import pandas as pd

    from bench.compare import plot_suites

    can_plot = importlib.util.find_spec("matplotlib") is not None  # not a dependency: PNGs only where installed
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(text)
        pd.DataFrame(rows).to_csv(out / "cells.csv", index=False)
        pd.DataFrame(claims).to_csv(out / "claims.csv", index=False)
        (out / "compare.json").write_text(json.dumps({"cells": rows, "claims": claims}, indent=2) + "\n")
        pngs = plot_suites(rows, out) if can_plot else []
    except OSError as err:
        raise UsageError(f"cannot write {out}: {err.strerror or err}") from err
    if not can_plot:
        print("matplotlib is not installed: no PNG written", file=sys.stderr)
    print(f"wrote {out}/compare.md, cells.csv, claims.csv, compare.json and {len(pngs)} PNG(s)")
