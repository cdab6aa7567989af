"""One-launch Triton kernel for ``a1 * A_step + a2 * A_traj`` (same rules as :mod:`tgrpo.advantages`).

One program per group: pass 1 sums each trajectory's valid rewards (trajectory z-score), pass 2 reads
the group again column block by column block (step z-scores) and writes the output. Statistics are in
float32 (float64 for float64 input). As in the torch version, values are shifted by a valid member
(the largest) before the mean, so equal values give exactly zero; the non-finite flag is exact here.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _tgrpo_advantage_kernel(
    x_ptr, mask_ptr, out_ptr, bad_ptr,
    N, M, a1, a2, eps, ddof,
    HAS_MASK: tl.constexpr, STEP: tl.constexpr, TRAJ: tl.constexpr, COMPUTE: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    base = tl.program_id(0).to(tl.int64) * N * M
    rows = tl.arange(0, BLOCK_N)
    row_in = rows < N
    inf = float("inf")

    if TRAJ:
        # element-wise accumulators, reduced once after the loop: a row sum accumulated inside the loop fails
        # Triton 3.6's thread-locality pass on CUDA (PassManager::run failed; the CPU interpreter accepts it)
        ret_acc = tl.zeros([BLOCK_N, BLOCK_M], COMPUTE)
        cnt_acc = tl.zeros([BLOCK_N, BLOCK_M], COMPUTE)
        for m0 in range(0, M, BLOCK_M):
            cols = m0 + tl.arange(0, BLOCK_M)
            offs = base + rows[:, None] * M + cols[None, :]
            valid = row_in[:, None] & (cols < M)[None, :]
            if HAS_MASK:
                valid = valid & (tl.load(mask_ptr + offs, mask=valid, other=0) != 0)
            ret_acc += tl.load(x_ptr + offs, mask=valid, other=0).to(COMPUTE)
            cnt_acc += valid.to(COMPUTE)
        ret = tl.sum(ret_acc, axis=1)
        tv = tl.sum(cnt_acc, axis=1) > 0
        n = tl.sum(tv.to(COMPUTE), axis=0)
        shifted = tl.where(tv, ret - tl.max(tl.where(tv, ret, -inf), axis=0), 0)
        dev = tl.where(tv, shifted - tl.sum(shifted, axis=0) / tl.maximum(n, 1), 0)
        std = tl.sqrt(tl.sum(dev * dev, axis=0) / tl.maximum(n - ddof, 1))
        a_traj = tl.where(tv, tl.where((n >= 2) & (std > 0), dev / (std + eps), 0), 0)

    bad = tl.zeros([BLOCK_N, BLOCK_M], tl.int32)
    for m0 in range(0, M, BLOCK_M):
        cols = m0 + tl.arange(0, BLOCK_M)
        offs = base + rows[:, None] * M + cols[None, :]
        inside = row_in[:, None] & (cols < M)[None, :]
        valid = inside
        if HAS_MASK:
            valid = valid & (tl.load(mask_ptr + offs, mask=inside, other=0) != 0)
        x = tl.load(x_ptr + offs, mask=valid, other=0).to(COMPUTE)
        bad = tl.maximum(bad, (valid & ~(tl.abs(x) < inf)).to(tl.int32))  # NaN compares false
        out = tl.zeros([BLOCK_N, BLOCK_M], COMPUTE)
        if STEP:
            n_t = tl.sum(valid.to(COMPUTE), axis=0)
            shifted_t = tl.where(valid, x - tl.max(tl.where(valid, x, -inf), axis=0)[None, :], 0)
            dev_t = tl.where(valid, shifted_t - (tl.sum(shifted_t, axis=0) / tl.maximum(n_t, 1))[None, :], 0)
            std_t = tl.sqrt(tl.sum(dev_t * dev_t, axis=0) / tl.maximum(n_t - ddof, 1))
            ok_t = (n_t >= 2) & (std_t > 0)
            out += a1 * tl.where(valid & ok_t[None, :], dev_t / (std_t + eps)[None, :], 0)
        if TRAJ:
            out += a2 * tl.where(valid, a_traj[:, None], 0)
        tl.store(out_ptr + offs, out, mask=inside)
    any_bad = tl.max(tl.max(bad, axis=1), axis=0)
    tl.atomic_max(bad_ptr, any_bad, mask=any_bad > 0)


def tgrpo_advantage_triton(
    x: torch.Tensor, valid: torch.Tensor | None, a1: float, a2: float, eps: float, ddof: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(advantages [..., N, M], any_nonfinite [] bool)`` from float ``x`` and bool ``valid`` (or None)."""
    n_traj, n_steps = x.shape[-2:]
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    bad = torch.zeros(1, dtype=torch.int32, device=x.device)
    groups = x.numel() // max(n_traj * n_steps, 1)
    if x.numel() == 0:
        return out, bad[0] != 0
    x = x.contiguous()
    mask = x if valid is None else valid.contiguous().view(torch.uint8)
    block_n = triton.next_power_of_2(n_traj)
    block_m = min(triton.next_power_of_2(n_steps), max(16, 8192 // block_n))
    _tgrpo_advantage_kernel[(groups,)](
        x, mask, out, bad,
        n_traj, n_steps, float(a1), float(a2), float(eps), int(ddof),
        HAS_MASK=valid is not None, STEP=a1 != 0, TRAJ=a2 != 0,
        COMPUTE=tl.float64 if x.dtype == torch.float64 else tl.float32,
        BLOCK_N=block_n, BLOCK_M=block_m,
    )  # fmt: skip
    return out, bad[0] != 0
