"""Reward cost against simulation cost: time StageReward on a [N, M + 1, D] rollout of real privileged states and
compare with the time of one simulated step of the same task (state mode, no rendering) on the same machine.

Used by ``tgrpo-bench rewards bench``; the figure goes to docs/rewards.md.
"""

from __future__ import annotations

import platform
import time

import numpy as np

from tgrpo.rewards.reward import RewardConfig, StageReward


def time_reward(reward: StageReward, privileged: np.ndarray, done: np.ndarray, repeats: int = 20,
                config: RewardConfig | None = None) -> dict:
    """Median wall time of ``reward.terms`` on privileged [N, M + 1, D] (after one warm-up call)."""
    config = config or RewardConfig()
    reward.terms(privileged, done, config=config)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        reward.terms(privileged, done, config=config)
        times.append(time.perf_counter() - t0)
    n, m = done.shape
    med = float(np.median(times))
    return {"shape": list(privileged.shape), "repeats": repeats, "median_s": med, "min_s": float(min(times)),
            "per_step_ms": 1e3 * med / (n * m)}


def run_benchmark(suite: str, task_id: int, spec: dict, n: int = 4, m: int = 300, repeats: int = 20,
                  policy: str = "expert", key_poses=None, log=None) -> dict:
    """Record m steps of one real episode (expert, else random actions), time env.step, tile to [n, m + 1, D]
    with small per-trajectory noise, time the reward."""
    from tgrpo.envs.libero_env import LiberoEnv, official_start
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import MAX_POLICY_STEPS, Protocol

    proto = Protocol(episode_start="restore", max_policy_steps={**MAX_POLICY_STEPS, suite: max(m, 1)})
    env = LiberoEnv(suite, task_id, ObsConfig(mode="state"), proto)
    try:
        if policy == "expert":
            from tgrpo.experts import ExpertPolicy

            actor = ExpertPolicy()
        else:
            from tgrpo.policies.simple import RandomPolicy

            actor = RandomPolicy(seed=0)
        obs = env.start_episode(official_start(suite, task_id, 0))
        actor.begin_episode(0, env.info.instruction, (0,), env.layout)
        priv, step_s = [obs["privileged"]], []
        for _ in range(m):
            if env.finished:  # success before m steps: keep the last state (the reward still has m steps)
                priv.append(priv[-1])
                continue
            action = actor.act({k: np.asarray(v)[None] for k, v in obs.items()}, [env.info.instruction], [0])
            t0 = time.perf_counter()
            obs, _ = env.step(np.asarray(action.actions[0], dtype=np.float64))
            step_s.append(time.perf_counter() - t0)
            priv.append(obs["privileged"])
        layout = env.layout
    finally:
        env.close()
    one = np.stack(priv)
    rng = np.random.default_rng(0)
    batch = np.repeat(one[None], n, axis=0)
    batch[..., :3] += rng.normal(0.0, 1e-3, size=batch[..., :3].shape)  # distinct trajectories
    done = np.zeros((n, m), dtype=bool)
    t0 = time.perf_counter()
    reward = StageReward(spec, layout, key_poses)
    compile_s = time.perf_counter() - t0
    timing = time_reward(reward, batch, done, repeats)
    sim_ms = 1e3 * float(np.mean(step_s))
    out = {
        "task": f"{suite}/{task_id}", "stages": reward.num_stages, "D": layout.size, "policy": policy,
        "compile_ms": 1e3 * compile_s, "reward": timing,
        "sim_step_ms_mean": sim_ms, "sim_step_ms_median": 1e3 * float(np.median(step_s)), "sim_steps": len(step_s),
        "reward_over_sim": timing["per_step_ms"] / sim_ms,
        "machine": {"cpu_count": __import__("os").cpu_count(), "processor": platform.processor(),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "numpy": np.__version__, "load_avg": list(__import__("os").getloadavg())},
    }
    if log:
        log(f"{out['task']}: reward {timing['median_s'] * 1e3:.2f} ms for {timing['shape']} "
            f"({timing['per_step_ms'] * 1e3:.1f} us/step), sim {sim_ms:.1f} ms/step, "
            f"ratio {100 * out['reward_over_sim']:.3f}%")
    return out
