"""TGRPO's per-step reward ``R_t = f1 + f2 (+ success bonus)`` from a stage spec, vectorised over a rollout.

Stage index. Stages 1..K (sub-plans flattened). Stage k is *reached* at step t when its predicate and every
``also`` predicate hold at t and stage k-1 was reached at some step <= t (stage 0 always counts as reached); a
``latch`` stage also stays reached from then on while its ``also`` predicates keep holding. The stage index s_t is
the largest k reached at t, 0 if none: a per-state quantity that drops when, say, the object falls, but that
cannot skip a stage (stages must be reached in order).

Terms, for the action taken at step t (its result is privileged index t + 1):

- f1 = ``stage_weight * reward[s_{t+1}]`` (reward[0] = 0): the reward of the furthest stage reached;
- f2 = shaping from d_t, the end effector's distance to the key pose of the *next* stage to reach
  (stage min(s_t + 1, K)); ``negative_distance`` (the paper's form): ``-shaping_weight * min(d_{t+1}, clip)``;
  ``potential``: ``shaping_weight * (gamma * phi_{t+1} - phi_t)`` with ``phi = -min(d, clip)``;
- success bonus: ``success_bonus * done_t`` (LIBERO's own success after action t).

Masked steps (trajectories that already ended) get 0. ``sparse_rewards`` is standard GRPO's 0/1 success reward.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from tgrpo.rewards.predicates import Geometry, compile_key_pose, compile_predicate
from tgrpo.rewards.schema import stages_of

SHAPING_FORMS = ("negative_distance", "potential")


def _src(reason: str, **kw):
    return field(metadata={"reason": reason}, **kw)


@dataclass(frozen=True)
class RewardConfig:
    """Weights and form of the dense reward. Every field is recorded with results (``to_dict``)."""

    stage_weight: float = _src(
        "f1 weight. 1: stage rewards are normalised to (0, 1], so a step at the last stage earns 1", default=1.0)
    shaping_weight: float = _src(
        "f2 weight. 1: one metre of end-effector error costs as much as the whole stage ladder; typical errors "
        "are 0-0.3 m, so f2 refines within a stage without outweighing a stage change", default=1.0)
    shaping: str = _src(
        "negative_distance (paper section 3.1: f2 from the Euclidean distance to the key pose) or potential "
        "(gamma * phi(s') - phi(s), phi = -distance: policy-invariant shaping)", default="negative_distance")
    gamma: float = _src("discount in the potential-based form; 1 (GRPO returns are undiscounted)", default=1.0)
    success_bonus: float = _src(
        "added on the step LIBERO reports success. 1 = one more step at the top stage reward", default=1.0)
    distance_clip: float = _src(
        "distances above this (metres) count as this; 1 m is beyond the workspace, so it only guards against "
        "degenerate key poses", default=1.0)

    def __post_init__(self):
        if self.shaping not in SHAPING_FORMS:
            raise ValueError(f"unknown shaping {self.shaping!r}; valid: {', '.join(SHAPING_FORMS)}")
        if not self.distance_clip > 0:
            raise ValueError("distance_clip must be positive")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def reasons(cls) -> dict[str, str]:
        return {f.name: f.metadata["reason"] for f in fields(cls)}


@dataclass
class RewardTerms:
    """Reward of a group: N trajectories, M steps. ``stage`` and ``distance`` cover the M + 1 states."""

    rewards: np.ndarray  # [N, M]
    f1: np.ndarray  # [N, M]
    f2: np.ndarray  # [N, M]
    bonus: np.ndarray  # [N, M]
    stage: np.ndarray  # [N, M + 1] int
    distance: np.ndarray  # [N, M + 1] distance to the next stage's key pose (0 where it has none)

    @property
    def returns(self) -> np.ndarray:
        return self.rewards.sum(axis=-1)


class StageReward:
    """A stage spec compiled against one task's privileged layout."""

    def __init__(self, spec: dict, layout, key_poses: dict[str, dict] | None = None):
        """`key_poses`: optional stage name -> key pose overrides (from demonstrations; see keyposes.py)."""
        self.spec = spec
        self.layout = layout
        geo = Geometry(layout)
        self.stages = stages_of(spec)
        self.names = [s["name"] for s in self.stages]
        self.table = np.array([0.0] + [float(s["reward"]) for s in self.stages])
        self._checks = [[compile_predicate(geo, p) for p in [s["predicate"], *s.get("also", [])]]
                        for s in self.stages]
        self._latch = [bool(s.get("latch", False)) for s in self.stages]
        overrides = key_poses or {}
        unknown = sorted(set(overrides) - set(self.names))
        if unknown:
            raise ValueError(f"key poses for stages the spec does not have: {', '.join(unknown)}")
        self.key_poses = [overrides.get(s["name"], s.get("key_pose")) for s in self.stages]
        self._keys = [compile_key_pose(geo, k) for k in self.key_poses]
        self._eef = layout.slices["eef_pos"]

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def _conditions(self, P: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per stage: (its predicate, all its `also` predicates) as bool [..., T]."""
        out = []
        for checks in self._checks:
            also = np.ones(P.shape[:-1], dtype=bool)
            for extra in checks[1:]:
                also = also & extra(P)
            out.append((checks[0](P), also))
        return out

    def predicates(self, P: np.ndarray) -> np.ndarray:
        """bool [K, ..., T]: stage k's own condition (predicate and `also`) at each step, before ordering."""
        return np.stack([pred & also for pred, also in self._conditions(np.asarray(P, dtype=np.float64))])

    def stage_index(self, P: np.ndarray) -> np.ndarray:
        """int [..., T] stage index of each state of privileged arrays [..., T, D] (time = axis -2)."""
        P = np.asarray(P, dtype=np.float64)
        stage = np.zeros(P.shape[:-1], dtype=np.int64)
        reached_prev = np.ones(P.shape[:-1], dtype=bool)
        steps = np.arange(P.shape[-2])
        for k, (pred, also) in enumerate(self._conditions(P)):
            now = pred & also & reached_prev
            if self._latch[k]:
                # held from a start while `also` holds: some start in (last step `also` failed, t]
                last_false = np.maximum.accumulate(np.where(also, -1, steps), axis=-1)
                starts = np.cumsum(now, axis=-1)
                before = np.where(last_false >= 0,
                                  np.take_along_axis(starts, np.maximum(last_false, 0), axis=-1), 0)
                now = also & (starts - before > 0)
            stage[now] = k + 1
            reached_prev = np.logical_or.accumulate(now, axis=-1)
        return stage

    def distance(self, P: np.ndarray, stage: np.ndarray) -> np.ndarray:
        """float [..., T] end-effector distance to the key pose of the next stage (0 where it has none)."""
        nxt = np.minimum(stage, self.num_stages - 1)  # index of stage s+1 in 0-based stage order
        eef = P[..., self._eef[0]:self._eef[1]]
        d = np.zeros(P.shape[:-1])
        for k, fn in enumerate(self._keys):
            sel = nxt == k
            if fn is None or not sel.any():
                continue
            d = np.where(sel, np.linalg.norm(eef - fn(P), axis=-1), d)
        return d

    def terms(self, privileged: np.ndarray, done: np.ndarray | None = None, mask: np.ndarray | None = None,
              config: RewardConfig = RewardConfig()) -> RewardTerms:
        """Reward terms for privileged [N, M + 1, D] (index 0 = start), done and mask [N, M]."""
        P = np.asarray(privileged, dtype=np.float64)
        if P.ndim < 2 or P.shape[-1] != self.layout.size:
            raise ValueError(f"privileged must be [..., M + 1, {self.layout.size}], got {P.shape}")
        m = P.shape[-2] - 1
        done = np.zeros(P.shape[:-2] + (m,), dtype=bool) if done is None else np.asarray(done, dtype=bool)
        mask = np.ones(P.shape[:-2] + (m,), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if done.shape != P.shape[:-2] + (m,) or mask.shape != done.shape:
            raise ValueError(f"done and mask must be {P.shape[:-2] + (m,)}, got {done.shape} and {mask.shape}")
        stage = self.stage_index(P)
        dist = self.distance(P, stage)
        clipped = np.minimum(dist, config.distance_clip)
        f1 = config.stage_weight * self.table[stage[..., 1:]]
        if config.shaping == "negative_distance":
            f2 = -config.shaping_weight * clipped[..., 1:]
        else:
            phi = -clipped
            f2 = config.shaping_weight * (config.gamma * phi[..., 1:] - phi[..., :-1])
        bonus = config.success_bonus * done.astype(np.float64)
        mf = mask.astype(np.float64)
        f1, f2, bonus = f1 * mf, f2 * mf, bonus * mf
        return RewardTerms(rewards=f1 + f2 + bonus, f1=f1, f2=f2, bonus=bonus, stage=stage, distance=dist)

    def rewards(self, privileged, done=None, mask=None, config: RewardConfig = RewardConfig()) -> np.ndarray:
        return self.terms(privileged, done, mask, config).rewards


def sparse_rewards(done: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Standard GRPO's reward: 1 on the step LIBERO reports success, else 0 (so a trajectory's return is its
    0/1 success). done, mask: [N, M]."""
    done = np.asarray(done, dtype=bool)
    ok = done if mask is None else done & np.asarray(mask, dtype=bool)
    first = ok & (np.cumsum(ok, axis=-1) == 1)
    return first.astype(np.float64)


def rollout_rewards(rollout, spec: dict, config: RewardConfig = RewardConfig(), key_poses=None) -> RewardTerms:
    """Dense reward terms of a ``GroupRollout`` (tgrpo.envs.rollout)."""
    return StageReward(spec, rollout.layout, key_poses).terms(rollout.privileged, rollout.done, rollout.mask,
                                                              config)
