"""Preference losses over whole trajectories (DPO, and GRAPE's trajectory-wise TPO), pure tensor functions.

Shapes: P preference pairs; S trajectories; B rows (environment steps), T action tokens per row (7 for OpenVLA).

* ``chosen_logp``, ``rejected_logp``: ``[P]`` trajectory log-likelihoods under the current policy, ``log pi(zeta) =
  sum_t sum_j log pi(token_{t,j} | s_t, token_{t,<j})``: the sum of the trajectory's action-token log-probs
  (:func:`trajectory_logprobs`);
* ``chosen_ref``, ``rejected_ref``: ``[P]`` the same under the reference (SFT) policy.

The implicit reward of a trajectory is ``r(zeta) = beta * (log pi(zeta) - log pi_ref(zeta))`` and the
Bradley-Terry ("sigmoid") loss of a pair is ``-log sigmoid(r(zeta_w) - r(zeta_l))`` (DPO, Rafailov et al. 2023;
GRAPE's TPO, arXiv 2411.19309, is this loss with trajectories as the responses). The batch loss is the mean over
pairs. Gradients flow to the current policy's log-likelihoods only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from tgrpo.registry import Registry

PREFERENCE_LOSSES: Registry[Callable] = Registry("preference loss")


class PreferenceLossOutput(NamedTuple):
    loss: torch.Tensor
    """``[]`` mean over pairs, to minimise."""
    metrics: dict[str, torch.Tensor]
    """``[]`` detached, over pairs: reward_margin (mean of r_w - r_l), reward_accuracy (share with r_w > r_l),
    chosen_reward and rejected_reward (means of r), logp_margin (mean of log pi(zeta_w) - log pi(zeta_l))."""


def register_preference_loss(name: str) -> Callable:
    """Decorator: register ``fn(chosen_logp, rejected_logp, chosen_ref, rejected_ref, *, beta) ->
    PreferenceLossOutput`` under ``name`` (preference methods name their loss in `tgrpo.rl.methods`)."""
    return PREFERENCE_LOSSES.register(name)


def get_preference_loss(name: str) -> Callable[..., PreferenceLossOutput]:
    return PREFERENCE_LOSSES.get(name)


def trajectory_logprobs(token_logp: torch.Tensor, mask: torch.Tensor, seq_index: torch.Tensor,
                        num_sequences: int) -> torch.Tensor:
    """``[S]`` log-likelihood of each trajectory: the sum of its rows' valid token log-probs.

    token_logp ``[B, T]``; mask ``[B, T]`` bool or 0/1 (nonzero = valid; invalid entries are not read, NaN
    included); seq_index ``[B]`` int64 in ``0 .. S-1``, the trajectory of each row. Differentiable w.r.t.
    ``token_logp``; a trajectory without rows gets 0."""
    if token_logp.dim() != 2 or mask.shape != token_logp.shape:
        raise ValueError(f"token_logp and mask must be [B, T], got {tuple(token_logp.shape)}, {tuple(mask.shape)}")
    if seq_index.shape != token_logp.shape[:1] or seq_index.dtype != torch.int64:
        raise ValueError(f"seq_index must be int64 [B] = [{token_logp.shape[0]}], got {seq_index.dtype} "
                         f"{tuple(seq_index.shape)}")
    rows = torch.where(mask != 0, token_logp, 0).sum(-1)
    return rows.new_zeros(num_sequences).index_add(0, seq_index, rows)


@register_preference_loss("sigmoid")
def sigmoid_preference_loss(chosen_logp: torch.Tensor, rejected_logp: torch.Tensor, chosen_ref: torch.Tensor,
                            rejected_ref: torch.Tensor, *, beta: float) -> PreferenceLossOutput:
    """``mean_p -log sigmoid(beta * ((pi_w - ref_w) - (pi_l - ref_l)))`` over ``[P]`` pairs (shapes: module doc).

    ``beta`` > 0 scales the implicit reward (DPO's KL strength). With no pair the loss is 0 and the metrics 0."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    shape = chosen_logp.shape
    if chosen_logp.dim() != 1 or any(x.shape != shape for x in (rejected_logp, chosen_ref, rejected_ref)):
        raise ValueError("chosen/rejected log-likelihoods and references must all be [P], got "
                         f"{[tuple(x.shape) for x in (chosen_logp, rejected_logp, chosen_ref, rejected_ref)]}")
    chosen_reward = beta * (chosen_logp - chosen_ref)
    rejected_reward = beta * (rejected_logp - rejected_ref)
    margin = chosen_reward - rejected_reward
    n = max(shape[0], 1)
    loss = -F.logsigmoid(margin).sum() / n
    detached = margin.detach()
    metrics = {
        "reward_margin": detached.sum() / n,
        "reward_accuracy": (detached > 0).sum() / n,
        "chosen_reward": chosen_reward.detach().sum() / n,
        "rejected_reward": rejected_reward.detach().sum() / n,
        "logp_margin": (chosen_logp - rejected_logp).detach().sum() / n,
    }
    return PreferenceLossOutput(loss, metrics)
