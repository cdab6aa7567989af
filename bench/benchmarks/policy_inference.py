"""Benchmark: actions/s of the tiny policy's greedy decoding (7 autoregressive tokens) on this CPU, against the
simulator's own step time measured in the same run, so "the policy is never the rollout bottleneck" is a ratio; and
the policy's share of a real lock-step group rollout (4 worker processes, state mode, the RL setting with LoRA).

    python -m bench.benchmarks.policy_inference --out results/bench/policy
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from bench.benchmarks.smoke import parse_args

VARIANTS = ("state", "state+lora", "image")  # state+lora: the RL setting (LoRA rank 32 on every linear layer)


def _policy(variant: str):
    import torch

    from tgrpo.policies import action_tokenizer as at
    from tgrpo.policies.tiny import TinyConfig, TinyPolicy, TinyVLA, add_lora

    torch.manual_seed(0)  # random weights: decoding cost does not depend on them
    cfg = TinyConfig(variant=variant.split("+")[0], state_dim=58,
                     words=["pick", "up", "the", "soup", "and", "place", "basket"])
    policy = TinyPolicy(TinyVLA(cfg), cfg, at.NormStats((-1.0,) * 6 + (0.0,), (1.0,) * 6 + (1.0,)))
    return add_lora(policy) if variant.endswith("+lora") else policy


def _reference_act(policy, obs, instructions) -> None:
    """The baseline: greedy decoding through the nn.Module stack (what training runs), every token recomputing
    the whole sequence with `TinyVLA.logits`, no cache and no folding."""
    import torch

    with torch.no_grad():
        context = policy.context(obs, instructions)
        bins = torch.zeros(context.shape[0], 0, dtype=torch.long)
        for _ in range(7):
            bins = torch.cat([bins, policy.model.logits(context, bins)[:, -1].argmax(-1, keepdim=True) + 1], dim=1)


def _actions_per_s(policy, batch: int, rounds: int) -> tuple[list[float], list[float]]:
    """(act's actions/s, the reference's), alternating call by call so that load changes fall on both."""
    rng = np.random.default_rng(0)
    obs = {"state": rng.normal(size=(batch, 58)).astype(np.float32),
           "image": rng.integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)}
    instructions = ["pick up the alphabet soup and place it in the basket"] * batch
    policy.act(obs, instructions, list(range(batch)))  # warm-up
    _reference_act(policy, obs, instructions)
    rates, reference = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        policy.act(obs, instructions, list(range(batch)))
        rates.append(batch / (time.perf_counter() - start))
        start = time.perf_counter()
        _reference_act(policy, obs, instructions)
        reference.append(batch / (time.perf_counter() - start))
    return rates, reference


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


def _group_rollout_share(steps: int, repeats: int, workers: int) -> list[float]:
    """Per repeat: the fraction of a group rollout's wall time spent in `act()` (`workers` trajectories,
    libero_object task 0, state mode, sampling, every trajectory run for `steps` steps)."""
    from tgrpo.envs.libero_env import official_start
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol
    from tgrpo.envs.rollout import group_rollout
    from tgrpo.envs.workers import EnvSpec, WorkerPool

    policy = _policy("state+lora")
    act, spent = policy.act, [0.0]

    def timed_act(*args, **kwargs):
        start = time.perf_counter()
        out = act(*args, **kwargs)
        spent[0] += time.perf_counter() - start
        return out

    policy.act = timed_act
    spec = EnvSpec("libero_object", 0, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    shares = []
    with WorkerPool(workers) as pool:
        pool.ensure_many({i: spec for i in range(workers)})
        for k in range(repeats):
            spent[0] = 0.0
            start = time.perf_counter()
            r = group_rollout(pool, spec, policy, official_start("libero_object", 0, k), stop_rule="independent",
                              max_steps=steps, mode="sample")
            if failed := [e for e in r.errors if e]:  # a failed trajectory would shrink the simulator's share
                raise RuntimeError(f"group rollout failed: {failed[0]}")
            shares.append(spent[0] / (time.perf_counter() - start))
    return shares


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench/policy"))
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the SFT/eval default is 1)")
    parser.add_argument("--sim-steps", type=int, default=100)
    parser.add_argument("--group-steps", type=int, default=100, help="steps of each group rollout (0: skip)")
    parser.add_argument("--group-repeats", type=int, default=3, help="group rollouts timed")
    parser.add_argument("--group-workers", type=int, default=4, help="trajectories (worker processes) per group")
    args = parse_args(parser, argv, {"batches": "1,2", "rounds": 2, "sim_steps": 5, "group_steps": 3,
                                     "group_repeats": 1, "group_workers": 2})

    import torch

    from tgrpo.provenance import provenance

    torch.set_num_threads(args.threads)
    sim = _sim_steps_per_s(args.sim_steps)
    print(f"simulator (state mode, 1 env): {sim:.1f} steps/s", flush=True)
    rows = []
    for variant in VARIANTS:
        policy = _policy(variant)
        for batch in (int(b) for b in args.batches.split(",")):
            rates, reference = _actions_per_s(policy, batch, args.rounds)
            row = {"variant": variant, "batch": batch, "actions_per_s": statistics.median(rates),
                   "reference_actions_per_s": statistics.median(reference), "sim_steps_per_s": sim}
            row["policy_vs_sim"] = row["actions_per_s"] / sim
            row["act_vs_reference"] = row["actions_per_s"] / row["reference_actions_per_s"]
            rows.append(row)
            print(f"{variant:10s} batch {batch}: {row['actions_per_s']:8.1f} actions/s "
                  f"({row['act_vs_reference']:.1f}x the uncached module path, "
                  f"{row['policy_vs_sim']:.1f}x the simulator's steps/s)", flush=True)
    shares = (_group_rollout_share(args.group_steps, args.group_repeats, args.group_workers)
              if args.group_steps else [])
    if shares:
        print(f"group rollout ({args.group_workers} workers, state+lora, batch {args.group_workers}): act() takes "
              f"{', '.join(f'{100 * x:.1f}' for x in shares)} % of the wall time", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "policy_inference", "smoke": args.smoke, "threads": args.threads, "rounds": args.rounds,
              "rows": rows, "group_workers": args.group_workers, "group_rollout_policy_share": shares,
              "provenance": provenance()}
    (args.out / "policy_inference.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
