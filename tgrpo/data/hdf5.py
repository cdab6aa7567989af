"""LIBERO-format HDF5 demonstration files: writer and reader.

The layout is LIBERO's own (its ``scripts/create_dataset.py``), so the reader opens the official demonstration
files and ours alike::

    data/                       attrs: env_name, problem_info (JSON: problem_name, domain_name,
                                language_instruction), env_args (JSON), bddl_file_name, bddl_file_content,
                                macros_image_convention, num_demos, total
    data/demo_<k>/              attrs: num_samples, init_state, model_file (optional)
        actions [T, 7], states [T, S], robot_states [T, 9], rewards [T], dones [T]
        obs/agentview_rgb [T, H, W, 3] uint8, obs/eye_in_hand_rgb (images only),
        obs/ee_pos [T, 3], obs/ee_ori [T, 3], obs/ee_states [T, 6], obs/gripper_states [T, 2],
        obs/joint_states [T, 7]

Additions of this project, ignored by LIBERO's and robomimic's loaders: per demo the attrs ``seed``, ``init_source``
('fresh': placements sampled by ``env.reset()``), ``fixture_names`` (JSON) and ``fixture_poses`` [F, 7] (the placed
fixtures' model poses, which ``init_state`` does not hold), ``stage_names`` and ``stage_transitions`` (JSON), the
dataset ``stage_index`` [T] (the expert's stage at each step), optionally ``obs/privileged`` [T, D] and
``executed_actions`` [T, 7] (when the generator perturbed the executed actions, ``actions`` holds the expert's
unperturbed labels and this the actions the simulator received: replay these, train on those); on ``data`` the attrs
``image_preprocessing`` (JSON) and ``privileged_layout`` (JSON).

A demo is written as its own small file first (``write_demo_file``, atomic rename) and the per-task dataset is
assembled from those parts (``merge_demo_files``), so a killed generation run loses at most the demo in flight.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import h5py
import numpy as np

OBS_PROPRIO_KEYS = ("ee_pos", "ee_ori", "ee_states", "gripper_states", "joint_states")
OBS_IMAGE_KEYS = ("agentview_rgb", "eye_in_hand_rgb")
_DEMO_KEY = re.compile(r"^demo_(\d+)$")


@dataclass
class Demo:
    """One demonstration, T steps. `states[t]` is the simulator state action t was applied in."""

    actions: np.ndarray
    states: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    obs: dict[str, np.ndarray]
    robot_states: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)
    stage_index: np.ndarray | None = None
    executed_actions: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def validate(self) -> None:
        t = len(self)
        if self.actions.ndim != 2 or self.actions.shape[1] != 7:
            raise ValueError(f"actions must be [T, 7], got {self.actions.shape}")
        for name, arr in [("states", self.states), ("rewards", self.rewards), ("dones", self.dones),
                          *((f"obs/{k}", v) for k, v in self.obs.items())]:
            if len(arr) != t:
                raise ValueError(f"{name} has {len(arr)} steps, actions have {t}")
        if self.stage_index is not None and len(self.stage_index) != t:
            raise ValueError("stage_index length differs from actions")
        if self.executed_actions is not None and np.shape(self.executed_actions) != self.actions.shape:
            raise ValueError("executed_actions must have the shape of actions")

    @property
    def stage_transitions(self) -> list[dict]:
        return json.loads(self.attrs.get("stage_transitions", "[]"))


def _json_attr(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def write_demo_group(group: h5py.Group, demo: Demo) -> None:
    """Write one demo into an (empty) HDF5 group in LIBERO's layout."""
    demo.validate()
    obs = group.create_group("obs")
    for key, value in demo.obs.items():
        value = np.asarray(value)
        if value.dtype == np.uint8 and value.ndim == 4:
            obs.create_dataset(key, data=value, chunks=(1, *value.shape[1:]), compression="gzip", compression_opts=4)
        else:
            obs.create_dataset(key, data=value)
    group.create_dataset("actions", data=np.asarray(demo.actions, dtype=np.float64))
    group.create_dataset("states", data=np.asarray(demo.states, dtype=np.float64))
    if demo.robot_states is not None:
        group.create_dataset("robot_states", data=np.asarray(demo.robot_states, dtype=np.float64))
    group.create_dataset("rewards", data=np.asarray(demo.rewards, dtype=np.uint8))
    group.create_dataset("dones", data=np.asarray(demo.dones, dtype=np.uint8))
    if demo.stage_index is not None:
        group.create_dataset("stage_index", data=np.asarray(demo.stage_index, dtype=np.int32))
    if demo.executed_actions is not None:
        group.create_dataset("executed_actions", data=np.asarray(demo.executed_actions, dtype=np.float64))
    group.attrs["num_samples"] = len(demo)
    group.attrs["init_state"] = np.asarray(demo.states[0], dtype=np.float64)
    for key, value in demo.attrs.items():
        if key in ("num_samples", "init_state"):
            continue
        group.attrs[key] = value if isinstance(value, (int, float, str, np.ndarray, np.generic)) else _json_attr(value)


def read_demo_group(group: h5py.Group, obs_keys: tuple[str, ...] | None = None) -> Demo:
    """Load one demo group (ours or LIBERO's); ValueError naming the file and group if a dataset is missing."""
    missing = [k for k in ("actions", "states", "rewards", "dones") if k not in group]
    if missing:
        raise ValueError(f"{group.file.filename}: {group.name} has no {', '.join(missing)}: not a LIBERO demonstration")
    obs_group = group.get("obs")
    obs = {}
    if obs_group is not None:
        for key in obs_group:
            if obs_keys is None or key in obs_keys:
                obs[key] = obs_group[key][()]
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in group.attrs.items()}
    return Demo(
        actions=group["actions"][()],
        states=group["states"][()],
        rewards=group["rewards"][()],
        dones=group["dones"][()],
        obs=obs,
        robot_states=group["robot_states"][()] if "robot_states" in group else None,
        attrs=attrs,
        stage_index=group["stage_index"][()] if "stage_index" in group else None,
        executed_actions=group["executed_actions"][()] if "executed_actions" in group else None,
    )


def sorted_demo_keys(keys) -> list[str]:
    """demo_0, demo_1, ..., demo_10 in numeric order (LIBERO's files sort them as strings)."""
    found = [(int(m.group(1)), k) for k in keys if (m := _DEMO_KEY.match(k))]
    return [k for _, k in sorted(found)]


def write_file_attrs(data: h5py.Group, attrs: dict) -> None:
    for key, value in attrs.items():
        data.attrs[key] = value if isinstance(value, (int, float, str, np.ndarray, np.generic)) else _json_attr(value)


def write_demo_file(path: str | Path, demo: Demo, file_attrs: dict | None = None) -> Path:
    """One demo as its own LIBERO-layout file (data/demo_0), written to a temporary name then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        write_file_attrs(data, file_attrs or {})
        write_demo_group(data.create_group("demo_0"), demo)
        data.attrs["num_demos"] = 1
        data.attrs["total"] = len(demo)
    os.replace(tmp, path)
    return path


def merge_demo_files(parts: list[str | Path], out: str | Path, file_attrs: dict) -> Path:
    """Assemble single-demo files into one dataset (demo_0..demo_{n-1} in the order given), atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    total = 0
    with h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        write_file_attrs(data, file_attrs)
        for k, part in enumerate(parts):
            with h5py.File(part, "r") as src:
                key = sorted_demo_keys(src["data"].keys())[0]
                src.copy(src["data"][key], data, name=f"demo_{k}")
                total += int(src["data"][key].attrs["num_samples"])
        data.attrs["num_demos"] = len(parts)
        data.attrs["total"] = total
    os.replace(tmp, out)
    return out


class LiberoDataset:
    """Reader for LIBERO-format demonstration files (the official ones and ours).

    >>> with LiberoDataset(path) as ds:
    ...     ds.language_instruction, len(ds), ds[0].actions.shape
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise
        except OSError as err:  # h5py: not an HDF5 file, truncated, unreadable
            raise ValueError(f"{self.path} cannot be opened as an HDF5 file ({' '.join(str(err).split())})") from None
        if "data" not in self._file:
            self._file.close()
            raise ValueError(f"{self.path} has no 'data' group: not a LIBERO demonstration file")
        self.data = self._file["data"]
        self.keys = sorted_demo_keys(self.data.keys())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> Demo:
        return read_demo_group(self.data[self.keys[index]])

    def __iter__(self):
        for key in self.keys:
            yield read_demo_group(self.data[key])

    def load(self, key: str, obs_keys: tuple[str, ...] | None = None) -> Demo:
        return read_demo_group(self.data[key], obs_keys)

    @property
    def attrs(self) -> dict:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self.data.attrs.items()}

    def json_attr(self, key: str, default=None):
        value = self.attrs.get(key)
        return default if value is None else json.loads(value)

    @property
    def problem_info(self) -> dict:
        return self.json_attr("problem_info", {})

    @property
    def language_instruction(self) -> str | None:
        return self.problem_info.get("language_instruction")

    @property
    def env_args(self) -> dict:
        return self.json_attr("env_args", {})

    @property
    def num_demos(self) -> int:
        return int(self.attrs.get("num_demos", len(self.keys)))

    def init_states(self) -> np.ndarray:
        """First simulator state of every demo, [N, S]."""
        return np.stack([self.data[k]["states"][0] for k in self.keys]) if self.keys else np.zeros((0, 0))
