"""`tgrpo-bench check`: rerun the regression set and compare with `expected_results/regression/` (docs/regression.md).

Exit code 0 when every case agrees, 1 on a mismatch (a readable diff with the recorded and installed versions),
2 on bad input (an unknown case, a missing, corrupt or stale reference file).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.cli import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.regression.cases import CASE_NAMES, REFERENCE_DIR

    parser.add_argument("--cases", default=None, help=f"comma-separated subset of: {', '.join(CASE_NAMES)}")
    parser.add_argument("--refs", type=Path, default=REFERENCE_DIR, help="reference directory "
                        "(default expected_results/regression)")


def selected_cases(args: argparse.Namespace) -> list:
    """The cases `--cases` names (all by default); UsageError for an unknown one."""
    from bench.regression.cases import select

    try:
        return select(None if args.cases is None else [n.strip() for n in args.cases.split(",") if n.strip()])
    except ValueError as err:
        raise UsageError(str(err)) from err


def run(args: argparse.Namespace) -> int:
    from bench.regression.compare import Mismatch, compare_values, render_diff
    from bench.regression.measure import measure
    from bench.regression.references import ReferenceError, read_reference
    from tgrpo.provenance import provenance

    cases = selected_cases(args)
    try:
        references = {case.name: read_reference(args.refs, case) for case in cases}  # all read before any run
    except ReferenceError as err:
        raise UsageError(str(err)) from err
    mismatches: list[Mismatch] = []
    started = time.monotonic()
    for case in cases:
        t0 = time.monotonic()
        try:
            found = compare_values(case.name, references[case.name]["values"], measure(case, args.refs),
                                   case.tolerance)
        except Exception as err:  # noqa: BLE001 (a case that cannot run on the installed stack is a regression)
            found = [Mismatch(case.name, "(run)", "ran", None, f"raised {type(err).__name__}: {err}")]
        mismatches += found
        print(f"{'ok' if not found else 'MISMATCH':8s} {case.name:18s} {time.monotonic() - t0:6.1f} s", flush=True)
    wall = time.monotonic() - started
    if not mismatches:
        print(f"check: all {len(cases)} cases agree with {args.refs} ({wall:.0f} s)")
        return 0
    failed = sorted({m.case for m in mismatches})
    print(f"\ncheck: {len(mismatches)} mismatching value(s) in {len(failed)} of {len(cases)} cases ({wall:.0f} s)\n")
    print(render_diff(mismatches, {c: references[c]["provenance"] for c in failed}, provenance()["packages"]))
    return 1
