"""Our result cells as `expected_results/ours/` rows (`ours_row` in expected_results/schema.json): each with its
episodes, tasks, setting, profile and the provenance its episodes were measured with, so a later run can be compared
with it (`tgrpo-bench compare --reference ours`) and refused when its protocol or simulator versions differ."""

from __future__ import annotations

import json
import time
from pathlib import Path

SOURCE = "tgrpo-bench"


def ours_row(cell, setting_text: str, provenances: list[dict], version_keys: list[dict]) -> dict:
    """The row of one suite cell (`bench.compare.Cell`) from its episodes' provenance blocks and their version keys
    (`bench.compare.version_key`). ValueError when the episodes disagree on protocol or simulator versions."""
    if len({json.dumps(k, sort_keys=True) for k in version_keys}) != 1:
        raise ValueError(f"{cell.method} on {cell.suite}: its episodes differ in protocol or simulator versions")
    first = provenances[0]
    shas = sorted({(p.get("git_sha") or "unknown") + ("-dirty" if p.get("git_dirty") else "") for p in provenances})
    k, n = cell.successes, cell.episodes
    return {
        "table": "main", "method": cell.method, "label": f"{cell.method} ({cell.profile} profile, ours)",
        "suite": cell.suite, "setting": dict(cell.setting) or None, "profile": cell.profile,
        "task_ids": sorted(cell.tasks), "successes": k, "episodes": n, "value": round(100 * k / n, 2),
        "source": SOURCE, "git_sha": shas[0] if len(shas) == 1 else None,
        "packages": dict(first.get("packages", {})), "protocol": dict(first.get("protocol", {})),
        "recorded_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": f"{len(cell.dirs)} run(s), setting {setting_text}"
                + ("" if len(shas) == 1 else f"; measured at commits {', '.join(shas)}"),
    }


def write_ours_rows(path: Path, rows: list[dict]) -> Path:
    """The rows as a row file, validated against the schema before it is written."""
    from bench.expected import check_ours_rows

    data = {"kind": "ours", "rows": rows}
    check_ours_rows(data)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
