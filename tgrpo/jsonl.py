"""The one reader of JSON-lines rows files (episode rows, RL metrics, attempt logs), which a kill or a hand edit may
have torn.

A line that is not a JSON object (a write cut by a kill, a hand edit, random bytes), or lacks a key the caller
requires, is never dropped in silence: a reader says so in one line on stderr. The writer of a file reads it with
``repair=True`` before appending to it: the bad lines move to the side file ``<name>.torn`` (one JSON object per
line: the file, the line number, the text) and the rows file is rewritten atomically with its valid lines only,
byte for byte, so the next append starts on a line of its own.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BadLine:
    """A line of a rows file that is not a row."""

    number: int  # 1-based line number in the file
    text: str  # the line without its newline; bytes that are not UTF-8 are backslash-escaped
    reason: str


@dataclass(frozen=True)
class Parsed:
    """A rows file split into its rows (each with its line number and bytes) and its bad lines."""

    rows: list[dict]
    numbers: list[int]
    raw: list[bytes]  # each row's line as read, newline included when the file had one
    bad: list[BadLine]
    ends_cleanly: bool  # empty, or ends with a newline: an append starts a new line


def parse_rows(path: Path, required: tuple[str, ...] = ()) -> Parsed:
    """Split `path` into rows and bad lines; blank lines are neither. A missing file has no rows."""
    path = Path(path)
    data = path.read_bytes() if path.exists() else b""
    parsed = Parsed([], [], [], [], not data or data.endswith(b"\n"))
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if not line.strip():
            continue
        text = line.rstrip(b"\r\n").decode("utf-8", errors="backslashreplace")
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            parsed.bad.append(BadLine(number, text, f"not JSON ({err})"))
            continue
        missing = [] if not isinstance(row, dict) else [k for k in required if k not in row]
        if not isinstance(row, dict) or missing:
            reason = f"lacks {', '.join(missing)}" if missing else f"a JSON {type(row).__name__}, not an object"
            parsed.bad.append(BadLine(number, text, reason))
            continue
        parsed.rows.append(row)
        parsed.numbers.append(number)
        parsed.raw.append(line)
    return parsed


def read_rows(path: Path, repair: bool = False, required: tuple[str, ...] = ()) -> list[dict]:
    """Every row of a JSON-lines file (a missing file has none); bad lines are reported in one line on stderr.

    repair: the caller writes this file: quarantine the bad lines to ``<path>.torn`` and rewrite the file
    atomically without them (also when only the last row lacks its newline). Without it the file is left as is.
    required: keys every row must have; a row without one counts as a bad line.
    """
    path = Path(path)
    parsed = parse_rows(path, required)
    if repair and (parsed.bad or not parsed.ends_cleanly):
        side = _quarantine(path, parsed)
        if parsed.bad:
            print(f"warning: {path}: {_lines(parsed.bad)} not a valid row ({parsed.bad[0].reason}); moved to "
                  f"{side}, {len(parsed.rows)} rows kept", file=sys.stderr)
    elif parsed.bad:
        print(f"warning: {path}: {_lines(parsed.bad)} not a valid row ({parsed.bad[0].reason}); skipped, "
              f"{len(parsed.rows)} rows read", file=sys.stderr)
    return parsed.rows


def _quarantine(path: Path, parsed: Parsed) -> Path:
    """Append `parsed`'s bad lines to ``<path>.torn`` (fsynced), then atomically replace `path` by its rows alone,
    each ending with a newline. Returns the side file's path."""
    side = path.with_name(path.name + ".torn")
    if parsed.bad:
        with side.open("a") as f:
            for bad in parsed.bad:
                f.write(json.dumps({"file": path.name, "line": bad.number, "reason": bad.reason,
                                    "text": bad.text}) + "\n")
            f.flush()
            os.fsync(f.fileno())
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in parsed.raw))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return side


def _lines(bad: list[BadLine]) -> str:
    numbers = [str(b.number) for b in bad]
    shown = ", ".join(numbers[:5]) + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")
    return f"line {shown} is" if len(bad) == 1 else f"lines {shown} are"
