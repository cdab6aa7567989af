"""Benchmark: state-only demonstration generation against the bare simulator's step rate, in the same run.

For each seed, one task's demo is generated the way `tgrpo-bench demos` does it (`fresh_start`: LIBERO's hard
`env.reset()` samples the placement; `record_episode`: the protocol's start, the expert and the recording; the
demo written to HDF5), each part timed. The baseline is LIBERO's own env (the same `ControlEnv` inside our
wrapper) stepping the demo's executed actions from the demo's start state, with nothing else per step: the fastest
any generator can step this task here. Reported: env-steps/s of each and their ratios.

    python -m bench.benchmarks.demo_generation --out results/bench/demos
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.benchmarks.smoke import parse_args


def _bare_steps_per_s(env, state: np.ndarray, actions: np.ndarray) -> float:
    """LIBERO's env alone: set the start state, step the same actions; no observation processing or expert."""
    raw = env._env
    raw.set_init_state(state)
    start = time.perf_counter()
    for a in actions:
        raw.step(a)
    return len(actions) / (time.perf_counter() - start)


def measure(suite: str, task_id: int, seeds: list[int]) -> list[dict]:
    from tgrpo.data.hdf5 import write_demo_file
    from tgrpo.data.record import fresh_start, record_episode
    from tgrpo.envs.libero_env import LiberoEnv, official_init_states
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol
    from tgrpo.experts import ExpertPolicy

    env = LiberoEnv(suite, task_id, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    official, expert, rows = official_init_states(suite, task_id), ExpertPolicy(), []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for seed in seeds:
                t0 = time.perf_counter()
                start, used = fresh_start(env, seed, official)
                t1 = time.perf_counter()
                rec = record_episode(env, expert, start, episode_key=(task_id, "bench", used), privileged=False)
                t2 = time.perf_counter()
                write_demo_file(Path(tmp) / f"demo_{seed}.hdf5", rec.demo)
                t3 = time.perf_counter()
                steps = rec.steps + Protocol().num_wait_steps  # the wait steps are simulated too
                # at most 200: robosuite's 1000-step horizon counts across set_init_state
                bare = _bare_steps_per_s(env, rec.demo.states[0], rec.demo.actions[:200])
                rows.append({"seed": used, "success": rec.success, "steps": steps, "reset_s": t1 - t0,
                             "episode_s": t2 - t1, "write_s": t3 - t2, "bare_steps_per_s": bare,
                             "episode_steps_per_s": steps / (t2 - t1), "demo_steps_per_s": steps / (t3 - t0)})
                print(f"seed {used}: {steps} steps, reset {t1 - t0:.2f} s, episode {t2 - t1:.2f} s, "
                      f"write {t3 - t2:.3f} s; bare simulator {bare:.1f} steps/s", flush=True)
    finally:
        env.close()
    return rows


def summarise(rows: list[dict]) -> dict:
    steps = sum(r["steps"] for r in rows)
    per = {k: sum(r[k] for r in rows) for k in ("reset_s", "episode_s", "write_s")}
    bare = statistics.median(r["bare_steps_per_s"] for r in rows)
    episode = steps / per["episode_s"]
    demo = steps / sum(per.values())
    return {"demos": len(rows), "successes": sum(r["success"] for r in rows), "env_steps": steps,
            **{k: round(v, 2) for k, v in per.items()},
            "bare_steps_per_s": round(bare, 1), "episode_steps_per_s": round(episode, 1),
            "demo_steps_per_s": round(demo, 1), "episode_over_bare": round(episode / bare, 3),
            "demo_over_bare": round(demo / bare, 3), "reset_share": round(per["reset_s"] / sum(per.values()), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench/demos"))
    parser.add_argument("--suite", default="libero_object")
    parser.add_argument("--task", type=int, default=0)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    args = parse_args(parser, argv, {"seeds": "0"})

    from tgrpo.envs.protocol import resolve_suite
    from tgrpo.provenance import provenance

    suite = resolve_suite(args.suite)
    rows = measure(suite, args.task, [int(s) for s in args.seeds.split(",")])
    summary = {"suite": suite, "task": args.task, **summarise(rows)}
    print(json.dumps(summary, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo_generation.json").write_text(json.dumps(
        {"summary": summary, "smoke": args.smoke, "rows": rows, "provenance": provenance()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
