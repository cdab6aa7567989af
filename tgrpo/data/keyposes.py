"""Reference key poses: the end-effector pose on entering each expert stage, aggregated over successful demos.

Stored as JSON keyed by task name in ``data/keyposes/<suite>.json`` (``KEYPOSE_ROOT``; override with the
environment variable ``TGRPO_KEYPOSES``). The reward code reads it with `load_keyposes`. Per task::

    {"task_id", "instruction", "num_demos", "stages": [
        {"index", "skill_index", "skill", "stage", "label", "count",
         "eef_pos": {"mean", "std", "median"}, "eef_quat_mean", "gripper_opening_mean", "step_mean",
         "rel_object": {"mean", "std"} | null,   # eef minus the skill's object position at that moment
         "rel_target": {"mean", "std"} | null,   # eef minus the target (object or region) position
         "rel_handle": {"mean", "std"} | null}]} # eef minus the handle/knob of an articulated part

The pose of entering a stage is the pose the previous stage ended in: for pick-and-place, entering `descend` is
"reached above the object", `grasp` "at the grasp pose", `lift` "grasped", `transport` "lifted", `lower` "above the
target", `release` "at the release pose", `retreat` "released"; for a drawer `pull` is "handle grasped"; for a knob
`turn` "at the knob". When a stage was entered several times (a retried grasp), the last entry counts: it is the
one that led to success.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

KEYPOSE_ROOT = Path(os.environ.get("TGRPO_KEYPOSES", "data/keyposes"))
SCHEMA_VERSION = 1


def keyposes_path(suite: str, root: str | Path | None = None) -> Path:
    from tgrpo.envs.protocol import resolve_suite

    return Path(root or KEYPOSE_ROOT) / f"{resolve_suite(suite)}.json"


def _stats(rows: list[list[float]]) -> dict:
    a = np.asarray(rows, dtype=np.float64)
    return {"mean": a.mean(0).round(5).tolist(), "std": a.std(0).round(5).tolist(),
            "median": np.median(a, 0).round(5).tolist()}


def _mean_quat(quats: list[list[float]]) -> list[float]:
    q = np.asarray(quats, dtype=np.float64)
    q = q * np.sign(q @ q[0])[:, None]  # same hemisphere as the first
    m = q.mean(0)
    return (m / np.linalg.norm(m)).round(5).tolist()


def aggregate_task(demo_transitions: list[list[dict]]) -> list[dict]:
    """Per stage (global index): statistics of the entry pose over demos (the last entry of each demo)."""
    per_index: dict[int, list[dict]] = {}
    for transitions in demo_transitions:
        last: dict[int, dict] = {}
        for tr in transitions:
            last[int(tr["index"])] = tr
        for index, tr in last.items():
            per_index.setdefault(index, []).append(tr)
    stages = []
    for index in sorted(per_index):
        rows = per_index[index]
        first = rows[0]
        entry = {
            "index": index, "skill_index": first["skill_index"], "skill": first["skill"], "stage": first["stage"],
            "label": f"{first['skill']}/{first['stage']}", "count": len(rows),
            "eef_pos": _stats([r["eef_pos"] for r in rows]),
            "eef_quat_mean": _mean_quat([r["eef_quat"] for r in rows]),
            "gripper_opening_mean": round(float(np.mean([r["gripper_opening"] for r in rows])), 5),
            "step_mean": round(float(np.mean([r["step"] for r in rows])), 2),
        }
        for role in ("object", "target", "handle"):
            rel = [np.subtract(r["eef_pos"], r[f"{role}_pos"]) for r in rows if f"{role}_pos" in r]
            entry[f"rel_{role}"] = ({"mean": np.mean(rel, 0).round(5).tolist(), "std": np.std(rel, 0).round(5).tolist()}
                                    if rel else None)
        for key in ("object", "target", "joint", "goal"):
            if key in first:
                entry[key] = first[key]
        stages.append(entry)
    return stages


def write_keyposes(suite: str, tasks: dict[str, dict], root: str | Path | None = None, extra: dict | None = None) -> Path:
    """Write (merge into) the suite's key-pose JSON; `tasks` maps task name -> entry with 'stages'."""
    path = keyposes_path(suite, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = load_keyposes(suite, root) if path.exists() else {"tasks": {}}
    from tgrpo.envs.protocol import resolve_suite

    doc = {"schema": SCHEMA_VERSION, "suite": resolve_suite(suite), **(extra or {}),
           "tasks": {**existing.get("tasks", {}), **tasks}}
    doc["tasks"] = dict(sorted(doc["tasks"].items(), key=lambda kv: kv[1].get("task_id", 0)))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)
    return path


def load_keyposes(suite: str, root: str | Path | None = None) -> dict:
    """The suite's key-pose document; FileNotFoundError naming the command that generates it."""
    path = keyposes_path(suite, root)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; generate it with `tgrpo-bench demos --suite {suite}`")
    doc = json.loads(path.read_text())
    if doc.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"{path}: key-pose schema {doc.get('schema')} (expected {SCHEMA_VERSION})")
    return doc


def task_keyposes(suite: str, task_name: str, root: str | Path | None = None) -> list[dict]:
    return load_keyposes(suite, root)["tasks"][task_name]["stages"]
