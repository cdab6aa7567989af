"""Key poses: where the end effector is at the stages of a task, taken from successful expert demonstrations.

Two records, both produced from demonstrations and both kept per suite:

**Reward key poses** (`tgrpo-bench rewards keyposes`; read by the reward through `load_key_poses`). A spec's own
key poses are the fallback: a point of the stage's entity (its current or start position) plus a fixed offset.
Demonstrations replace the offset: for every successful demonstration, at the first step a stage is reached, the
end effector's position minus the key pose's base point (the same entity, part, time and joint target, offset zero)
is one sample; the key pose offset is the per-axis median over demonstrations. Stages no demonstration reached keep
the fallback. File `tgrpo/rewards/specs/<suite>.keyposes.json` (`keyposes_path`), ``keypose_version`` 1::

    {"keypose_version": 1, "suite": "libero_object",
     "tasks": {"0": {"spec_sha256": "...", "stages": {"<stage name>": {<key pose>, "samples": n, "spread": m}}}}}

A key pose entry has the fields of the schema's ``key_pose`` (entity, part, at, offset, joint_target);
``samples`` and ``spread`` (median distance of the samples to the median, metres) are informative. Entries for a
different ``spec_sha256`` are ignored (the spec changed since).

**Stage entry poses** of the demonstration datasets (`tgrpo-bench demos` writes them with each finished task; the
reward does not read them: they describe the expert's demonstrations, see docs/datasets.md). For every stage of the
expert's plan, the end-effector pose on entering it, aggregated over the task's successful demos. File
``data/keyposes/<suite>.json`` (`stage_poses_path`; the root is ``STAGE_POSE_ROOT``, overridden by the
environment variable ``TGRPO_KEYPOSES`` or the `demos` option ``--keyposes``), keyed by task name; per task::

    {"task_id", "instruction", "num_demos", "goal_literals", "stages": [
        {"index", "skill_index", "skill", "stage", "label", "count",
         "eef_pos": {"mean", "std", "median"}, "eef_quat_mean", "gripper_opening_mean", "step_mean",
         "rel_object": {"mean", "std"} | null,   # eef minus the skill's object position at that moment
         "rel_target": {"mean", "std"} | null,   # eef minus the target (object or region) position
         "rel_handle": {"mean", "std"} | null,   # eef minus the handle/knob of an articulated part
         and the skill's "object", "target", "joint", "goal" where it has them}]}

The pose of entering a stage is the pose the previous stage ended in: for pick-and-place, entering `descend` is
"reached above the object", `grasp` "at the grasp pose", `lift` "grasped", `transport` "lifted", `lower` "above the
target", `release` "at the release pose", `retreat` "released"; for a drawer `pull` is "handle grasped"; for a knob
`turn` "bar grasped". When a stage was entered several times (a retried grasp), the last entry counts: it is the
one that led to success.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tgrpo.rewards.predicates import Geometry, compile_key_pose
from tgrpo.rewards.reward import StageReward
from tgrpo.rewards.schema import KEY_POSE_DEFAULTS, SPECS_DIR, spec_hash
from tgrpo.rewards.store import read_tasks_doc

KEYPOSE_VERSION = 1
POSE_FIELDS = ("entity", "part", "at", "offset", "joint_target")
STAGE_POSE_ROOT = Path(os.environ.get("TGRPO_KEYPOSES", "data/keyposes"))  # where `demos` writes stage entry poses
STAGE_POSE_SCHEMA = 1


def keyposes_path(suite: str, directory: Path | str = SPECS_DIR) -> Path:
    """The suite's reward key-pose file."""
    return Path(directory) / f"{suite}.keyposes.json"


def derive_key_poses(spec: dict, layout, demos: list[np.ndarray]) -> dict[str, dict]:
    """Stage name -> key pose (with samples, spread) from successful demonstrations' privileged [T + 1, D]."""
    reward = StageReward(spec, layout)
    geo = Geometry(layout)
    eef = layout.slices["eef_pos"]
    samples: dict[int, list[np.ndarray]] = {k: [] for k in range(reward.num_stages)}
    for P in demos:
        P = np.asarray(P, dtype=np.float64)
        stage = reward.stage_index(P)
        for k, pose in enumerate(reward.key_poses):
            if pose is None:
                continue
            hit = np.flatnonzero(stage >= k + 1)
            if not len(hit):
                continue
            t = int(hit[0])
            base = compile_key_pose(geo, {**pose, "offset": [0.0, 0.0, 0.0]})(P)[t]
            samples[k].append(P[t, eef[0]:eef[1]] - base)
    out = {}
    for k, pose in enumerate(reward.key_poses):
        if pose is None or not samples[k]:
            continue
        arr = np.stack(samples[k])
        med = np.median(arr, axis=0)
        out[reward.names[k]] = {
            **{f: pose.get(f, KEY_POSE_DEFAULTS.get(f)) for f in POSE_FIELDS},
            "offset": [round(float(x), 4) for x in med],
            "samples": len(arr),
            "spread": round(float(np.median(np.linalg.norm(arr - med, axis=1))), 4),
        }
    return out


def write_key_poses(path: Path | str, suite: str, per_task: dict[int, tuple[dict, dict]]) -> None:
    """per_task: task id -> (spec, stage name -> key pose). Merges into an existing file."""
    path = Path(path)
    doc = {"keypose_version": KEYPOSE_VERSION, "suite": suite, "tasks": {}}
    if path.exists():
        with open(path) as f:
            doc = json.load(f)
    for task_id, (spec, poses) in sorted(per_task.items()):
        doc["tasks"][str(task_id)] = {"spec_sha256": spec_hash(spec), "stages": poses}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


def load_key_poses(spec: dict, path: Path | str | None = None) -> dict[str, dict] | None:
    """The demonstration key poses recorded for this exact spec, or None (then the spec's own key poses apply)."""
    path = keyposes_path(spec["suite"]) if path is None else Path(path)
    if not path.exists():
        return None
    doc = read_tasks_doc(path, "key pose")
    if doc.get("keypose_version") != KEYPOSE_VERSION:
        raise ValueError(f"{path}: keypose_version {doc.get('keypose_version')} is not {KEYPOSE_VERSION}")
    entry = doc.get("tasks", {}).get(str(spec["task_id"]))
    if entry is None or entry.get("spec_sha256") != spec_hash(spec):
        return None
    return {name: {f: pose[f] for f in POSE_FIELDS} for name, pose in entry["stages"].items()}


# -- stage entry poses of the demonstration datasets --------------------------------------------------------------


def stage_poses_path(suite: str, root: str | Path | None = None) -> Path:
    """The suite's stage-entry-pose file."""
    from tgrpo.envs.protocol import resolve_suite

    return Path(root or STAGE_POSE_ROOT) / f"{resolve_suite(suite)}.json"


def _stats(rows: list[list[float]]) -> dict:
    a = np.asarray(rows, dtype=np.float64)
    return {"mean": a.mean(0).round(5).tolist(), "std": a.std(0).round(5).tolist(),
            "median": np.median(a, 0).round(5).tolist()}


def _mean_quat(quats: list[list[float]]) -> list[float]:
    q = np.asarray(quats, dtype=np.float64)
    q = q * np.sign(q @ q[0])[:, None]  # same hemisphere as the first
    m = q.mean(0)
    return (m / np.linalg.norm(m)).round(5).tolist()


def aggregate_stage_poses(demo_transitions: list[list[dict]]) -> list[dict]:
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


def write_stage_poses(suite: str, tasks: dict[str, dict], root: str | Path | None = None,
                      extra: dict | None = None) -> Path:
    """Write (merge into) the suite's stage-entry-pose JSON; `tasks` maps task name -> entry with 'stages'."""
    path = stage_poses_path(suite, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = load_stage_poses(suite, root) if path.exists() else {"tasks": {}}
    from tgrpo.envs.protocol import resolve_suite

    doc = {"schema": STAGE_POSE_SCHEMA, "suite": resolve_suite(suite), **(extra or {}),
           "tasks": {**existing.get("tasks", {}), **tasks}}
    doc["tasks"] = dict(sorted(doc["tasks"].items(), key=lambda kv: kv[1].get("task_id", 0)))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)
    return path


def load_stage_poses(suite: str, root: str | Path | None = None) -> dict:
    """The suite's stage-entry-pose document; FileNotFoundError naming the command that generates it."""
    path = stage_poses_path(suite, root)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; generate it with `tgrpo-bench demos --suite {suite}`")
    doc = json.loads(path.read_text())
    if doc.get("schema") != STAGE_POSE_SCHEMA:
        raise ValueError(f"{path}: key-pose schema {doc.get('schema')} (expected {STAGE_POSE_SCHEMA})")
    return doc


def task_stage_poses(suite: str, task_name: str, root: str | Path | None = None) -> list[dict]:
    return load_stage_poses(suite, root)["tasks"][task_name]["stages"]
