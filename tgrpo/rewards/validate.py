"""Validation of stage specs against demonstrations on the real simulator.

Per task, from official init states 0, 1, ... until N expert demonstrations succeeded (at most 2N tried):

- demonstrations: the scripted expert (``tgrpo.experts.ExpertPolicy``), kept when LIBERO reports success;
- failures, from the same init state and cut to the demonstration's length M (as in a TGRPO group, which stops
  when one trajectory succeeds): the expert frozen after 60% of M steps (a near miss), the expert with the
  gripper held open (cannot grasp), and uniform random actions. Any of them that succeeds counts as a success.

Checks (the spec passes when all hold and at least one demonstration was found monotone; with none, the task is
``no-demo``):

1. ``monotone``: the stage index never decreases along a successful demonstration (demonstrations that went
   back by their own record, a retried grasp or a replanned skill, are reported as ``retried`` and not held to
   this: the object really was dropped, the knob really turned back; a retried one whose stage index still never
   decreased is counted in ``demos_retried_monotone``, evidence as good as a clean one);
2. ``reaches_last``: it is the last stage on the success step;
3. ``separates``: failures' mean return (default RewardConfig) is below the successes' mean return;
4. reported, not gating: ``final_agreement``, the fraction of steps over all rollouts where "last stage reached"
   equals LIBERO's success.

One simulator process at a time (built and closed per task).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from tgrpo.policies.base import Policy, PolicyOutput
from tgrpo.rewards.reward import RewardConfig, StageReward
from tgrpo.rewards.schema import spec_hash

FREEZE_FRACTION = 0.6


@dataclass
class Episode:
    kind: str
    init_index: int
    privileged: np.ndarray  # [T + 1, D]
    done: np.ndarray  # [T]
    success: bool
    retried: bool = False  # the demonstrator's own stage log went backwards (a retried grasp, ...)


@dataclass
class TaskValidation:
    suite: str
    task_id: int
    spec_sha256: str
    status: str  # pass / fail / no-demo
    stages: int
    demos: int
    demos_monotone: int
    demos_retried: int
    demos_reach_last: int
    worst_drop: int
    failures: int
    mean_return_success: float | None
    mean_return_failure: float | None
    final_agreement: float | None
    mean_stage_failure: float | None
    reasons: list[str] = field(default_factory=list)
    demos_retried_monotone: int = 0  # retried demonstrations whose stage index never decreased all the same
    demo_source: str = "expert"
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class _Frozen(Policy):
    """The wrapped policy for `steps` actions, then no motion with the gripper as last commanded."""

    name = "frozen"

    def __init__(self, base: Policy, steps: int):
        self.base, self.steps, self.t, self.last = base, steps, 0, -1.0

    def begin_episode(self, slot, instruction, episode_key=(), layout=None):
        self.t = 0
        self.base.begin_episode(slot, instruction, episode_key, layout)

    def __getattr__(self, name):  # the wrapped demonstrator's records (stage_log, transitions)
        if name in ("stage_log", "transitions"):
            return getattr(self.base, name)
        raise AttributeError(name)

    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0):
        self.t += 1
        if self.t <= self.steps:
            out = self.base.act(obs, instructions, slots, mode, temperature)
            self.last = float(out.actions[0, 6])
            return out
        a = np.zeros((len(slots), 7))
        a[:, 6] = self.last
        return PolicyOutput(a)


class _GripperOpen(Policy):
    """The wrapped policy with the gripper command forced open."""

    name = "gripper_open"

    def __init__(self, base: Policy):
        self.base = base

    def begin_episode(self, slot, instruction, episode_key=(), layout=None):
        self.base.begin_episode(slot, instruction, episode_key, layout)

    def __getattr__(self, name):
        if name in ("stage_log", "transitions"):
            return getattr(self.base, name)
        raise AttributeError(name)

    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0):
        out = self.base.act(obs, instructions, slots, mode, temperature)
        a = np.array(out.actions, dtype=np.float64)
        a[:, 6] = -1.0
        return PolicyOutput(a)


def run_episode(env, policy: Policy, start, max_steps: int, kind: str, init_index: int,
                episode_key: tuple = ()) -> Episode:
    """One episode in a LiberoEnv (state observations), stopping at success or after max_steps."""
    obs = env.start_episode(start)
    policy.begin_episode(0, env.info.instruction, episode_key, env.layout)
    priv, done = [obs["privileged"]], []
    for _ in range(max_steps):
        out = policy.act({k: np.asarray(v)[None] for k, v in obs.items()}, [env.info.instruction], [0])
        obs, d = env.step(np.asarray(out.actions[0], dtype=np.float64))
        priv.append(obs["privileged"])
        done.append(d)
        if d or env.finished:
            break
    return Episode(kind, init_index, np.array(priv), np.array(done, dtype=bool), bool(any(done)),
                   demonstrator_retried(policy))


def demonstrator_retried(policy, slot: int = 0) -> bool:
    """Whether the demonstrator went back during the episode, by its own record when it keeps one: its stage
    log decreased (a retried grasp), or it entered the same stage of the same skill on the same entities twice
    (a replan after a failed attempt). Policies without such a record count as not retried."""
    log = getattr(policy, "stage_log", None)
    if log is not None and (np.diff(np.asarray(log(slot))) < 0).any():
        return True
    transitions = getattr(policy, "transitions", None)
    if transitions is None:
        return False
    keys = [tuple(str(tr.get(k)) for k in ("skill", "object", "target", "joint", "stage"))
            for tr in transitions(slot)]
    return len(keys) != len(set(keys))


def check_task(reward: StageReward, demos: list[Episode], failures: list[Episode],
               config: RewardConfig | None = None) -> dict:
    """The checks on already collected episodes (no simulator): a dict of TaskValidation fields."""
    config = config or RewardConfig()
    k_last = reward.num_stages
    monotone = reach = retried_monotone = 0
    worst = 0
    reasons: list[str] = []
    agree_num = agree_den = 0
    clean = [ep for ep in demos if not ep.retried]
    for ep in demos:
        stage = reward.stage_index(ep.privileged)
        t_success = int(np.flatnonzero(ep.done)[0]) + 1
        if stage[t_success] == k_last:
            reach += 1
        drops = np.diff(stage)
        if ep.retried:  # the demonstration itself went back (e.g. a missed grasp): a drop is faithful
            retried_monotone += int(not (drops < 0).any())
            continue
        worst = max(worst, int(-drops.min()) if len(drops) and drops.min() < 0 else 0)
        if not (drops < 0).any():
            monotone += 1
    lengths = {ep.init_index: len(ep.done) for ep in demos}
    ret_s = [float(reward.terms(ep.privileged[None], ep.done[None], config=config).returns[0]) for ep in demos]
    ret_f, stage_f = [], []
    for ep in failures:
        m = min(lengths.get(ep.init_index, len(ep.done)), len(ep.done))
        P, d = ep.privileged[None, :m + 1], ep.done[None, :m]
        terms = reward.terms(P, d, config=config)
        ret_f.append(float(terms.returns[0]))
        stage_f.append(float(terms.stage[0, 1:].mean()))
    for ep in [*demos, *failures]:
        stage = reward.stage_index(ep.privileged)[1:]
        agree_num += int(((stage == k_last) == ep.done).sum())
        agree_den += len(ep.done)
    if demos:
        if monotone < len(clean):
            reasons.append(f"stage index decreases in {len(clean) - monotone} of {len(clean)} demos "
                           f"(worst drop {worst})")
        if reach < len(demos):
            reasons.append(f"last stage not reached at the success step in {len(demos) - reach} of {len(demos)} "
                           f"demos")
    separates = bool(ret_f) and bool(ret_s) and np.mean(ret_f) < np.mean(ret_s)
    if demos and ret_f and not separates:
        reasons.append(f"failures score {np.mean(ret_f):.2f} on average, successes {np.mean(ret_s):.2f}")
    status = "fail" if reasons else ("no-demo" if monotone + retried_monotone == 0 else "pass")
    return {
        "status": status, "stages": k_last, "demos": len(demos), "demos_monotone": monotone,
        "demos_retried": len(demos) - len(clean), "demos_retried_monotone": retried_monotone,
        "demos_reach_last": reach, "worst_drop": worst, "failures": len(failures),
        "mean_return_success": round(float(np.mean(ret_s)), 3) if ret_s else None,
        "mean_return_failure": round(float(np.mean(ret_f)), 3) if ret_f else None,
        "final_agreement": round(agree_num / agree_den, 4) if agree_den else None,
        "mean_stage_failure": round(float(np.mean(stage_f)), 3) if stage_f else None,
        "reasons": reasons,
    }


def collect(env, expert_factory, starts: list[tuple[int, object]], random_seed: int = 0,
            log=None, wanted: int | None = None) -> tuple[list[Episode], list[Episode]]:
    """Expert demonstrations and failure rollouts on the given (index, EpisodeStart) pairs, in order, until
    `wanted` expert demonstrations succeeded (default: all pairs)."""
    from tgrpo.policies.simple import RandomPolicy

    demos, failures = [], []
    expert_ok = 0
    for idx, start in starts:
        if wanted is not None and expert_ok >= wanted:
            break
        ep = run_episode(env, expert_factory(), start, env.max_steps, "expert", idx, (idx,))
        if log:
            log(f"  init {idx}: expert {'succeeded' if ep.success else 'FAILED'} in {len(ep.done)} steps")
        if not ep.success:  # no demonstration length to cut failures to: the expert's own failure is one
            failures.append(ep)
            continue
        demos.append(ep)
        expert_ok += 1
        m = len(ep.done)
        variants = [
            ("expert_frozen", _Frozen(expert_factory(), max(1, int(FREEZE_FRACTION * m)))),
            ("expert_gripper_open", _GripperOpen(expert_factory())),
            ("random", RandomPolicy(seed=random_seed + idx)),
        ]
        for kind, policy in variants:
            other = run_episode(env, policy, start, m, kind, idx, (idx,))
            (demos if other.success else failures).append(other)
    return demos, failures


def validate_task(suite: str, task_id: int, spec: dict, episodes: int = 3, key_poses=None,
                  config: RewardConfig | None = None, log=None, expert_factory=None,
                  tries: int | None = None) -> TaskValidation:
    """Build the task's env, collect demonstrations (`episodes` successful ones, trying official init states
    0, 1, ... up to `tries`, default 2 * episodes) and failures, run the checks."""
    from tgrpo.envs.libero_env import LiberoEnv, official_start
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import INIT_STATES_PER_TASK, Protocol

    if expert_factory is None:
        from tgrpo.experts import ExpertPolicy

        expert_factory = ExpertPolicy
    t0 = time.time()
    env = LiberoEnv(suite, task_id, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    try:
        reward = StageReward(spec, env.layout, key_poses)
        tries = min(INIT_STATES_PER_TASK, tries or 2 * episodes)
        starts = [(i, official_start(suite, task_id, i)) for i in range(tries)]
        demos, failures = collect(env, expert_factory, starts, log=log, wanted=episodes)
    finally:
        env.close()
    checks = check_task(reward, demos, failures, config)
    return TaskValidation(suite=suite, task_id=task_id, spec_sha256=spec_hash(spec),
                          seconds=round(time.time() - t0, 1), **checks)


def table(rows: list[TaskValidation]) -> str:
    """Markdown table of validation rows."""
    head = ("| task | stages | status | demos | monotone | last stage at success | return success | "
            "return failure | failures | final = success |")
    lines = [head, "|" + "---|" * 10]
    fmt_demos = (lambda r: f"{r.demos}" + (f" ({r.demos_retried} retried)" if r.demos_retried else ""))
    for r in rows:
        fmt = (lambda x: "-" if x is None else f"{x:.2f}")
        lines.append(
            f"| {r.suite}/{r.task_id} | {r.stages} | {r.status} | {fmt_demos(r)} | "
            f"{r.demos_monotone}/{r.demos - r.demos_retried}"
            f"{f' + {r.demos_retried_monotone}/{r.demos_retried} retried' if r.demos_retried else ''} | "
            f"{r.demos_reach_last}/{r.demos} | {fmt(r.mean_return_success)} | {fmt(r.mean_return_failure)} | "
            f"{r.failures} | {'-' if r.final_agreement is None else f'{100 * r.final_agreement:.1f}%'} |")
    return "\n".join(lines)


def demonstrations_on_sampled_states(suite: str, task_id: int, wanted: int, seed: int = 1000, log=None,
                                     expert_factory=None) -> tuple[list[Episode], object]:
    """Successful expert demonstrations from fresh placements (LIBERO's samplers, seeds seed, seed+1, ...),
    never the official evaluation states; at most 2 * wanted tries. Returns (demos, layout)."""
    from tgrpo.envs.libero_env import LiberoEnv
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol

    if expert_factory is None:
        from tgrpo.experts import ExpertPolicy

        expert_factory = ExpertPolicy
    env = LiberoEnv(suite, task_id, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    demos: list[Episode] = []
    try:
        for k in range(2 * wanted):
            if len(demos) >= wanted:
                break
            start = env.sample_start(seed + k)
            ep = run_episode(env, expert_factory(), start, env.max_steps, "expert", seed + k, (seed + k,))
            if log:
                log(f"  placement seed {seed + k}: expert {'succeeded' if ep.success else 'failed'} "
                    f"in {len(ep.done)} steps")
            if ep.success:
                demos.append(ep)
        layout = env.layout
    finally:
        env.close()
    return demos, layout
