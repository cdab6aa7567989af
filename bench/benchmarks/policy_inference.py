"""Benchmark: actions/s of the tiny policy's greedy decoding (7 autoregressive tokens) on this CPU, against the
simulator's own step time measured in the same run, so "the policy is never the rollout bottleneck" is a ratio.

    python -m bench.benchmarks.policy_inference --out results/bench/policy
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def _policy(variant: str):
    import torch

    from tgrpo.policies import action_tokenizer as at
    from tgrpo.policies.tiny import TinyConfig, TinyPolicy, TinyVLA

    torch.manual_seed(0)  # random weights: decoding cost does not depend on them
    cfg = TinyConfig(variant=variant, state_dim=58, words=["pick", "up", "the", "soup", "and", "place", "basket"])
    return TinyPolicy(TinyVLA(cfg), cfg, at.NormStats((-1.0,) * 6 + (0.0,), (1.0,) * 6 + (1.0,)))


def _actions_per_s(policy, batch: int, rounds: int) -> list[float]:
    rng = np.random.default_rng(0)
    obs = {"state": rng.normal(size=(batch, 58)).astype(np.float32),
           "image": rng.integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)}
    instructions = ["pick up the alphabet soup and place it in the basket"] * batch
    policy.act(obs, instructions, list(range(batch)))  # warm-up
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        policy.act(obs, instructions, list(range(batch)))
        rates.append(batch / (time.perf_counter() - start))
    return rates


def _sim_steps_per_s(steps: int) -> float:
    """One state-mode LIBERO env in this process (no rendering): the cheapest simulator step there is."""
    from tgrpo.envs.libero_env import LiberoEnv, official_start
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol

    env = LiberoEnv("libero_object", 0, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    try:
        env.start_episode(official_start("libero_object", 0, 0))
        actions = np.random.default_rng(0).uniform(-0.3, 0.3, (steps, 7))
        start = time.perf_counter()
        for a in actions:
            env.step(a)
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench/policy"))
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the SFT/eval default is 1)")
    parser.add_argument("--sim-steps", type=int, default=100)
    args = parser.parse_args(argv)

    import torch

    from bench.provenance import provenance

    torch.set_num_threads(args.threads)
    sim = _sim_steps_per_s(args.sim_steps)
    print(f"simulator (state mode, 1 env): {sim:.1f} steps/s", flush=True)
    rows = []
    for variant in ("state", "image"):
        policy = _policy(variant)
        for batch in (int(b) for b in args.batches.split(",")):
            rates = _actions_per_s(policy, batch, args.rounds)
            row = {"variant": variant, "batch": batch, "actions_per_s": statistics.median(rates),
                   "sim_steps_per_s": sim}
            row["policy_vs_sim"] = row["actions_per_s"] / sim
            rows.append(row)
            print(f"{variant:5s} batch {batch}: {row['actions_per_s']:8.1f} actions/s "
                  f"({row['policy_vs_sim']:.1f}x the simulator's steps/s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "policy_inference", "threads": args.threads, "rounds": args.rounds, "rows": rows,
              "provenance": provenance()}
    (args.out / "policy_inference.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
