"""TGRPO policy loss (paper Eq. 5-6) and exact log-probs over the full vocabulary, chunked.

Batch form: one row per environment step, ``T`` action tokens per row (7 for OpenVLA).

* ``logp``, ``old_logp``, ``ref_logp``: ``[B, T]`` token log-probs (current, rollout, reference policy);
* ``advantages``: ``[B]``, one per step (the TGRPO ``Adv[i, t]`` of the row's step);
* ``mask``: ``[B, T]`` bool or 0/1, nonzero = valid token;
* ``seq_index``: ``[B]`` int64 ids of the trajectory each row belongs to (row ``(i, t)`` of a rollout
  array shaped ``(N, M, T)`` flattened to ``B = N * M`` has ``seq_index = i``); ``None`` makes every
  row its own sequence (verl's reading of ``[B, T]``);
* ``hidden``: ``[B, T, H]`` final hidden states at the action positions; ``weight``: ``[V, H]`` LM head;
  ``targets``: ``[B, T]`` int64 sampled token ids.

A *unit* is what one ratio is taken over: a token (``ratio="token"``) or a step's whole action
(``ratio="action"``: the action log-prob is the sum of its valid tokens' log-probs; the step is valid if
any token is). Per unit: ``ell = -min(rho * A, clip(rho, 1-eps, 1+eps) * A) + beta * k3``, with
``k3 = exp(ref - logp) - (ref - logp) - 1``. The loss is ``sum_u w_u * ell_u`` with aggregation
weights ``w`` (see :func:`aggregation_weights`). Gradients flow to ``logp`` (or ``hidden``/``weight``)
only; old/ref log-probs and advantages are constants.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch.autograd.function import once_differentiable

from tgrpo.loss_rows import LossRows
from tgrpo.registry import Registry

RatioMode = Literal["token", "action"]
Backend = Literal["auto", "torch", "triton"]
WeightFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

AGGREGATIONS: Registry[WeightFn] = Registry("aggregation")
POLICY_LOSSES: Registry[Callable] = Registry("policy loss")
VALUE_LOSSES: Registry[Callable] = Registry("value loss")
METRIC_NAMES = ("clip_frac", "kl_mean", "ratio_mean", "ratio_min", "ratio_max")


@dataclass(frozen=True)
class LossConfig:
    """Free choices of the policy loss (defaults and reasons: docs/algorithm.md)."""

    clip_eps: float = 0.2
    beta: float = 0.04
    ratio: RatioMode = "action"
    aggregation: str = "seq-mean-token-mean"
    log_ratio_clamp: float | None = 20.0

    def __post_init__(self) -> None:
        if not 0 < self.clip_eps < 1:
            raise ValueError(f"LossConfig.clip_eps must be in (0, 1), got {self.clip_eps}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"LossConfig.beta must be finite and >= 0, got {self.beta}")
        if self.ratio not in ("token", "action"):
            raise ValueError(f"LossConfig.ratio must be 'token' or 'action', got {self.ratio!r}")
        AGGREGATIONS.get(self.aggregation)  # ValueError naming the known ones
        clamp = self.log_ratio_clamp
        if clamp is not None and not (math.isfinite(clamp) and clamp > 0):
            raise ValueError(f"LossConfig.log_ratio_clamp must be None or finite and > 0, got {clamp}")


class PolicyLossOutput(NamedTuple):
    loss: torch.Tensor
    """``[]`` scalar to minimise."""
    metrics: dict[str, torch.Tensor]
    """``[]`` detached, over valid units: clip_frac, kl_mean, ratio_mean, ratio_min, ratio_max."""


ValueLossOutput = PolicyLossOutput  # the same (loss, metrics) pair, for a critic's loss


def register_aggregation(name: str) -> Callable[[WeightFn], WeightFn]:
    """Decorator: register ``fn(unit_mask, unit_seq) -> weights`` (unit-shaped, summing to 1)."""
    return AGGREGATIONS.register(name)


@register_aggregation("token-mean")
def _token_mean(unit_mask: torch.Tensor, unit_seq: torch.Tensor) -> torch.Tensor:
    """Every valid unit of the batch weighs the same."""
    m = unit_mask.to(torch.float64)
    return m / m.sum().clamp_min(1)


@register_aggregation("seq-mean-token-mean")
def _seq_mean_token_mean(unit_mask: torch.Tensor, unit_seq: torch.Tensor) -> torch.Tensor:
    """Paper: ``1/N sum_i 1/|o_i| sum_t``: mean over each sequence's valid units, then over sequences."""
    m = unit_mask.to(torch.float64)
    counts = m.new_zeros(unit_seq.shape[0]).index_add_(0, unit_seq.reshape(-1), m.reshape(-1))
    n_seq = (counts > 0).sum()
    return m / (counts[unit_seq] * n_seq).clamp_min(1)


def register_policy_loss(name: str) -> Callable:
    """Decorator: register a policy loss ``fn(logp, old_logp, ref_logp, advantages, mask, seq_index, *, config,
    weights) -> PolicyLossOutput`` under ``name`` (methods name their loss in `tgrpo.rl.methods`)."""
    return POLICY_LOSSES.register(name)


def get_policy_loss(name: str) -> Callable[..., PolicyLossOutput]:
    return POLICY_LOSSES.get(name)


def aggregation_weights(
    mask: torch.Tensor, seq_index: torch.Tensor | None, ratio: RatioMode, aggregation: str
) -> torch.Tensor:
    """Unit weights ``w`` of the loss ``sum_u w_u * ell_u``: ``[B, T]`` for token units, ``[B]`` for
    action units; float64, zero at invalid units, summing to 1 when any unit is valid."""
    rows, tokens = mask.shape
    valid = mask != 0
    if seq_index is None:
        seq = torch.arange(rows, device=mask.device)
    else:
        seq = torch.unique(seq_index, return_inverse=True)[1]  # any ids -> 0 .. n_seq - 1
    if ratio == "token":
        return AGGREGATIONS.get(aggregation)(valid, seq[:, None].expand(rows, tokens))
    return AGGREGATIONS.get(aggregation)(valid.any(-1), seq)


@register_policy_loss("clip-k3")
def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    seq_index: torch.Tensor | None = None,
    *,
    config: LossConfig | None = None,
    weights: torch.Tensor | None = None,
    **fields: Any,
) -> PolicyLossOutput:
    """Clipped surrogate + ``beta`` * k3 KL from token log-probs ``[B, T]`` (shapes: module doc).

    ``weights``: precomputed aggregation weights of these rows (``[B]`` action units, ``[B, T]`` token units),
    taken from :func:`aggregation_weights` over the whole group; then ``seq_index`` is not read, and the losses
    of a group's micro-batches add up to the loss of the whole group. ``config`` fields may be overridden by
    keyword, e.g. ``policy_loss(..., ratio="token", beta=0.0)``.
    """
    cfg = _config(config, fields)
    _check_rows(logp, old_logp, ref_logp, advantages, mask, seq_index)
    weights = _weights(weights, mask, seq_index, cfg).to(logp.dtype)
    return _loss_from_logp(logp, old_logp, ref_logp, advantages, mask != 0, weights, cfg)


def register_value_loss(name: str) -> Callable:
    """Decorator: register a critic loss ``fn(values, old_values, returns, weights, *, clip) -> ValueLossOutput``
    under ``name`` (methods with a critic name theirs in `tgrpo.rl.methods`)."""
    return VALUE_LOSSES.register(name)


def get_value_loss(name: str) -> Callable[..., ValueLossOutput]:
    return VALUE_LOSSES.get(name)


@register_value_loss("clip-mse")
def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    weights: torch.Tensor,
    *,
    clip: float | None = 0.2,
) -> ValueLossOutput:
    """PPO2's clipped value loss: ``sum_b w_b * 0.5 * max((v - R)^2, (v_old + clip(v - v_old, -c, c) - R)^2)``.

    values ``[B]`` (the critic now, differentiable), old_values ``[B]`` (the critic when the group was collected),
    returns ``[B]`` (targets), weights ``[B]`` (summing to 1 over the group, so micro-batches add up). ``clip=None``:
    the plain squared error ``0.5 * (v - R)^2``. Gradients flow to ``values`` only. Metrics: ``value_clip_frac``
    (rows where the clipped branch is the larger, i.e. the one in use), detached.
    """
    if not (values.shape == old_values.shape == returns.shape == weights.shape and values.dim() == 1):
        raise ValueError(f"values, old_values, returns and weights must be [B] alike, got {tuple(values.shape)}, "
                         f"{tuple(old_values.shape)}, {tuple(returns.shape)}, {tuple(weights.shape)}")
    if clip is not None and not (math.isfinite(clip) and clip > 0):
        raise ValueError(f"value clip must be None or finite and > 0, got {clip}")
    old_values, returns = old_values.detach(), returns.detach()
    unclipped = (values - returns).square()
    if clip is None:
        ell, clipped_used = unclipped, torch.zeros_like(unclipped, dtype=torch.bool)
    else:
        clipped = (old_values + (values - old_values).clamp(-clip, clip) - returns).square()
        ell, clipped_used = torch.maximum(unclipped, clipped), clipped > unclipped
    n = max(len(values), 1)
    return ValueLossOutput((weights.to(ell.dtype) * 0.5 * ell).sum(),
                            {"value_clip_frac": clipped_used.sum().detach() / n})


def token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunk_tokens: int = 2048,
    backend: Backend = "auto",
) -> torch.Tensor:
    """``log_softmax(hidden @ weight.T)[..., targets]`` ``[B, T]`` (float32, or float64 for float64 input),
    never holding more than one chunk of logits.

    hidden ``[B, T, H]``, weight ``[V, H]``, targets ``[B, T]``. Logits exist ``chunk_tokens`` rows at a
    time; backward recomputes them (use :func:`fused_policy_loss` to avoid that). Differentiable
    w.r.t. ``hidden`` and ``weight``.
    """
    _check_head(hidden, weight, targets)
    _, tokens, _ = hidden.shape
    return _TokenLogprobs.apply(
        hidden, weight, targets, _chunk_rows(chunk_tokens, tokens), _backend(backend, hidden)
    )


def fused_policy_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    seq_index: torch.Tensor | None = None,
    *,
    config: LossConfig | None = None,
    weights: torch.Tensor | None = None,
    chunk_tokens: int = 2048,
    backend: Backend = "auto",
    **fields: Any,
) -> PolicyLossOutput:
    """:func:`policy_loss` of :func:`token_logprobs`, with its gradient computed in the same pass.

    Per chunk of rows: logits (one matmul), log-softmax, the loss gradient w.r.t. the logits (in place),
    and the input gradient (a second matmul; a third for ``weight`` when it requires grad). Backward only
    scales the stored gradients, so no logits are recomputed; it may run once.
    """
    cfg = _config(config, fields)
    _check_head(hidden, weight, targets)
    _check_rows(targets, old_logp, ref_logp, advantages, mask, seq_index)
    valid = mask != 0
    dtype = _compute_dtype(hidden)
    weights = _weights(weights, mask, seq_index, cfg)
    rows = LossRows(
        targets.contiguous(),
        valid.contiguous(),
        *(
            x.to(dtype).contiguous()
            for x in (torch.where(valid, old_logp, 0), torch.where(valid, ref_logp, 0))
        ),
        advantages.to(dtype).contiguous(),
        weights.to(dtype).contiguous(),
    )
    chunk, backend = _chunk_rows(chunk_tokens, hidden.shape[1]), _backend(backend, hidden)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        loss, *values = _FusedPolicyLoss.apply(hidden, weight, rows, cfg, chunk, backend)
        return PolicyLossOutput(loss, dict(zip(METRIC_NAMES, values, strict=True)))
    logp, _, _ = _chunked(hidden, weight, chunk, _logp_op(rows.targets, backend), False, False)
    return _loss_from_logp(logp, rows.old_logp, rows.ref_logp, rows.advantages, rows.valid, rows.weights, cfg)


# ---------------------------------------------------------------- loss math (torch)


def _unit_terms(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    valid: torch.Tensor,
    cfg: LossConfig,
) -> tuple[torch.Tensor, ...]:
    """Per unit: ``(ell, ratio, k3, clipped, unit_mask)``; invalid tokens are zeroed first (NaN-safe)."""
    logp, old_logp, ref_logp = (torch.where(valid, x, 0) for x in (logp, old_logp, ref_logp))
    adv = advantages[:, None]
    unit_mask = valid
    if cfg.ratio == "action":
        logp, old_logp, ref_logp = logp.sum(-1), old_logp.sum(-1), ref_logp.sum(-1)
        adv, unit_mask = advantages, valid.any(-1)
    adv = torch.where(unit_mask, adv, 0)
    log_ratio, kl_log_ratio = logp - old_logp, ref_logp - logp
    if cfg.log_ratio_clamp is not None:
        c = cfg.log_ratio_clamp
        log_ratio, kl_log_ratio = log_ratio.clamp(-c, c), kl_log_ratio.clamp(-c, c)
    ratio = log_ratio.exp()
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv
    k3 = kl_log_ratio.exp() - kl_log_ratio - 1
    ell = -torch.minimum(unclipped, clipped)
    if cfg.beta:
        ell = ell + cfg.beta * k3
    return ell, ratio.detach(), k3.detach(), (clipped < unclipped).detach(), unit_mask


def _loss_from_logp(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    valid: torch.Tensor,
    weights: torch.Tensor,
    cfg: LossConfig,
) -> PolicyLossOutput:
    ell, ratio, k3, clipped, unit_mask = _unit_terms(logp, old_logp, ref_logp, advantages, valid, cfg)
    n = unit_mask.sum().clamp_min(1)
    metrics = {
        "clip_frac": (clipped & unit_mask).sum() / n,
        "kl_mean": torch.where(unit_mask, k3, 0).sum() / n,
        "ratio_mean": torch.where(unit_mask, ratio, 0).sum() / n,
        "ratio_min": torch.where(unit_mask, ratio, math.inf).amin(),
        "ratio_max": torch.where(unit_mask, ratio, -math.inf).amax(),
    }
    return PolicyLossOutput((weights * ell).sum(), metrics)


# ---------------------------------------------------------------- chunked log-prob passes


RowOp = Callable[[torch.Tensor, int, int], torch.Tensor]
"""``op(logits [c, V], row0, row1) -> logp [c]``; may overwrite the logits with d loss / d logits."""


def _chunked(
    hidden: torch.Tensor, weight: torch.Tensor, chunk_rows: int, op: RowOp, want_h: bool, want_w: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Run ``op`` on the logits of ``chunk_rows`` rows at a time; return (logp, grad_hidden, grad_weight)."""
    rows, tokens, _ = hidden.shape
    h2 = hidden.reshape(rows * tokens, -1)
    logp = torch.empty(rows * tokens, dtype=_compute_dtype(hidden), device=hidden.device)
    grad_h = torch.empty_like(h2) if want_h else None
    grad_w = torch.zeros(weight.shape, dtype=_compute_dtype(weight), device=weight.device) if want_w else None
    for r0 in range(0, rows, chunk_rows):
        r1 = min(rows, r0 + chunk_rows)
        h = h2[r0 * tokens : r1 * tokens]
        logits = h @ weight.T
        logp[r0 * tokens : r1 * tokens] = op(logits, r0, r1)
        if grad_h is not None:
            torch.mm(logits, weight, out=grad_h[r0 * tokens : r1 * tokens])
        if grad_w is not None:
            grad_w += logits.T @ h
        del logits  # free this chunk before the next one is allocated: one chunk alive at a time
    return logp.view(rows, tokens), grad_h, grad_w


def _torch_rows(
    logits: torch.Tensor, targets: torch.Tensor, grad_of_logp: Callable[[torch.Tensor], torch.Tensor] | None
) -> torch.Tensor:
    """Torch row op: log-softmax at ``targets`` and, given ``g = d loss / d logp``, logits <- g (1[y] - softmax)."""
    z = logits.to(_compute_dtype(logits))
    lse = torch.logsumexp(z, 1)
    logp = z.gather(1, targets[:, None]).squeeze(1) - lse
    if grad_of_logp is not None:
        g = grad_of_logp(logp)[:, None]
        z.sub_(lse[:, None]).exp_().mul_(-g).scatter_add_(1, targets[:, None], g)
        if z is not logits:
            logits.copy_(z)
    return logp


def _logp_op(targets: torch.Tensor, backend: str) -> RowOp:
    if backend == "triton":
        from tgrpo.kernels.logits import logp_rows

        return lambda z, r0, r1: logp_rows(z, targets[r0:r1])
    return lambda z, r0, r1: _torch_rows(z, targets[r0:r1].reshape(-1), None)


def _upstream_op(targets: torch.Tensor, grad_logp: torch.Tensor, backend: str) -> RowOp:
    if backend == "triton":
        from tgrpo.kernels.logits import upstream_grad_rows

        return lambda z, r0, r1: upstream_grad_rows(z, targets[r0:r1], grad_logp[r0:r1])
    return lambda z, r0, r1: _torch_rows(
        z, targets[r0:r1].reshape(-1), lambda _: grad_logp[r0:r1].reshape(-1)
    )


def _policy_op(rows: LossRows, cfg: LossConfig, backend: str) -> RowOp:
    if backend == "triton":
        from tgrpo.kernels.logits import policy_grad_rows

        return lambda z, r0, r1: policy_grad_rows(z, rows.slice(r0, r1), cfg)

    def op(z: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
        part = rows.slice(r0, r1)

        def grad_of_logp(logp: torch.Tensor) -> torch.Tensor:
            with torch.enable_grad():
                lp = logp.detach().view(r1 - r0, -1).requires_grad_()
                ell, *_ = _unit_terms(lp, part.old_logp, part.ref_logp, part.advantages, part.valid, cfg)
                (g,) = torch.autograd.grad((part.weights * ell).sum(), lp)
            return g.reshape(-1)

        return _torch_rows(z, part.targets.reshape(-1), grad_of_logp)

    return op


class _TokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, hidden, weight, targets, chunk_rows: int, backend: str) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(hidden, weight, targets)
        ctx.chunk_rows, ctx.backend = chunk_rows, backend
        logp, _, _ = _chunked(hidden, weight, chunk_rows, _logp_op(targets, backend), False, False)
        return logp

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_logp: torch.Tensor):  # type: ignore[override]
        hidden, weight, targets = ctx.saved_tensors
        want_h, want_w = ctx.needs_input_grad[:2]
        op = _upstream_op(targets, grad_logp.to(_compute_dtype(hidden)).contiguous(), ctx.backend)
        _, grad_h, grad_w = _chunked(hidden, weight, ctx.chunk_rows, op, want_h, want_w)
        return (
            None if grad_h is None else grad_h.view_as(hidden),
            None if grad_w is None else grad_w.to(weight.dtype),
            None,
            None,
            None,
        )


class _FusedPolicyLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, hidden, weight, rows: LossRows, cfg: LossConfig, chunk_rows: int, backend: str):  # type: ignore[override]
        want_h, want_w = ctx.needs_input_grad[:2]
        logp, grad_h, grad_w = _chunked(
            hidden, weight, chunk_rows, _policy_op(rows, cfg, backend), want_h, want_w
        )
        out = _loss_from_logp(
            logp, rows.old_logp, rows.ref_logp, rows.advantages, rows.valid, rows.weights, cfg
        )
        ctx.save_for_backward(
            None if grad_h is None else grad_h.view_as(hidden),
            None if grad_w is None else grad_w.to(weight.dtype),
        )
        values = [out.metrics[name] for name in METRIC_NAMES]
        ctx.mark_non_differentiable(*values)
        return (out.loss, *values)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor, *_: torch.Tensor):  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        if grad_h is not None:
            grad_h.mul_(grad_loss)  # in place: the stored gradient is handed over, not copied
        if grad_w is not None:
            grad_w.mul_(grad_loss)
        return grad_h, grad_w, None, None, None, None


# ---------------------------------------------------------------- argument handling


def _weights(
    weights: torch.Tensor | None, mask: torch.Tensor, seq_index: torch.Tensor | None, cfg: LossConfig
) -> torch.Tensor:
    if weights is None:
        return aggregation_weights(mask, seq_index, cfg.ratio, cfg.aggregation)
    unit_shape = mask.shape if cfg.ratio == "token" else mask.shape[:1]
    if weights.shape != unit_shape:
        raise ValueError(f"weights must be {tuple(unit_shape)} for ratio={cfg.ratio!r}, got {tuple(weights.shape)}")
    return weights


def _config(config: LossConfig | None, fields: dict[str, Any]) -> LossConfig:
    cfg = config or LossConfig()
    return dataclasses.replace(cfg, **fields) if fields else cfg


def _compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float32, or float64 for float64 input: the dtype of log-probs and of softmax arithmetic."""
    return torch.promote_types(tensor.dtype, torch.float32)


def _backend(backend: Backend, tensor: torch.Tensor) -> str:
    from tgrpo.kernels import select_backend

    return select_backend(backend, tensor)


def _chunk_rows(chunk_tokens: int, tokens: int) -> int:
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    return max(1, chunk_tokens // max(tokens, 1))


def _check_head(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> None:
    if hidden.dim() != 3 or weight.dim() != 2 or hidden.shape[-1] != weight.shape[-1]:
        raise ValueError(
            f"need hidden [B, T, H] and weight [V, H], got {tuple(hidden.shape)}, {tuple(weight.shape)}"
        )
    if hidden.dtype != weight.dtype:
        raise ValueError(f"hidden and weight dtypes differ: {hidden.dtype} vs {weight.dtype}")
    if targets.shape != hidden.shape[:2] or targets.dtype != torch.int64:
        raise ValueError(
            f"targets must be int64 [B, T] = {tuple(hidden.shape[:2])}, got {targets.dtype} {tuple(targets.shape)}"
        )


def _check_rows(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    seq_index: torch.Tensor | None,
) -> None:
    if logp.dim() != 2:
        raise ValueError(f"token tensors must be [B, T], got {tuple(logp.shape)}")
    for name, x in (("old_logp", old_logp), ("ref_logp", ref_logp), ("mask", mask)):
        if x.shape != logp.shape:
            raise ValueError(f"{name} shape {tuple(x.shape)} != {tuple(logp.shape)}")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages must be [B] = [{logp.shape[0]}], got {tuple(advantages.shape)}")
    if seq_index is not None and (seq_index.shape != logp.shape[:1] or seq_index.dtype != torch.int64):
        raise ValueError(
            f"seq_index must be int64 [B] = [{logp.shape[0]}], got {seq_index.dtype} {tuple(seq_index.shape)}"
        )
