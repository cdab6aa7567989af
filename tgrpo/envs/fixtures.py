"""Fixture placements: the part of a LIBERO scene that the official init states do not hold.

LIBERO's ``reset()`` samples a pose for every *placed fixture* (cabinet, stove, wine rack, microwave, ...) from its
region sampler and writes it into the model (``body_pos``/``body_quat``); the official init states hold only
``qpos``/``qvel``, so ``set_init_state`` leaves the fixtures wherever the process's last reset put them. OpenVLA's
script builds the env once per task, calls ``env.seed(0)`` and then ``reset()`` before every episode, so the
fixtures of episode k are those of the (k+1)-th reset after ``seed(0)``: a function of (task, k) alone.

`bench.fixture_tables` (``make fixture-tables``) replays that sequence once per task and keeps the poses in a
committed table, ``fixture_poses/<suite>/task_<id>.json``. This module reads and writes fixture poses and looks up
the table: every episode start sets the poses of its episode index, whichever worker runs it and whatever ran before
(docs/protocol.md, "Fixture placement").
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from tgrpo.envs.protocol import resolve_suite

TABLE_DIR = Path(__file__).parent / "fixture_poses"
POSE_DIM = 7  # body_pos xyz, then body_quat wxyz (MuJoCo's order)


def placed_fixtures(sim_env) -> tuple[str, ...]:
    """Names of the fixtures that `reset()` places, in ``fixtures_dict`` order (sim_env: a LIBERO robosuite env)."""
    sampled: set[str] = set()
    for composite in (sim_env.placement_initializer, sim_env.conditional_placement_initializer,
                      sim_env.conditional_placement_on_objects_initializer):
        for sampler in composite.samplers.values():
            sampled.update(obj.name for obj in sampler.mujoco_objects)
    return tuple(name for name in sim_env.fixtures_dict if name in sampled)


def _body_ids(sim_env, names: tuple[str, ...]) -> list[int]:
    model = sim_env.sim.model  # re-read on every call: a hard reset rebuilds the model
    return [model.body_name2id(sim_env.fixtures_dict[name].root_body) for name in names]


def read_fixture_poses(sim_env, names: tuple[str, ...]) -> np.ndarray:
    """[F, 7] model poses (pos xyz, quat wxyz) of the named fixtures' root bodies."""
    model = sim_env.sim.model
    ids = _body_ids(sim_env, names)
    return np.concatenate([model.body_pos[ids], model.body_quat[ids]], axis=1).reshape(len(names), POSE_DIM).copy()


def write_fixture_poses(sim_env, names: tuple[str, ...], poses: np.ndarray) -> None:
    """Set the named fixtures' model poses; takes effect at the next ``sim.forward()`` (set_init_state runs one)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.shape != (len(names), POSE_DIM):
        raise ValueError(f"fixture poses of shape {poses.shape}; expected ({len(names)}, {POSE_DIM}) for {names}")
    model = sim_env.sim.model
    ids = _body_ids(sim_env, names)
    model.body_pos[ids] = poses[:, :3]
    model.body_quat[ids] = poses[:, 3:]


def table_path(suite: str, task_id: int, root: Path = TABLE_DIR) -> Path:
    return root / resolve_suite(suite) / f"task_{task_id}.json"


@lru_cache(maxsize=64)
def _load_table(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"no fixture table {path}; generate it with `python -m bench.fixture_tables` "
                                "(docs/protocol.md, 'Fixture placement')")
    return json.loads(path.read_text())


def official_fixture_poses(suite: str, task_id: int, episode: int) -> tuple[tuple[str, ...], np.ndarray]:
    """(placed fixture names, [F, 7] poses) of official episode `episode` as OpenVLA's sequential run has them."""
    table = _load_table(table_path(suite, task_id))
    if not 0 <= episode < table["episodes"]:
        raise ValueError(f"episode {episode} out of range; the fixture table holds 0..{table['episodes'] - 1}")
    names = tuple(table["fixtures"])
    if not names:  # nothing placed: the model's fixed fixtures in every episode
        return names, np.zeros((0, POSE_DIM))
    return names, np.asarray(table["poses"][episode], dtype=np.float64).reshape(len(names), POSE_DIM)
