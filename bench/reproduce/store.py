"""The run store: one directory per stage, named by a key over everything the stage's output depends on.

A stage's key is the sha256 of its kind, its config, its inputs' keys and the hash of the source code it runs. A
rerun finds finished stages by key and skips them; a changed setting or code changes the key of that stage and of
everything downstream, and nothing else. `stage.json` records status, timing, error and provenance.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tgrpo.provenance import REPO_ROOT

STATUSES = ("running", "done", "failed")
HEARTBEAT = "heartbeat.json"  # the running attempt's last sign of life, every `BEAT_S` seconds
BEAT_S = 30.0


class StoreError(ValueError):
    """A stage record that cannot be read: the user is told which file and what to do."""


class StageBusy(RuntimeError):
    """Another process holds the stage's lock: it is running that stage in this store right now."""


@dataclass(frozen=True)
class Resources:
    """What one stage asks of the machine that runs it (a cluster executor's scheduling request; the local executor
    runs stages one after another and ignores it). `memory_gb` 0: no memory request."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.0


@dataclass(frozen=True)
class Stage:
    """One node of the plan. `config` is plain JSON data; `inputs` name the stages whose outputs it reads."""

    kind: str
    name: str
    config: dict
    inputs: tuple[Stage, ...] = ()
    code: tuple[str, ...] = ()  # source directories / files (repo-relative) whose content the output depends on
    estimate_s: float = 0.0
    resources: Resources = Resources()  # not in the key: where a stage runs does not change its output
    key: str = field(init=False)

    def __post_init__(self) -> None:
        payload = {"kind": self.kind, "config": self.config, "inputs": sorted(s.key for s in self.inputs),
                   "code": code_hash(self.code)}
        object.__setattr__(self, "key", _sha256(json.dumps(payload, sort_keys=True)))

    @property
    def dir_name(self) -> str:
        return f"{self.kind}/{self.name}-{self.key[:12]}"


def code_hash(paths: tuple[str, ...]) -> str:
    """sha256 over the Python sources under `paths` (relative to the repository root), in sorted order."""
    digest = hashlib.sha256()
    for rel in sorted(paths):
        root = REPO_ROOT / rel
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for path in files:
            digest.update(path.relative_to(REPO_ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class RunStore:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root).absolute()

    def path(self, stage: Stage) -> Path:
        return self.root / stage.dir_name

    def record(self, stage: Stage) -> dict | None:
        """The stage's record, or None when it never started; StoreError for a corrupt or foreign record."""
        file = self.path(stage) / "stage.json"
        if not file.exists():
            return None
        try:
            record = json.loads(file.read_text())
        except (OSError, ValueError) as err:
            raise StoreError(f"{file} is corrupt ({err}); delete {file.parent} to recompute that stage") from err
        if not isinstance(record, dict) or record.get("key") != stage.key or record.get("status") not in STATUSES:
            raise StoreError(f"{file} is not the record of stage {stage.kind}/{stage.name} (key {stage.key[:12]}); "
                             f"delete {file.parent} to recompute that stage")
        return record

    def is_done(self, stage: Stage) -> bool:
        record = self.record(stage)
        return record is not None and record["status"] == "done"

    @contextmanager
    def claim(self, stage: Stage) -> Iterator[None]:
        """Hold the stage's lock (an flock on `<stage dir>/.lock`) while running it, so that two runs on one store (two
        sessions, a second `make reproduce` beside the first) never write one stage directory at once: the second
        gets StageBusy. The lock goes with the process, however it ends; on a shared volume whose file system has
        no flock across machines it only guards each machine."""
        directory = self.path(stage)
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / ".lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StageBusy(f"another process is running this stage in the same store (see "
                                f"{directory / 'attempts.jsonl'}); rerun when it has finished") from None
            yield

    def begin(self, stage: Stage, provenance: dict, attempts: list[dict] | None = None) -> Path:
        """Mark the stage running; `attempts` (where each run of it in this directory started) go into the record,
        and so does the wall clock of the earlier attempts (`earlier_wall_s`, `spent_before`)."""
        directory = self.path(stage)
        directory.mkdir(parents=True, exist_ok=True)
        earlier = self.spent_before(stage)
        self._write(stage, {"status": "running", "started_utc": _now(), "attempt_id": uuid.uuid4().hex,
                            "provenance": provenance, "earlier_wall_s": earlier,
                            **({"attempts": attempts} if attempts is not None else {})})
        return directory

    def spent_before(self, stage: Stage) -> float:
        """Seconds of wall clock the stage's earlier attempts in this directory spent: a failed one's recorded time,
        a killed one's last heartbeat (`beat`; up to one beat interval short), and what they had counted before."""
        try:
            record = self.record(stage)
        except StoreError:
            return 0.0
        if record is None:
            return 0.0
        spent = float(record.get("earlier_wall_s", 0.0))
        if record["status"] == "failed":
            return round(spent + float(record.get("wall_s", 0.0)), 1)
        try:
            beat = json.loads((self.path(stage) / HEARTBEAT).read_text())
        except (OSError, ValueError):
            return round(spent, 1)
        if isinstance(beat, dict) and beat.get("attempt_id") == record.get("attempt_id"):
            spent += float(beat.get("wall_s", 0.0))
        return round(spent, 1)

    def beat(self, stage: Stage, wall_s: float) -> None:
        """Record that the running attempt is alive after `wall_s` seconds (atomic): a killed attempt leaves no end
        time, and its last beat is what `spent_before` counts of it."""
        record = self.record(stage) or {}
        file = self.path(stage) / HEARTBEAT
        tmp = file.with_name(HEARTBEAT + ".tmp")
        tmp.write_text(json.dumps({"attempt_id": record.get("attempt_id"), "wall_s": round(wall_s, 1),
                                   "seen_utc": _now()}))
        os.replace(tmp, file)

    def add_attempt(self, stage: Stage, where: dict) -> list[dict]:
        """Append one attempt (`where`: the host or cluster node running it) to the stage's `attempts.jsonl`, which
        survives a node that dies mid-stage; returns every attempt so far, this one last."""
        file = self.path(stage) / "attempts.jsonl"
        file.parent.mkdir(parents=True, exist_ok=True)
        with file.open("a") as stream:
            stream.write(json.dumps({**where, "started_utc": _now()}, sort_keys=True) + "\n")
        return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]

    def finish(self, stage: Stage, result: dict, wall_s: float) -> None:
        record = self.record(stage) or {}
        self._write(stage, {**record, "status": "done", "finished_utc": _now(), "wall_s": round(wall_s, 1),
                            "result": result, "error": None})

    def fail(self, stage: Stage, error: str, wall_s: float) -> None:
        record = self.record(stage) or {}
        self._write(stage, {**record, "status": "failed", "finished_utc": _now(), "wall_s": round(wall_s, 1),
                            "error": error})

    def _write(self, stage: Stage, fields: dict) -> None:
        record = {"key": stage.key, "kind": stage.kind, "name": stage.name, "config": stage.config,
                  "inputs": {s.kind + "/" + s.name: s.key for s in stage.inputs}, **fields}
        file = self.path(stage) / "stage.json"
        tmp = file.with_name("stage.json.tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
        os.replace(tmp, file)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
