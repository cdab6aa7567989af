"""Append-only JSON-lines files (attempt logs, RL metrics) read back after a possible kill."""

from __future__ import annotations

import json
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    """Every complete row of a JSON-lines file; a line cut by a kill is skipped; a missing file has no rows."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
