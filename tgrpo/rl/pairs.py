"""Preference pairs from one group of trajectories rolled out from one shared start (pure numpy).

A pair is ``(chosen, rejected)``: indices into the group's N trajectories. Every trajectory is in at most one pair
of its group, so the pairs of a group are independent comparisons. Trajectories whose worker crashed
(``valid[i]`` False) are never paired: a crash says nothing about the policy.

- ``success`` (DPO): a successful trajectory over a failed one; no pair when all succeed or all fail.
- ``cost`` (GRAPE): trajectories ranked by :func:`trajectory_cost`, the lowest cost preferred; the best is paired
  with the worst, the second best with the second worst, ... (GRAPE's top-m over bottom-m), as long as the chosen
  one's cost is strictly lower.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tgrpo.registry import Registry

Pairs = list[tuple[int, int]]
PAIRINGS: Registry[Callable[..., Pairs]] = Registry("pairing")


@dataclass(frozen=True)
class CostWeights:
    """GRAPE's trajectory cost from the dense reward's stage spec:
    ``cost = success * (1 - success) + stage * (1 - s*/K) + progress * d* / clip / K``.

    s* is the furthest stage the trajectory reached (0..K); d* the end effector's mean distance (each clipped at
    `clip`), over the states at stage s*, to the key pose of the next stage (the f2 target of the dense reward).
    A mean, like GRAPE's per-stage costs summed over the stage's steps, but not growing with the time spent there;
    not the closest approach: a group's trajectories share their start state, which is often the closest one.
    success 1 and stage 1: LIBERO's success outranks any stage ladder, as in GRAPE's reward (its success indicator
        is a separate term); one more stage reached lowers the cost by 1/K.
    progress 0.5: within-stage progress is worth at most half a stage (0.5/K), so reaching the next stage always
        outranks getting closer inside the current one.
    clip 1.0 m: the dense reward's distance clip (`RewardConfig.distance_clip`): beyond the workspace.
    """

    success: float = 1.0
    stage: float = 1.0
    progress: float = 0.5
    clip: float = 1.0

    def __post_init__(self) -> None:
        if min(self.success, self.stage, self.progress) < 0 or not self.clip > 0:
            raise ValueError(f"cost weights must be >= 0 and clip > 0, got {self}")


def register_pairing(name: str) -> Callable:
    """Decorator: register ``fn(success, valid, cost, max_pairs) -> [(chosen, rejected), ...]`` under ``name``."""
    return PAIRINGS.register(name)


def trajectory_cost(stage: np.ndarray, distance: np.ndarray, success: np.ndarray, mask: np.ndarray,
                    num_stages: int, weights: CostWeights = CostWeights()) -> np.ndarray:
    """``[N]`` cost of each trajectory (lower is better; formula: `CostWeights`).

    stage ``[N, M + 1]`` int stage index of every state (index 0 the start), distance ``[N, M + 1]`` to the next
    stage's key pose, both as `tgrpo.rewards.reward.StageReward.terms` gives them; success ``[N]`` bool; mask
    ``[N, M]`` steps that happened (state t + 1 exists when step t does; the start always counts)."""
    stage, distance = np.asarray(stage), np.asarray(distance, dtype=np.float64)
    n, states = stage.shape
    if distance.shape != (n, states) or np.shape(mask) != (n, states - 1) or np.shape(success) != (n,):
        raise ValueError(f"need stage and distance [N, M + 1], mask [N, M], success [N]; got {stage.shape}, "
                         f"{distance.shape}, {np.shape(mask)}, {np.shape(success)}")
    if num_stages < 1:
        raise ValueError(f"num_stages must be >= 1, got {num_stages}")
    seen = np.concatenate([np.ones((n, 1), dtype=bool), np.asarray(mask, dtype=bool)], axis=1)
    reached = np.where(seen, stage, -1).max(axis=1)
    at_best = seen & (stage == reached[:, None])
    mean = np.where(at_best, np.minimum(distance, weights.clip), 0.0).sum(axis=1) / at_best.sum(axis=1)
    return (weights.success * (1.0 - np.asarray(success, dtype=np.float64))
            + weights.stage * (1.0 - reached / num_stages)
            + weights.progress * mean / weights.clip / num_stages)


@register_pairing("success")
def success_pairs(success: np.ndarray, valid: np.ndarray, cost: np.ndarray | None = None,
                  max_pairs: int | None = None) -> Pairs:
    """The i-th success (in index order) over the i-th failure; ``cost`` is not read."""
    ok = np.asarray(success, dtype=bool) & np.asarray(valid, dtype=bool)
    failed = ~np.asarray(success, dtype=bool) & np.asarray(valid, dtype=bool)
    pairs = list(zip(np.flatnonzero(ok).tolist(), np.flatnonzero(failed).tolist(), strict=False))
    return pairs[:max_pairs]


@register_pairing("cost")
def cost_pairs(success: np.ndarray, valid: np.ndarray, cost: np.ndarray | None = None,
               max_pairs: int | None = None) -> Pairs:
    """Best with worst, second best with second worst, ... while the chosen cost is strictly lower (ties by index:
    a stable sort)."""
    if cost is None:
        raise ValueError("cost pairing needs the trajectories' costs")
    index = np.flatnonzero(np.asarray(valid, dtype=bool))
    ranked = index[np.argsort(np.asarray(cost)[index], kind="stable")].tolist()
    pairs = [(ranked[k], ranked[-1 - k]) for k in range(len(ranked) // 2) if cost[ranked[k]] < cost[ranked[-1 - k]]]
    return pairs[:max_pairs]
