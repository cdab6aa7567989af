"""Slow, independent references: the paper's equations as Python loops, and the naive eager loss.

``loop_advantage`` and ``loop_policy_loss`` transcribe TGRPO Eq. 2-6 over i and t with Python floats
(torch scalars where autograd is needed); the tests compare the fast functions against them and the
profiler times ``loop_advantage`` as the CPU baseline. ``naive_fused_loss`` is the eager baseline
that holds all ``[B, T, V]`` logits.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from tgrpo.losses import LossConfig, PolicyLossOutput, policy_loss


def _zscores(values: list[float], eps: float, ddof: int) -> list[float]:
    n = len(values)
    if n < 2 or all(v == values[0] for v in values):
        return [0.0] * n
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - ddof))
    if std + eps == 0:
        return [0.0] * n
    return [(v - mean) / (std + eps) for v in values]


def loop_advantage(
    rewards: torch.Tensor,
    a1: float = 0.3,
    a2: float = 0.7,
    mask: torch.Tensor | None = None,
    eps: float = 1e-6,
    ddof: int = 1,
) -> torch.Tensor:
    """``a1 * A_step + a2 * A_traj`` for rewards ``[..., N, M]`` (float64), one group at a time."""
    *lead, n_traj, n_steps = rewards.shape
    groups = rewards.reshape(-1, n_traj, n_steps).tolist()
    valid_all = torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask != 0
    valids = valid_all.reshape(-1, n_traj, n_steps).tolist()
    out = []
    for R, valid in zip(groups, valids, strict=True):
        if any(valid[i][t] and not math.isfinite(R[i][t]) for i in range(n_traj) for t in range(n_steps)):
            raise ValueError("rewards contain NaN or inf at valid positions")
        a_step = [[0.0] * n_steps for _ in range(n_traj)]
        for t in range(n_steps):
            members = [i for i in range(n_traj) if valid[i][t]]
            for i, z in zip(members, _zscores([R[i][t] for i in members], eps, ddof), strict=True):
                a_step[i][t] = z
        a_traj = [0.0] * n_traj
        members = [i for i in range(n_traj) if any(valid[i])]
        returns = [sum(R[i][t] for t in range(n_steps) if valid[i][t]) for i in members]
        for i, z in zip(members, _zscores(returns, eps, ddof), strict=True):
            a_traj[i] = z
        out.append(
            [
                [a1 * a_step[i][t] + a2 * a_traj[i] if valid[i][t] else 0.0 for t in range(n_steps)]
                for i in range(n_traj)
            ]
        )
    return torch.tensor(out, dtype=torch.float64).reshape(*lead, n_traj, n_steps)


def loop_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    seq_index: torch.Tensor | None,
    config: LossConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 5-6 unit by unit (autograd through ``logp``); returns ``(loss, metrics)``."""
    rows, tokens = logp.shape
    seq = list(range(rows)) if seq_index is None else seq_index.tolist()
    valid = (mask != 0).tolist()
    units: list[tuple[int, torch.Tensor, float, float, float]] = []  # (seq, logp, old, ref, adv)
    for b in range(rows):
        toks = [t for t in range(tokens) if valid[b][t]]
        if config.ratio == "token":
            units += [
                (seq[b], logp[b, t], float(old_logp[b, t]), float(ref_logp[b, t]), float(advantages[b]))
                for t in toks
            ]
        elif toks:
            units.append(
                (seq[b], sum(logp[b, t] for t in toks), sum(float(old_logp[b, t]) for t in toks),
                 sum(float(ref_logp[b, t]) for t in toks), float(advantages[b]))
            )  # fmt: skip
    losses: dict[int, list[torch.Tensor]] = {}
    ratios, kls, clipped = [], [], []
    c = config.log_ratio_clamp
    for s, lp, old, ref, adv in units:
        log_ratio, kl_log_ratio = lp - old, ref - lp
        if c is not None:
            log_ratio, kl_log_ratio = log_ratio.clamp(-c, c), kl_log_ratio.clamp(-c, c)
        rho = torch.exp(log_ratio)
        rho_clip = rho.clamp(1 - config.clip_eps, 1 + config.clip_eps)
        kl = torch.exp(kl_log_ratio) - kl_log_ratio - 1
        ell = -torch.minimum(rho * adv, rho_clip * adv) + (config.beta * kl if config.beta else 0.0)
        losses.setdefault(s, []).append(ell)
        ratios.append(rho.item())
        kls.append(kl.item())
        clipped.append((rho_clip * adv).item() < (rho * adv).item())
    if config.aggregation == "seq-mean-token-mean":
        per_seq = [sum(v) / len(v) for v in losses.values()]
        loss = sum(per_seq) / len(per_seq) if per_seq else torch.zeros((), dtype=logp.dtype)
    else:
        flat = [ell for v in losses.values() for ell in v]
        loss = sum(flat) / len(flat) if flat else torch.zeros((), dtype=logp.dtype)
    n = max(len(units), 1)
    metrics = {
        "clip_frac": sum(clipped) / n,
        "kl_mean": sum(kls) / n,
        "ratio_mean": sum(ratios) / n,
        "ratio_min": min(ratios, default=math.inf),
        "ratio_max": max(ratios, default=-math.inf),
    }
    return loss, metrics


def naive_fused_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    seq_index: torch.Tensor | None = None,
    **config: Any,
) -> PolicyLossOutput:
    """Eager baseline: all logits in float32 (float64 for float64 input), ``log_softmax``, gather,
    then :func:`policy_loss`."""
    logits = (hidden @ weight.T).to(torch.promote_types(hidden.dtype, torch.float32))
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    return policy_loss(logp, old_logp, ref_logp, advantages, mask, seq_index, **config)
