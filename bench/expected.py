"""Reference results (`expected_results/`): load, validate against `expected_results/schema.json`, fail in one line.

A reference is a directory of row files (``{"kind": "paper" | "ours", "rows": [...]}``, one row per cell) or
one such file; ``paper`` and ``ours`` name the committed directories. Row sources are ids defined in
``sources.json`` (beside the directory or one level up). The `expected_results/` directory is found, in order,
through ``$TGRPO_BENCH_EXPECTED``, beside the `bench` package (a checkout or an editable install), or in the current
directory (the container's working directory is the checkout). A reference given as a path is validated with the
``schema.json`` beside its ``sources.json`` when there is one, so a copy of `expected_results/` works anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import jsonschema

ENV_VAR = "TGRPO_BENCH_EXPECTED"
NAMED = ("paper", "ours")
SOURCES_FILE = "sources.json"
SCHEMA_FILE = "schema.json"


class ExpectedError(ValueError):
    """A reference cannot be found or breaks the schema; the message names the file, row and field."""


@dataclass(frozen=True)
class ReferenceRow:
    """One published (or recorded) cell. `value` is percent; `setting` {} when the method's defaults."""

    file: Path
    row: int  # 1-based position in its file
    table: str
    method: str
    label: str
    suite: str
    setting: dict
    value: float
    episodes: int | None
    source: str
    note: str
    packages: dict | None = None  # rows of ours: the versions they were measured with
    protocol: dict | None = None
    profile: str | None = None  # rows of ours: the profile and the tasks their episodes cover, so that a cell is
    task_ids: tuple[int, ...] | None = None  # judged only against a recorded cell of the same profile and tasks


@dataclass(frozen=True)
class Reference:
    name: str
    rows: tuple[ReferenceRow, ...]
    sources: dict[str, dict]


def expected_root() -> Path:
    """The `expected_results/` directory (see the module docstring for the search order)."""
    candidates = [Path(p) for p in [os.environ.get(ENV_VAR)] if p]
    candidates += [Path(__file__).resolve().parent.parent / "expected_results", Path.cwd() / "expected_results"]
    for path in candidates:
        if (path / SCHEMA_FILE).is_file():
            return path
    raise ExpectedError(f"no expected_results/ directory with {SCHEMA_FILE} found (looked in: "
                        f"{', '.join(map(str, candidates))}); set {ENV_VAR} to a checkout's expected_results/")


def _schema(root: Path | None = None) -> dict:
    return json.loads(((root or expected_root()) / SCHEMA_FILE).read_text())


def _validator(schema: dict, definition: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]})


def _first_error(validator: jsonschema.Draft202012Validator, instance) -> jsonschema.ValidationError | None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    return errors[0] if errors else None


def _field(error: jsonschema.ValidationError) -> str:
    """The field an error is about: its path below the row, or the missing / unexpected property."""
    path = [str(p) for p in error.absolute_path]
    if path:
        return ".".join(path)
    if error.validator == "required":
        return next(k for k in error.validator_value if k not in error.instance)
    if error.validator == "additionalProperties":
        return ", ".join(sorted(set(error.instance) - set(error.schema.get("properties", {}))))
    return "(row)"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ExpectedError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from err
    except OSError as err:
        raise ExpectedError(f"{path}: cannot read: {err.strerror or err}") from err


def load_sources(path: Path, schema: dict | None = None) -> dict[str, dict]:
    data = _read_json(path)
    error = _first_error(_validator(schema or _schema(), "sources_file"), data)
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(file)"
        raise ExpectedError(f"{path}: source {where}: {error.message}")
    return data


def load_rows(path: Path, sources: dict[str, dict], schema: dict | None = None) -> list[ReferenceRow]:
    """Every row of one row file, validated; the first broken row raises naming file, row (1-based) and field."""
    schema = schema or _schema()
    data = _read_json(path)
    error = _first_error(_validator(schema, "rows_file"), data)
    if error is not None:
        raise ExpectedError(f"{path}: {_field(error)}: {error.message}")
    kind = data["kind"]
    validator = _validator(schema, f"{kind}_row")
    rows = []
    for index, item in enumerate(data["rows"], start=1):
        error = _first_error(validator, item)
        if error is not None:
            raise ExpectedError(f"{path}: row {index}: field {_field(error)}: {error.message}")
        if kind == "paper" and item["source"] not in sources:
            raise ExpectedError(f"{path}: row {index}: field source: {item['source']!r} is not defined in "
                                f"{SOURCES_FILE} (defined: {', '.join(sorted(sources))})")
        rows.append(ReferenceRow(
            file=path, row=index, table=item["table"], method=item["method"], label=item["label"],
            suite=item["suite"], setting=item["setting"] or {}, value=float(item["value"]),
            episodes=item["episodes"], source=item["source"], note=item["note"],
            packages=item.get("packages"), protocol=item.get("protocol"), profile=item.get("profile"),
            task_ids=tuple(item["task_ids"]) if item.get("task_ids") is not None else None))
    return rows


def check_ours_rows(data: dict) -> None:
    """ExpectedError naming the first row and field of `data` ({"kind": "ours", "rows": [...]}) that breaks the
    schema."""
    schema = _schema()
    error = _first_error(_validator(schema, "rows_file"), data)
    if error is not None:
        raise ExpectedError(f"ours rows: {_field(error)}: {error.message}")
    validator = _validator(schema, "ours_row")
    for index, item in enumerate(data["rows"], start=1):
        error = _first_error(validator, item)
        if error is not None:
            raise ExpectedError(f"ours rows: row {index}: field {_field(error)}: {error.message}")


def _sources_near(path: Path) -> Path:
    directory = path if path.is_dir() else path.parent
    for candidate in (directory / SOURCES_FILE, directory.parent / SOURCES_FILE):
        if candidate.is_file():
            return candidate
    raise ExpectedError(f"{path}: no {SOURCES_FILE} beside it or one level up")


def load_reference(spec: str) -> Reference:
    """`paper`, `ours`, or a path to a row file or a directory of row files."""
    path = expected_root() / spec if spec in NAMED else Path(spec)
    if not path.exists():
        raise ExpectedError(f"unknown reference {spec!r}: not {' or '.join(NAMED)} and no such file or directory")
    files = sorted(p for p in path.glob("*.json") if p.name not in (SOURCES_FILE, SCHEMA_FILE)) \
        if path.is_dir() else [path]
    sources_file = _sources_near(path)
    root = sources_file.parent
    schema = _schema(root if (root / SCHEMA_FILE).is_file() else None)  # a copied expected_results/ validates itself
    sources = load_sources(sources_file, schema)
    rows = [row for file in files for row in load_rows(file, sources, schema)]
    seen: dict[tuple, ReferenceRow] = {}
    for row in rows:
        key = (row.table, row.method, row.suite, json.dumps(row.setting, sort_keys=True), row.source, row.profile,
               row.task_ids)
        if key in seen:
            first = seen[key]
            raise ExpectedError(f"{row.file}: row {row.row}: duplicates {first.file.name} row {first.row} "
                                f"(same table, method, suite, setting, source, profile and tasks)")
        seen[key] = row
    return Reference(spec, tuple(rows), sources)
