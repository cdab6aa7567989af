"""Reference key poses: where the end effector should be when each stage is reached, from successful demonstrations.

A spec's own key poses are the fallback: a point of the stage's entity (its current or start position) plus a
fixed offset. Demonstrations replace the offset: for every successful demonstration, at the first step a stage is
reached, the end effector's position minus the key pose's base point (the same entity, part, time and joint
target, offset zero) is one sample; the key pose offset is the per-axis median over demonstrations. Stages no
demonstration reached keep the fallback.

File format (JSON, ``keypose_version`` 1)::

    {"keypose_version": 1, "suite": "libero_object",
     "tasks": {"0": {"spec_sha256": "...", "stages": {"<stage name>": {<key pose>, "samples": n, "spread": m}}}}}

A key pose entry has the fields of the schema's ``key_pose`` (entity, part, at, offset, joint_target);
``samples`` and ``spread`` (median distance of the samples to the median, metres) are informative. Entries for a
different ``spec_sha256`` are ignored (the spec changed since).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tgrpo.rewards.predicates import Geometry, compile_key_pose
from tgrpo.rewards.reward import StageReward
from tgrpo.rewards.schema import KEY_POSE_DEFAULTS, SPECS_DIR, spec_hash
from tgrpo.rewards.store import read_tasks_doc

KEYPOSE_VERSION = 1
POSE_FIELDS = ("entity", "part", "at", "offset", "joint_target")


def keyposes_path(suite: str, directory: Path | str = SPECS_DIR) -> Path:
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
