"""Reference files: `expected_results/regression/<case>.json`, one per case, each with its provenance block.

    {"case": ..., "kind": ..., "params": {...}, "tolerance": 0.0, "values": {...}, "wall_s": ..., "provenance": {...}}

Reading checks that the file is there, is JSON of that shape, and was recorded for the case as it is defined now
(same kind and params); anything else is a `ReferenceError` (bad input, exit code 2), never a regression.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.regression.cases import Case

FIELDS = ("case", "kind", "params", "tolerance", "values", "provenance")


class ReferenceError(ValueError):
    """A missing, corrupt or stale reference file."""


def reference_path(reference_dir: Path, case: Case) -> Path:
    return Path(reference_dir) / f"{case.name}.json"


def read_reference(reference_dir: Path, case: Case) -> dict:
    path = reference_path(reference_dir, case)
    record = f"record it with `tgrpo-bench record --cases {case.name}`"
    if not path.exists():
        raise ReferenceError(f"no reference for case {case.name} at {path}; {record}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReferenceError(f"{path} is not a readable JSON reference ({err}); restore it from git or {record}") \
            from err
    missing = [f for f in FIELDS if not isinstance(data, dict) or f not in data]
    if missing:
        raise ReferenceError(f"{path} lacks {', '.join(missing)}; restore it from git or {record}")
    if not isinstance(data["values"], dict) or not isinstance(data["provenance"], dict):
        raise ReferenceError(f"{path}: 'values' and 'provenance' must be objects; restore it from git or {record}")
    if data["case"] != case.name or data["kind"] != case.kind or data["params"] != case.params:
        raise ReferenceError(f"{path} was recorded for {data['case']} ({data['kind']}, {data['params']}), not for "
                             f"the case as defined now ({case.kind}, {case.params}); {record}")
    return data


def write_reference(reference_dir: Path, case: Case, values: dict, wall_s: float, provenance: dict) -> Path:
    """Write (atomically) the reference of `case`."""
    path = reference_path(reference_dir, case)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"case": case.name, "kind": case.kind, "params": case.params, "tolerance": case.tolerance,
            "values": values, "wall_s": round(wall_s, 1), "provenance": provenance}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
    return path
