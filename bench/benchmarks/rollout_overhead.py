"""Benchmark: env-steps/s of our lock-step group rollout against LIBERO's own SubprocVectorEnv, same settings.

Both sides step 2 envs of the same task from the same official episode start with the same action sequence:
restore the state, 10 wait steps, then `steps` actions; repeats alternate between the two sides. LIBERO-Object
task 0 places no fixtures, so the bare init state is the whole start for LIBERO's side. Ours adds the protocol's
per-step work (image preprocessing, privileged state, the policy call). Reported as a ratio measured in the same run.

    python -m bench.benchmarks.rollout_overhead --out results/bench/rollout
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from bench.benchmarks.smoke import parse_args
from tgrpo.envs.libero_env import EpisodeStart
from tgrpo.envs.observation import ObsConfig
from tgrpo.policies.base import Policy, PolicyOutput

SETTINGS = {
    "state": ObsConfig(mode="state"),
    "image-1cam": ObsConfig(mode="image"),
    "image-2cam": ObsConfig(mode="image", wrist=True),
    "image-1cam-fast": ObsConfig(mode="image", fast_render=True),
}


class ReplayPolicy(Policy):
    """Plays a fixed action sequence (the same one the baseline plays)."""

    name = "replay"

    def __init__(self, actions: np.ndarray):
        self.actions, self.t = actions, 0

    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0) -> PolicyOutput:
        out = np.repeat(self.actions[self.t][None], len(slots), axis=0)
        self.t += 1
        return PolicyOutput(out)


class _Ours:
    """Our worker pool with 2 envs, kept alive across repeats."""

    def __init__(self, obs: ObsConfig):
        from tgrpo.envs.protocol import Protocol
        from tgrpo.envs.workers import EnvSpec, WorkerPool

        self.spec = EnvSpec("libero_object", 0, obs, Protocol(episode_start="restore"))
        self.pool = WorkerPool(2)
        self.pool.ensure_many({0: self.spec, 1: self.spec})

    def run(self, start_at: EpisodeStart, actions: np.ndarray) -> float:
        from tgrpo.envs.rollout import group_rollout

        start = time.perf_counter()
        r = group_rollout(self.pool, self.spec, ReplayPolicy(actions), start_at, stop_rule="independent",
                          max_steps=len(actions))
        if failed := [e for e in r.errors if e]:  # a failed trajectory's steps would count at full speed
            raise RuntimeError(f"rollout failed: {failed[0]}")
        return 2 * (int(r.length.max()) + 10) / (time.perf_counter() - start)

    def close(self) -> None:
        self.pool.close()


def _make_env(obs: ObsConfig):
    def build():
        from libero.libero.envs.env_wrapper import ControlEnv

        from tgrpo.envs.libero_env import install_fast_render, task_info

        env = ControlEnv(
            bddl_file_name=task_info("libero_object", 0).bddl_file, has_offscreen_renderer=obs.renders,
            use_camera_obs=obs.renders, camera_names=obs.camera_names,
            camera_heights=obs.camera_resolution, camera_widths=obs.camera_resolution,
        )
        if obs.fast_render:  # the same settings as our fast mode; the venv's reset() rebuilds with them
            install_fast_render(env.env, obs.camera_resolution)
        env.seed(0)
        return env

    return build


class _Baseline:
    """LIBERO's SubprocVectorEnv with 2 envs, kept alive across repeats."""

    def __init__(self, obs: ObsConfig):
        from libero.libero.envs.venv import SubprocVectorEnv

        self.venv = SubprocVectorEnv([_make_env(obs), _make_env(obs)])

    def run(self, state: np.ndarray, actions: np.ndarray) -> float:
        wait = np.tile(np.array([0, 0, 0, 0, 0, 0, -1.0]), (2, 1))
        self.venv.reset()  # untimed; robosuite's horizon (1000 steps) counts across set_init_state otherwise
        start = time.perf_counter()
        self.venv.set_init_state(np.stack([state, state]))
        for _ in range(10):
            self.venv.step(wait)
        for a in actions:
            self.venv.step(np.stack([a, a]))
        return 2 * (len(actions) + 10) / (time.perf_counter() - start)

    def close(self) -> None:
        self.venv.close()


def _interleaved(obs: ObsConfig, start: EpisodeStart, actions: np.ndarray, repeats: int):
    """Alternate baseline and ours repeat by repeat (both sides alive, idle while the other runs), so that a
    change of machine load during the run falls on both sides alike."""
    base, ours = _Baseline(obs), None
    try:
        ours = _Ours(obs)
        base_rates, our_rates = [], []
        for _ in range(repeats):
            base_rates.append(base.run(start.state, actions))
            our_rates.append(ours.run(start, actions))
        return base_rates, our_rates
    finally:
        base.close()
        if ours is not None:
            ours.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench/rollout"))
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"subset of {','.join(SETTINGS)}")
    parser.add_argument("--state-steps", type=int, default=200)
    parser.add_argument("--image-steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    args = parse_args(parser, argv, {"settings": "state", "state_steps": 5, "image_steps": 3, "repeats": 1})

    from tgrpo.envs.libero_env import official_start
    from tgrpo.provenance import provenance

    start = official_start("libero_object", 0, 0)
    rows = []
    for name in args.settings.split(","):
        obs = SETTINGS[name]
        steps = args.state_steps if obs.mode == "state" else args.image_steps
        actions = np.random.default_rng(0).uniform(-0.3, 0.3, (steps, 7))
        actions[:, 6] = -1.0
        base, ours = _interleaved(obs, start, actions, args.repeats)
        row = {"setting": name, "steps": steps, "repeats": args.repeats,
               "baseline_steps_per_s": statistics.median(base), "ours_steps_per_s": statistics.median(ours),
               "baseline_all": base, "ours_all": ours}
        row["overhead_pct"] = 100 * (row["baseline_steps_per_s"] / row["ours_steps_per_s"] - 1)
        rows.append(row)
        print(f"{name:16s} baseline {row['baseline_steps_per_s']:7.1f}  ours {row['ours_steps_per_s']:7.1f} "
              f"env-steps/s  overhead {row['overhead_pct']:+.1f}%", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "rollout_overhead", "smoke": args.smoke, "workers": 2, "rows": rows,
              "provenance": provenance()}
    (args.out / "rollout_overhead.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
