"""One collected group as training rows, with the paper's aggregation weights fixed once per group.

Rows are the group's valid steps: obs, action tokens ``[B, 7]``, behaviour log-probs ``[B, 7]``, advantages
``[B]`` and the trajectory each row belongs to. The weights of the loss ``sum_u w_u * ell_u`` come from the whole
group (`tgrpo.losses.aggregation_weights`), so splitting the rows into micro-batches changes no gradient.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from tgrpo.envs.rollout import GroupRollout
from tgrpo.losses import LossConfig, aggregation_weights


@dataclass
class GroupRows:
    """B rows. obs: arrays [B, ...]; tokens, old_logp, ref_logp [B, 7]; advantages, seq_index [B];
    weights [B] (action ratio) or [B, 7] (token ratio), summing to 1 over the group."""

    obs: dict[str, np.ndarray]
    instructions: list[str]
    tokens: torch.Tensor
    old_logp: torch.Tensor
    advantages: torch.Tensor
    seq_index: torch.Tensor
    weights: torch.Tensor
    ref_logp: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.seq_index)

    @property
    def mask(self) -> torch.Tensor:
        """Every token of a row is valid (a step emits all 7)."""
        return torch.ones_like(self.tokens, dtype=torch.bool)

    def take(self, idx: np.ndarray, renormalise: bool = False) -> GroupRows:
        """Rows `idx`; with `renormalise` their weights are scaled to sum to 1 (a minibatch's own step)."""
        t = torch.from_numpy(np.asarray(idx))
        weights = self.weights[t]
        if renormalise:
            weights = weights / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)
        return GroupRows({k: v[idx] for k, v in self.obs.items()}, [self.instructions[i] for i in idx],
                         self.tokens[t], self.old_logp[t], self.advantages[t], self.seq_index[t], weights,
                         None if self.ref_logp is None else self.ref_logp[t])

    def split(self, rows: int | None) -> Iterator[GroupRows]:
        """Consecutive micro-batches of at most `rows` rows (all at once for None); weights kept as they are."""
        n = len(self)
        step = n if rows is None else rows
        for start in range(0, n, max(step, 1)):
            yield self.take(np.arange(start, min(n, start + step)))


def flatten_steps(rollout: GroupRollout, advantages: torch.Tensor, loss: LossConfig) -> GroupRows:
    """The valid steps of a lock-step group rollout as rows, with the group's aggregation weights."""
    traj, step = np.nonzero(rollout.mask)
    tokens = torch.from_numpy(rollout.tokens[traj, step])
    seq_index = torch.from_numpy(traj)
    weights = aggregation_weights(torch.ones_like(tokens, dtype=torch.bool), seq_index, loss.ratio, loss.aggregation)
    return GroupRows(
        obs={k: v[traj, step] for k, v in rollout.obs.items()},
        instructions=[rollout.instruction] * len(traj),
        tokens=tokens,
        old_logp=torch.from_numpy(rollout.logprobs[traj, step]),
        advantages=advantages[traj, step].float(),
        seq_index=seq_index,
        weights=weights.float(),
    )
