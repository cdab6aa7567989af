"""TGRPO advantages: group z-scores of per-step rewards at two levels (paper Eq. 2-4).

All functions take rewards shaped ``[..., N, M]``: any leading group dims, then N trajectories of M steps
rolled out from one initial state. They return a tensor of the same shape.

Rules shared by every estimator (see docs/algorithm.md):

* z-score ``(x - mean) / (std + eps)`` over the valid members of a group, std with ``1/(n - ddof)``;
* a group with fewer than two valid members, or whose valid values are all exactly equal (std 0),
  gives exactly 0;
* with ``mask`` (bool or 0/1, same shape; nonzero = valid) padded steps take part in no statistic, a
  trajectory's return sums only its valid steps, a trajectory with no valid step is not a group member,
  and every padded step gets advantage 0;
* NaN or inf at a valid position raises ``ValueError`` (padded positions are never read).

Floating inputs keep their dtype (at least float32); integer or bool rewards are computed in float32.
On CUDA the fused estimator runs as one Triton kernel (:mod:`tgrpo.kernels.advantage`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from tgrpo.registry import Registry

Backend = Literal["auto", "torch", "triton"]
AdvantageFn = Callable[..., torch.Tensor]
"""``fn(rewards [..., N, M], mask | None, config, values=None) -> advantages [..., N, M]``; ``values``
``[..., N, M + 1]`` are a critic's state values (bootstrap at M) for estimators that use one (GAE), else None."""

ESTIMATORS: Registry[AdvantageFn] = Registry("advantage estimator")


@dataclass(frozen=True)
class AdvantageConfig:
    """Free choices of the advantage estimator (defaults and reasons: docs/algorithm.md)."""

    estimator: str = "tgrpo"
    a1: float = 0.3
    a2: float = 0.7
    eps: float = 1e-6
    unbiased: bool = True
    gamma: float = 0.99
    lam: float = 0.95

    def __post_init__(self) -> None:
        for name in ("a1", "a2", "eps"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"AdvantageConfig.{name} must be finite and >= 0, got {value}")
        for name in ("gamma", "lam"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"AdvantageConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.a1 == 0 and self.a2 == 0:
            raise ValueError("AdvantageConfig: a1 and a2 cannot both be 0")
        ESTIMATORS.get(self.estimator)  # ValueError naming the known ones

    @property
    def ddof(self) -> int:
        return 1 if self.unbiased else 0


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator: register an :data:`AdvantageFn` under ``name``."""
    return ESTIMATORS.register(name)


def get_advantage_fn(name: str) -> AdvantageFn:
    """The estimator registered under ``name``."""
    return ESTIMATORS.get(name)


def advantage_names() -> list[str]:
    return sorted(ESTIMATORS)


def compute_advantage(
    rewards: torch.Tensor,
    mask: torch.Tensor | None = None,
    config: AdvantageConfig | None = None,
    values: torch.Tensor | None = None,
) -> torch.Tensor:
    """Advantages ``[..., N, M]`` by the estimator ``config.estimator`` (``values``: see :data:`AdvantageFn`)."""
    config = config or AdvantageConfig()
    return get_advantage_fn(config.estimator)(rewards, mask, config, values=values)


def step_advantage(
    rewards: torch.Tensor,
    mask: torch.Tensor | None = None,
    eps: float = AdvantageConfig.eps,
    unbiased: bool = AdvantageConfig.unbiased,
    backend: Backend = "auto",
) -> torch.Tensor:
    """``A_step[..., i, t]``: z-score of ``rewards[..., i, t]`` across the N trajectories at step t.

    rewards, mask: ``[..., N, M]`` -> ``[..., N, M]``.
    """
    return tgrpo_advantage(rewards, 1.0, 0.0, mask, eps, unbiased, backend)


def trajectory_advantage(
    rewards: torch.Tensor,
    mask: torch.Tensor | None = None,
    eps: float = AdvantageConfig.eps,
    unbiased: bool = AdvantageConfig.unbiased,
    backend: Backend = "auto",
) -> torch.Tensor:
    """``A_traj[..., i]``: z-score of the returns ``sum_t rewards[..., i, t]``, broadcast over valid steps.

    rewards, mask: ``[..., N, M]`` -> ``[..., N, M]``.
    """
    return tgrpo_advantage(rewards, 0.0, 1.0, mask, eps, unbiased, backend)


def tgrpo_advantage(
    rewards: torch.Tensor,
    a1: float = AdvantageConfig.a1,
    a2: float = AdvantageConfig.a2,
    mask: torch.Tensor | None = None,
    eps: float = AdvantageConfig.eps,
    unbiased: bool = AdvantageConfig.unbiased,
    backend: Backend = "auto",
) -> torch.Tensor:
    """``Adv = a1 * A_step + a2 * A_traj`` (paper Eq. 4), computed in one pass.

    rewards, mask: ``[..., N, M]`` -> ``[..., N, M]``. ``backend="auto"`` picks Triton for CUDA tensors
    when it is installed, torch otherwise; both give the same result up to float rounding.
    """
    AdvantageConfig(a1=a1, a2=a2, eps=eps, unbiased=unbiased)  # validates the arguments
    x, valid = _prepare(rewards, mask)
    ddof = 1 if unbiased else 0
    from tgrpo.kernels import select_backend

    if select_backend(backend, x) == "triton":
        from tgrpo.kernels.advantage import tgrpo_advantage_triton

        out, suspect = tgrpo_advantage_triton(x, valid, a1, a2, eps, ddof)
    else:
        out, suspect = tgrpo_advantage_torch(x, valid, a1, a2, eps, ddof)
    if bool(suspect) and bool((~torch.isfinite(x) if valid is None else valid & ~torch.isfinite(x)).any()):
        raise ValueError("rewards contain NaN or inf at valid positions")
    return out


def tgrpo_advantage_torch(
    x: torch.Tensor, valid: torch.Tensor | None, a1: float, a2: float, eps: float, ddof: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager torch version on ``_prepare``d input: ``(advantages [..., N, M], suspect [] bool)``.

    ``suspect`` is set when a trajectory return is not finite: a NaN or inf reward, or an overflow.
    """
    if valid is not None:
        x = torch.where(valid, x, 0.0)
    returns = x.sum(-1)
    suspect = ~torch.isfinite(returns).all()
    a_traj = torch.zeros_like(returns).unsqueeze(-1)
    if a2:
        dev, scale = _zscore_parts(returns, None if valid is None else valid.any(-1), -1, eps, ddof)
        a_traj = (dev * (a2 * scale)).unsqueeze(-1)
    if valid is not None:
        a_traj = torch.where(valid, a_traj, 0.0)
    if not a1:
        return a_traj.expand_as(x).contiguous(), suspect
    dev, scale = _zscore_parts(x, valid, -2, eps, ddof)
    return torch.addcmul(a_traj, dev, a1 * scale), suspect


def _zscore_parts(
    x: torch.Tensor, valid: torch.Tensor | None, dim: int, eps: float, ddof: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dev, scale)`` with z-score ``dev * scale`` along ``dim`` over the valid entries (x must be 0
    at the others); ``scale`` is 0 for groups with fewer than 2 valid members or std 0.

    Values are first shifted by one of the group's valid values (the z-score is shift-invariant), so a
    group of equal values has deviations and std exactly 0, hence advantage exactly 0.
    """
    if valid is None:  # the common case, in fewer passes (torch.var_mean is slow on CPU over dim -2)
        n = x.shape[dim]
        shifted = x - x.narrow(dim, 0, 1)
        dev = shifted - shifted.mean(dim, keepdim=True)
        std = ((dev * dev).sum(dim, keepdim=True) / max(n - ddof, 1)).sqrt()
        return dev, torch.where((std > 0) & (n >= 2), 1 / (std + eps), 0.0)
    n = valid.sum(dim, keepdim=True)
    member = torch.where(valid, x, -math.inf).amax(dim, keepdim=True)  # the largest valid value
    shifted = torch.where(valid, x - member, 0.0)
    dev = torch.where(valid, shifted - shifted.sum(dim, keepdim=True) / n.clamp_min(1), 0.0)
    std = (dev.square().sum(dim, keepdim=True) / (n - ddof).clamp_min(1)).sqrt()
    return dev, torch.where((n >= 2) & (std > 0), 1 / (std + eps), 0.0)


def _prepare(rewards: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    if rewards.dim() < 2:
        raise ValueError(f"rewards must be [..., N, M], got shape {tuple(rewards.shape)}")
    if mask is not None and mask.shape != rewards.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != rewards shape {tuple(rewards.shape)}")
    dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
    x = rewards.to(torch.promote_types(dtype, torch.float32))
    if mask is None or mask.dtype == torch.bool:
        return x, mask
    return x, mask != 0


# Group-relative estimators: the group is the baseline, so they take no values.
@register_advantage("tgrpo")
def _tgrpo(rewards: torch.Tensor, mask: torch.Tensor | None, config: AdvantageConfig,
        values: torch.Tensor | None = None) -> torch.Tensor:
    return tgrpo_advantage(rewards, config.a1, config.a2, mask, config.eps, config.unbiased)


@register_advantage("grpo")
def _grpo(rewards: torch.Tensor, mask: torch.Tensor | None, config: AdvantageConfig,
        values: torch.Tensor | None = None) -> torch.Tensor:
    """Trajectory level only, weight 1 (GRPO; used with the sparse 0/1 success reward)."""
    return trajectory_advantage(rewards, mask, config.eps, config.unbiased)


@register_advantage("tgrpo-no-step")
def _tgrpo_no_step(rewards: torch.Tensor, mask: torch.Tensor | None, config: AdvantageConfig,
        values: torch.Tensor | None = None) -> torch.Tensor:
    """Paper ablation 'w/o step-level advantage': a1 = 0, a2 kept."""
    return tgrpo_advantage(rewards, 0.0, config.a2, mask, config.eps, config.unbiased)


@register_advantage("tgrpo-no-traj")
def _tgrpo_no_traj(rewards: torch.Tensor, mask: torch.Tensor | None, config: AdvantageConfig,
        values: torch.Tensor | None = None) -> torch.Tensor:
    """Paper ablation 'w/o trajectory-level advantage': a2 = 0, a1 kept."""
    return tgrpo_advantage(rewards, config.a1, 0.0, mask, config.eps, config.unbiased)


@register_advantage("gae")
def gae_advantage(rewards: torch.Tensor, mask: torch.Tensor | None, config: AdvantageConfig,
                  values: torch.Tensor | None = None) -> torch.Tensor:
    """Generalised advantage estimation (Schulman et al. 2016) with ``config.gamma`` and ``config.lam``.

    rewards, mask ``[..., N, M]``; values ``[..., N, M + 1]``: ``values[..., t]`` is the critic's value of the state
    step t acted in, ``values[..., t + 1]`` the state after it. The caller puts 0 there when step t ended the
    episode (a terminal state: LIBERO's success) and the critic's value when the episode was cut (the group stop
    rule, the horizon): that is the bootstrap. Per valid step, backwards over t:

        delta_t = r_t + gamma * V_{t+1} - V_t
        A_t     = delta_t + gamma * lam * A_{t+1}    (A_{t+1} = 0 when step t + 1 is not valid: the trace ends)

    lam = 1 gives the discounted return minus V_t (Monte-Carlo with bootstrap), lam = 0 the TD(0) error. Padded
    steps get 0 and are never read, except ``values[..., t + 1]`` after a trajectory's last valid step t.
    Returns raw advantages; the value targets are ``A + values[..., :M]``.
    """
    x, valid = _prepare(rewards, mask)
    if values is None or values.shape != (*x.shape[:-1], x.shape[-1] + 1):
        got = None if values is None else tuple(values.shape)
        raise ValueError(f"gae needs values [..., N, M + 1] = {(*x.shape[:-1], x.shape[-1] + 1)}, got {got}")
    v = values.to(x.dtype)
    valid = torch.ones_like(x, dtype=torch.bool) if valid is None else valid
    none = torch.zeros_like(valid[..., :1])
    read = torch.cat([valid, none], -1) | torch.cat([none, valid], -1)  # V_t and V_{t+1} of every valid step t
    if not (bool(torch.isfinite(x[valid]).all()) and bool(torch.isfinite(v[read]).all())):
        raise ValueError("rewards or values contain NaN or inf at valid positions")
    delta = torch.where(valid, x + config.gamma * v[..., 1:] - v[..., :-1], 0.0)
    out = torch.zeros_like(x)
    carry = torch.zeros_like(x[..., 0])
    for t in range(x.shape[-1] - 1, -1, -1):
        carry = torch.where(valid[..., t], delta[..., t] + config.gamma * config.lam * carry, 0.0)
        out[..., t] = carry
    return out


ADVANTAGE_NORMS = ("group", "none")


def normalise_advantage(advantages: torch.Tensor, mask: torch.Tensor | None, mode: str, eps: float = 1e-6,
                        unbiased: bool = True) -> torch.Tensor:
    """``mode="group"``: z-score over all valid steps of the group (``[..., N, M]``, one statistic per leading index),
    with the rules of the module docstring (fewer than two valid steps or all equal: 0); ``"none"``: as they are.
    Padded steps get 0."""
    if mode not in ADVANTAGE_NORMS:
        raise ValueError(f"unknown advantage normalisation {mode!r}; valid: {', '.join(ADVANTAGE_NORMS)}")
    x, valid = _prepare(advantages, mask)
    if mode == "none":
        return x if valid is None else torch.where(valid, x, 0.0)
    flat = x.flatten(-2)
    flat_valid = None if valid is None else valid.flatten(-2)
    if flat_valid is not None:
        flat = torch.where(flat_valid, flat, 0.0)
    dev, scale = _zscore_parts(flat, flat_valid, -1, eps, 1 if unbiased else 0)
    return (dev * scale).view_as(x)
