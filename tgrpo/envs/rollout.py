"""Lock-step group rollout: N copies of one task from the same initial state, one batched policy call per step.

Stop rules:
- ``group`` (the paper's): every trajectory stops on the step the first one succeeds, or at the suite's max steps,
  so all share one length M.
- ``independent``: each trajectory runs until its own success or max steps; a finished env is never stepped again,
  and `mask` marks which steps are real.

A worker that crashes ends its trajectory as a recorded failure (`errors[i]`); the other trajectories go on.
MuJoCo warnings a trajectory raised (an unstable simulation resets its state and runs on) are in `sim_warnings[i]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tgrpo.envs.libero_env import EpisodeStart
from tgrpo.envs.workers import EnvSpec, WorkerPool, stack
from tgrpo.policies.base import Policy

STOP_RULES = ("group", "independent")


@dataclass
class GroupRollout:
    """Arrays of one group; N trajectories, M steps (the longest), D privileged dims.

    obs: dict of [N, M, ...] observations the policy acted on at each step (zeros where mask is False).
    actions: [N, M, 7] float64 env actions. tokens, logprobs: [N, M, 7] or None when the policy has no tokens.
    privileged: [N, M + 1, D] privileged state; index 0 is the start (after the wait steps), t + 1 after action t.
    done: [N, M] LIBERO's success check after each action. mask: [N, M] steps that happened.
    success: [N] bool. length: [N] int steps taken. errors: per trajectory None or the failure message.
    sim_warnings: per trajectory the MuJoCo warnings raised (kind -> first policy step, 0: during the start; empty:
    none), or None when the worker could not say (it never started the trajectory, or crashed).
    """

    obs: dict[str, np.ndarray]
    actions: np.ndarray
    tokens: np.ndarray | None
    logprobs: np.ndarray | None
    privileged: np.ndarray
    done: np.ndarray
    mask: np.ndarray
    success: np.ndarray
    length: np.ndarray
    errors: list[str | None]
    sim_warnings: list[dict[str, int] | None]
    instruction: str
    layout: object = field(repr=False, default=None)


def group_rollout(
    pool: WorkerPool,
    spec: EnvSpec,
    policy: Policy,
    starts: EpisodeStart | list[EpisodeStart],
    stop_rule: str = "group",
    max_steps: int | None = None,
    mode: str = "sample",
    temperature: float = 1.0,
    episode_key: tuple = (),
) -> GroupRollout:
    """Roll out len(pool) trajectories of `spec` in lock-step.

    starts: one EpisodeStart shared by the group (the paper's setting) or a list of N, one per trajectory.
    max_steps: policy steps, at most the suite's (default the suite's).
    """
    if stop_rule not in STOP_RULES:
        raise ValueError(f"unknown stop rule {stop_rule!r}; valid: {', '.join(STOP_RULES)}")
    n = len(pool)
    starts = [starts] * n if isinstance(starts, EpisodeStart) else list(starts)
    if len(starts) != n:
        raise ValueError(f"{len(starts)} episode starts for a group of {n}")

    errors: list[str | None] = [None] * n
    infos: dict[int, dict] = {}
    for i, result in pool.ensure_many({i: spec for i in range(n)}).items():
        if isinstance(result, Exception):
            errors[i] = f"env build failed: {result}"
        else:
            infos[i] = result
    if not infos:
        raise RuntimeError(f"no worker could build {spec.suite} task {spec.task_id}: {errors[0]}")
    info = next(iter(infos.values()))
    horizon = min(max_steps or info["max_steps"], info["max_steps"])

    current: dict[int, dict] = {}
    for i, result in pool.broadcast("start", {i: starts[i] for i in infos}).items():
        if isinstance(result, Exception):
            errors[i] = f"episode start failed: {result}"
        else:
            current[i] = result
            policy.begin_episode(i, info["instruction"], (*episode_key, i), info["layout"])
    if not current:
        raise RuntimeError(f"no trajectory of the group could start: {errors}")

    template = next(iter(current.values()))
    obs_steps: list[dict[int, dict]] = []
    act_steps: list[dict[int, tuple]] = []
    priv_steps: list[dict[int, np.ndarray]] = [{i: o["privileged"] for i, o in current.items()}]
    done_steps: list[dict[int, bool]] = []
    success = np.zeros(n, dtype=bool)
    active = sorted(current)

    for _ in range(horizon):
        if not active:
            break
        batch = stack([current[i] for i in active])
        out = policy.act(batch, [info["instruction"]] * len(active), active, mode=mode, temperature=temperature)
        obs_steps.append({i: current[i] for i in active})
        act_steps.append({
            i: (out.actions[k], None if out.tokens is None else out.tokens[k],
                None if out.logprobs is None else out.logprobs[k])
            for k, i in enumerate(active)
        })
        results = pool.broadcast("step", {i: out.actions[k] for k, i in enumerate(active)})
        priv, dones = {}, {}
        still = []
        for i in active:
            result = results[i]
            if isinstance(result, Exception):
                errors[i] = f"step {len(obs_steps) - 1} failed: {result}"
                del obs_steps[-1][i], act_steps[-1][i]  # the action never took effect: not a step of the trajectory
                continue
            current[i], done = result
            priv[i], dones[i] = current[i]["privileged"], done
            success[i] |= done
            if not done:
                still.append(i)
        priv_steps.append(priv)
        done_steps.append(dones)
        if stop_rule == "group" and success.any():
            break
        active = still

    warnings = pool.broadcast("sim_warnings", {i: None for i in current})
    sim_warnings = [None if isinstance(warnings.get(i), Exception) else warnings.get(i) for i in range(n)]
    return _assemble(n, template, obs_steps, act_steps, priv_steps, done_steps, success, errors, sim_warnings, info)


def _assemble(n, template, obs_steps, act_steps, priv_steps, done_steps, success, errors, sim_warnings,
              info) -> GroupRollout:
    m = len(obs_steps)
    mask = np.zeros((n, m), dtype=bool)
    for t, step in enumerate(obs_steps):
        for i in step:
            mask[i, t] = True
    obs = {key: np.zeros((n, m, *np.shape(v)), dtype=np.asarray(v).dtype) for key, v in template.items()}
    actions = np.zeros((n, m, 7))
    has_tokens = any(a[1] is not None for step in act_steps for a in step.values())
    tokens = np.zeros((n, m, 7), dtype=np.int64) if has_tokens else None
    logprobs = np.zeros((n, m, 7), dtype=np.float32) if has_tokens else None
    done = np.zeros((n, m), dtype=bool)
    privileged = np.zeros((n, m + 1, info["layout"].size))
    for t in range(m):
        for i, o in obs_steps[t].items():
            for key, value in o.items():
                obs[key][i, t] = value
            actions[i, t], tok, lp = act_steps[t][i]
            if has_tokens:
                tokens[i, t], logprobs[i, t] = tok, lp
        for i, d in done_steps[t].items():
            done[i, t] = d
    for t, step in enumerate(priv_steps):
        for i, p in step.items():
            privileged[i, t] = p
    return GroupRollout(
        obs=obs, actions=actions, tokens=tokens, logprobs=logprobs, privileged=privileged, done=done,
        mask=mask, success=success, length=mask.sum(axis=1), errors=errors, sim_warnings=sim_warnings,
        instruction=info["instruction"], layout=info["layout"],
    )
