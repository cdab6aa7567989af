"""Triton row kernels over a chunk of logits ``[rows * T, V]`` (from a cuBLAS matmul).

One program per step row (its ``T`` tokens together, so an action's summed log-prob is in reach):
sweep 1 is an online log-sum-exp over V and picks the target logit; then, depending on ``MODE``,
sweep 2 overwrites the logits in place with ``g * (onehot(target) - softmax)``, the gradient of the
loss w.r.t. the logits, where ``g = d loss / d logp`` is

* ``MODE 0``: none (log-probs only);
* ``MODE 1``: the TGRPO policy loss's own gradient, computed in the kernel (same math as
  :func:`tgrpo.losses._unit_terms`, differentiated by hand);
* ``MODE 2``: given per token (the upstream gradient of :func:`tgrpo.losses.token_logprobs`).

The input gradient is then one more matmul of the overwritten chunk with the LM head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import triton
import triton.language as tl

if TYPE_CHECKING:
    from tgrpo.loss_rows import LossRows
    from tgrpo.losses import LossConfig

_BLOCK_V = 1024  # vocabulary columns per loop iteration of the row kernel
_NUM_WARPS = 8


@triton.jit
def _unit_grad(lp, old, ref, adv, w, clip_lo, clip_hi, beta, clamp, CLAMP: tl.constexpr, KL: tl.constexpr):
    """``w * d ell / d logp`` for ``ell = -min(rho A, clip(rho) A) + beta k3`` (torch's tie rules)."""
    log_ratio = lp - old
    kl_log_ratio = ref - lp
    if CLAMP:
        in_r = (log_ratio >= -clamp) & (log_ratio <= clamp)
        in_k = (kl_log_ratio >= -clamp) & (kl_log_ratio <= clamp)
        log_ratio = tl.minimum(tl.maximum(log_ratio, -clamp), clamp)
        kl_log_ratio = tl.minimum(tl.maximum(kl_log_ratio, -clamp), clamp)
    ratio = tl.exp(log_ratio)
    clipped = tl.minimum(tl.maximum(ratio, clip_lo), clip_hi)
    grad = tl.where(ratio * adv <= clipped * adv, -adv * ratio, 0.0)
    if CLAMP:
        grad = tl.where(in_r, grad, 0.0)
    if KL:
        kl_grad = beta * (1.0 - tl.exp(kl_log_ratio))
        if CLAMP:
            kl_grad = tl.where(in_k, kl_grad, 0.0)
        grad += kl_grad
    return w * grad


@triton.jit
def _rows_kernel(
    z_ptr, stride_z, tgt_ptr, logp_ptr, g_ptr,
    valid_ptr, old_ptr, ref_ptr, adv_ptr, w_ptr,
    V, T, clip_lo, clip_hi, beta, clamp,
    MODE: tl.constexpr, ACTION: tl.constexpr, CLAMP: tl.constexpr, KL: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_V: tl.constexpr,
):  # fmt: skip
    r = tl.program_id(0).to(tl.int64)
    t = tl.arange(0, BLOCK_T)
    t_in = t < T
    tok = r * T + t
    row = z_ptr + tok * stride_z

    m = tl.full([BLOCK_T], -1e38, tl.float32)
    s = tl.zeros([BLOCK_T], tl.float32)
    for v0 in range(0, V, BLOCK_V):
        v = v0 + tl.arange(0, BLOCK_V)
        z = tl.load(row[:, None] + v[None, :], mask=t_in[:, None] & (v < V)[None, :], other=-float("inf"))
        z = z.to(tl.float32)
        m_new = tl.maximum(m, tl.max(z, axis=1))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new[:, None]), axis=1)
        m = m_new
    lse = m + tl.log(tl.where(t_in, s, 1.0))  # padding rows: finite, never stored
    tgt = tl.load(tgt_ptr + tok, mask=t_in, other=0)
    logp = tl.load(row + tgt, mask=t_in, other=0).to(tl.float32) - lse
    tl.store(logp_ptr + tok, logp, mask=t_in)

    if MODE != 0:
        if MODE == 1:
            valid = tl.load(valid_ptr + tok, mask=t_in, other=0) != 0
            old = tl.load(old_ptr + tok, mask=valid, other=0.0)
            ref = tl.load(ref_ptr + tok, mask=valid, other=0.0)
            lp = tl.where(valid, logp, 0.0)
            adv = tl.load(adv_ptr + r)
            if ACTION:
                g_unit = _unit_grad(
                    tl.sum(lp, axis=0), tl.sum(old, axis=0), tl.sum(ref, axis=0), adv, tl.load(w_ptr + r),
                    clip_lo, clip_hi, beta, clamp, CLAMP, KL,
                )  # fmt: skip
                g = tl.where(valid, g_unit, 0.0)
            else:
                w = tl.load(w_ptr + tok, mask=valid, other=0.0)
                g = tl.where(
                    valid, _unit_grad(lp, old, ref, adv, w, clip_lo, clip_hi, beta, clamp, CLAMP, KL), 0.0
                )
        else:
            g = tl.load(g_ptr + tok, mask=t_in, other=0.0)
        for v0 in range(0, V, BLOCK_V):
            v = v0 + tl.arange(0, BLOCK_V)
            inside = t_in[:, None] & (v < V)[None, :]
            z = tl.load(row[:, None] + v[None, :], mask=inside, other=-float("inf")).to(tl.float32)
            p = tl.exp(z - lse[:, None])
            grad = tl.where(v[None, :] == tgt[:, None], g[:, None], 0.0) - g[:, None] * p
            tl.store(row[:, None] + v[None, :], grad.to(z_ptr.dtype.element_ty), mask=inside)


def _launch(z: torch.Tensor, targets: torch.Tensor, mode: int, **kw) -> torch.Tensor:
    rows, tokens = targets.shape
    vocab = z.shape[1]
    logp = torch.empty(rows * tokens, dtype=torch.float32, device=z.device)
    if rows == 0:
        return logp
    cfg = kw.pop("cfg", None)
    dummy = logp
    _rows_kernel[(rows,)](
        z, z.stride(0), targets.contiguous(), logp, kw.get("g", dummy),
        kw.get("valid", dummy), kw.get("old", dummy), kw.get("ref", dummy), kw.get("adv", dummy), kw.get("w", dummy),
        vocab, tokens,
        1.0 - cfg.clip_eps if cfg else 0.0, 1.0 + cfg.clip_eps if cfg else 0.0,
        float(cfg.beta) if cfg else 0.0,
        float(cfg.log_ratio_clamp or 0.0) if cfg else 0.0,
        MODE=mode, ACTION=bool(cfg and cfg.ratio == "action"),
        CLAMP=bool(cfg and cfg.log_ratio_clamp is not None), KL=bool(cfg and cfg.beta != 0),
        BLOCK_T=triton.next_power_of_2(tokens), BLOCK_V=min(_BLOCK_V, triton.next_power_of_2(vocab)),
        num_warps=_NUM_WARPS,
    )  # fmt: skip
    return logp


def logp_rows(z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probs ``[rows * T]`` of ``targets [rows, T]`` under logits ``z [rows * T, V]``."""
    return _launch(z, targets, 0)


def upstream_grad_rows(z: torch.Tensor, targets: torch.Tensor, grad_logp: torch.Tensor) -> torch.Tensor:
    """As :func:`logp_rows`, and ``z`` <- ``grad_logp * (onehot - softmax(z))``."""
    return _launch(z, targets, 2, g=grad_logp.contiguous())


def policy_grad_rows(z: torch.Tensor, rows: LossRows, cfg: LossConfig) -> torch.Tensor:
    """As :func:`logp_rows`, and ``z`` <- the TGRPO loss gradient w.r.t. the logits."""
    return _launch(
        z, rows.targets, 1, cfg=cfg,
        valid=rows.valid.contiguous().view(torch.uint8), old=rows.old_logp, ref=rows.ref_logp,
        adv=rows.advantages, w=rows.weights,
    )  # fmt: skip
