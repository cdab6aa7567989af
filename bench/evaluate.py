"""Evaluate a policy on LIBERO under the pinned protocol, episodes spread over worker processes.

Episode k of a task starts from the task's official init state k. Every worker runs its own episode; each step
the policy acts once per task on the batch of that task's running episodes (greedy decoding, the protocol's;
``temperature > 0`` samples instead, a diagnostic recorded with every row).
A finished episode becomes a row at once, so a killed run resumes where it stopped. A row records the MuJoCo
warnings its episode raised (``sim_warnings``: kind -> first policy step), an unstable simulation among them.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.results import ResultStore, summarize
from tgrpo.envs.observation import ObsConfig
from tgrpo.envs.protocol import OPENVLA_PROTOCOL, Protocol
from tgrpo.envs.workers import EnvSpec, WorkerPool, stack
from tgrpo.policies.base import Policy
from tgrpo.provenance import provenance


@dataclass(frozen=True)
class EvalRequest:
    suite: str
    task_ids: tuple[int, ...]
    episode_ids: tuple[int, ...]
    obs: ObsConfig
    out_dir: Path
    protocol: Protocol = OPENVLA_PROTOCOL
    workers: int = 2
    policy_seed: int = 0
    profile: str | None = None
    temperature: float = 0.0  # 0: greedy argmax, OpenVLA's decoding; > 0: sampled, per-episode seeded

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")

    @property
    def decoding(self) -> dict:
        return {"mode": "greedy"} if self.temperature == 0 else {"mode": "sample", "temperature": self.temperature}

    def run_config(self, policy: Policy) -> dict:
        """What identifies this run; a resumed run must match it exactly."""
        return {
            "suite": self.suite, "task_ids": list(self.task_ids), "episode_ids": list(self.episode_ids),
            "policy": policy.describe(), "obs": self.obs.to_dict(), "protocol": self.protocol.to_dict(),
            "seeds": {"policy": self.policy_seed, "env": self.protocol.env_seed}, "profile": self.profile,
            "decoding": self.decoding,
        }


@dataclass
class _Running:
    task_id: int
    episode: int
    instruction: str
    max_steps: int
    obs: dict
    started: float = field(default_factory=time.monotonic)
    steps: int = 0


def evaluate(request: EvalRequest, policy: Policy, progress: bool = True) -> dict:
    """Run (or resume) the evaluation; returns the summary over all finished rows."""
    store = ResultStore(request.out_dir)
    config = request.run_config(policy)
    done_rows = store.begin(config)
    finished = {(r["task_id"], r["episode"]) for r in done_rows}
    todo = deque((t, k) for t in request.task_ids for k in request.episode_ids if (t, k) not in finished)
    block = provenance(**{k: config[k] for k in ("protocol", "obs", "seeds", "profile", "decoding")})
    bar = _progress(len(request.task_ids) * len(request.episode_ids), len(done_rows), progress)
    successes = sum(bool(r["success"]) for r in done_rows)

    def record(run: _Running, success: bool, error: str | None, sim_warnings: dict | None) -> None:
        nonlocal successes
        from tgrpo.envs.libero_env import task_info

        info = task_info(request.suite, run.task_id)
        store.append({
            "suite": request.suite, "task_id": run.task_id, "task_name": info.name, "instruction": info.instruction,
            "episode": run.episode, "success": bool(success), "steps": run.steps, "error": error,
            "sim_warnings": sim_warnings,
            "wall_s": round(time.monotonic() - run.started, 3), "policy": config["policy"], "provenance": block,
        })
        successes += bool(success)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"success {successes}/{bar.n}")

    if todo:
        with WorkerPool(min(request.workers, len(todo))) as pool:
            running: dict[int, _Running] = {}
            while todo or running:
                idle = [i for i in range(len(pool)) if i not in running]
                if todo and idle:
                    _start_episodes(pool, request, policy, todo, idle, running, record)
                if running:
                    _step_all(pool, policy, running, record, request.decoding)
    if bar is not None:
        bar.close()
    summary = summarize(store.read_rows())
    store.write_summary(summary)
    return summary


def _start_episodes(pool, request, policy, todo, idle, running, record) -> None:
    from tgrpo.envs.libero_env import official_start

    assigned = {i: todo.popleft() for i in idle[: len(todo)]}
    specs = {i: EnvSpec(request.suite, t, request.obs, request.protocol) for i, (t, _) in assigned.items()}
    infos = pool.ensure_many(specs)
    starts = {i: official_start(request.suite, t, k)
              for i, (t, k) in assigned.items() if not isinstance(infos[i], Exception)}
    results = pool.broadcast("start", starts)
    for i, (t, k) in assigned.items():
        info = infos[i]
        run = _Running(t, k, "" if isinstance(info, Exception) else info["instruction"],
                       0 if isinstance(info, Exception) else info["max_steps"], {})
        outcome = info if isinstance(info, Exception) else results[i]
        if isinstance(outcome, Exception):
            record(run, False, f"episode start failed: {outcome}", None)
            continue
        run.obs = outcome
        running[i] = run
        policy.begin_episode(i, run.instruction, (t, k), info["layout"])


def _step_all(pool, policy, running, record, decoding: dict) -> None:
    """One policy step for every running episode: one batched `act` per task, then all envs step in parallel."""
    actions: dict[int, np.ndarray] = {}
    by_task: dict[int, list[int]] = {}
    for i, run in running.items():
        by_task.setdefault(run.task_id, []).append(i)
    for slots in by_task.values():
        batch = stack([running[i].obs for i in slots])
        out = policy.act(batch, [running[i].instruction for i in slots], slots, mode=decoding["mode"],
                         temperature=decoding.get("temperature", 1.0))
        actions.update({i: out.actions[k] for k, i in enumerate(slots)})
    results = pool.broadcast("step", actions)
    ended: dict[int, tuple[bool, str | None]] = {}
    for i, result in results.items():
        run = running[i]
        if isinstance(result, Exception):
            ended[i] = False, f"step {run.steps} failed: {result}"
            continue
        run.obs, success = result
        run.steps += 1
        if success or run.steps >= run.max_steps:
            ended[i] = success, None
    warnings = pool.broadcast("sim_warnings", {i: None for i in ended}) if ended else {}
    for i, (success, error) in ended.items():
        record(running.pop(i), success, error, None if isinstance(warnings[i], Exception) else warnings[i])


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="episode", desc="eval", dynamic_ncols=True)
