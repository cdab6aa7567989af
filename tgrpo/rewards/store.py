"""Spec files on disk: one JSON file per suite holding the 10 task specs, plus its validation record.

- ``tgrpo/rewards/specs/<suite>.json``: the committed rule-based specs (``tgrpo-bench rewards generate``);
- ``tgrpo/rewards/specs/<suite>.validation.json``: per task, the sha256 of the spec validated, the checks and
  ``status`` (pass / fail / no-demo) from ``tgrpo-bench rewards validate``;
- ``tgrpo/rewards/specs/<suite>.keyposes.json``: demonstration key poses (keyposes.py).

``load_spec`` refuses a spec whose validation record for that exact spec says ``fail``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tgrpo.rewards.schema import SCHEMA_VERSION, SPECS_DIR, SpecError, check_spec, spec_hash


class SpecRejected(RuntimeError):
    """The spec failed validation against demonstrations and must not be used."""


def suite_path(suite: str, directory: Path | str = SPECS_DIR) -> Path:
    return Path(directory) / f"{suite}.json"


def validation_path(suite: str, directory: Path | str = SPECS_DIR) -> Path:
    return Path(directory) / f"{suite}.validation.json"


def _write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def write_suite(path: Path | str, suite: str, specs: list[dict], merge: bool = True) -> None:
    """Write the specs of one suite (merging by task id into an existing file unless merge=False)."""
    path = Path(path)
    tasks: dict[str, dict] = {}
    if merge and path.exists():
        tasks = read_suite(path)["tasks"]
    for spec in specs:
        if spec["suite"] != suite:
            raise ValueError(f"spec of {spec['suite']} written into the {suite} file")
        tasks[str(spec["task_id"])] = spec
    _write_json(path, {"schema_version": SCHEMA_VERSION, "suite": suite,
                       "tasks": {k: tasks[k] for k in sorted(tasks, key=int)}})


def read_tasks_doc(path: Path, what: str) -> dict:
    """The JSON object in `path` with a "tasks" object of objects; SpecError naming the file otherwise."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as err:  # a directory, bytes that are not UTF-8 or not JSON
        raise SpecError(f"{path} is not a readable {what} file ({' '.join(str(err).split())})") from None
    tasks = doc.get("tasks") if isinstance(doc, dict) else None
    if not isinstance(tasks, dict) or not all(isinstance(v, dict) for v in tasks.values()):
        raise SpecError(f"{path} is not a {what} file: expected a JSON object whose \"tasks\" maps task ids "
                        "to objects")
    return doc


def read_suite(path: Path | str) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no spec file {path}; run `tgrpo-bench rewards generate`")
    doc = read_tasks_doc(path, "stage spec")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise SpecError(f"{path}: schema_version {doc.get('schema_version')}, this code reads {SCHEMA_VERSION}")
    return doc


def read_validation(suite: str, directory: Path | str = SPECS_DIR) -> dict:
    path = validation_path(suite, directory)
    if not path.exists():
        return {"suite": suite, "tasks": {}}
    return read_tasks_doc(path, "validation record")


def write_validation(suite: str, rows: dict[int, dict], directory: Path | str = SPECS_DIR) -> Path:
    doc = read_validation(suite, directory)
    for task_id, row in rows.items():
        doc["tasks"][str(task_id)] = row
    doc["tasks"] = {k: doc["tasks"][k] for k in sorted(doc["tasks"], key=int)}
    path = validation_path(suite, directory)
    _write_json(path, doc)
    return path


def validation_status(spec: dict, directory: Path | str = SPECS_DIR) -> str:
    """pass / fail / no-demo for this exact spec, or 'unvalidated'."""
    row = read_validation(spec["suite"], directory)["tasks"].get(str(spec["task_id"]))
    if row is None or row.get("spec_sha256") != spec_hash(spec):
        return "unvalidated"
    return row["status"]


def load_spec(suite: str, task_id: int, path: Path | str | None = None, facts=None,
              allow_failed: bool = False) -> dict:
    """The committed (or given) spec of one task, re-checked against the task's BDDL facts.

    Raises SpecRejected when the validation record of this exact spec is 'fail' (unless allow_failed).
    """
    from tgrpo.envs.protocol import resolve_suite
    from tgrpo.rewards.facts import task_facts

    suite = resolve_suite(suite)
    path = suite_path(suite) if path is None else Path(path)
    doc = read_suite(path)
    spec = doc["tasks"].get(str(task_id))
    if spec is None:
        raise SpecError(f"{path} has no spec for {suite} task {task_id}")
    facts = facts or task_facts(suite, task_id)
    spec = check_spec(spec, facts, source=spec.get("source"))
    if not allow_failed and validation_status(spec, path.parent) == "fail":
        raise SpecRejected(f"the {suite} task {task_id} spec in {path} failed validation "
                           f"({validation_path(suite, path.parent)}); fix it or pass allow_failed")
    return spec
