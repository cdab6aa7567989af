"""Triton kernels against the torch implementations.

Without a GPU the kernels run under Triton's CPU interpreter (TRITON_INTERPRET=1, set here before the
kernel modules are imported); with one, on CUDA. Tests marked ``gpu`` need CUDA (bf16, real shapes;
the interpreter rounds float32 to bf16 by truncation, not to nearest as compiled kernels do).
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed", allow_module_level=True)
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # read when the kernels are decorated, i.e. at import

from bench.profiling.reference import naive_fused_loss
from tgrpo.advantages import tgrpo_advantage
from tgrpo.losses import LossConfig, fused_policy_loss, token_logprobs

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
gpu = pytest.mark.gpu


def _rewards(shape: tuple[int, ...], seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ties = torch.randint(0, 3, shape, generator=g).to(dtype)  # many ties, some all-equal columns
    return torch.where(
        torch.rand(shape, generator=g) < 0.5, ties, torch.randn(shape, generator=g, dtype=dtype)
    )


@pytest.mark.parametrize("shape", [(3, 4, 37), (2, 1, 5), (1, 2, 3), (3, 8, 100), (2, 3, 6, 20)])
@pytest.mark.parametrize("masked", [False, True])
def test_advantage_kernel_matches_torch(shape, masked: bool) -> None:
    _compare_advantage(shape, masked, (0.3, 0.7))


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("weights", [(1.0, 0.0), (0.0, 1.0)])
def test_advantage_kernel_single_level(masked: bool, weights) -> None:
    _compare_advantage((3, 4, 37), masked, weights)


def _compare_advantage(shape, masked: bool, weights) -> None:
    x = _rewards(shape, seed=len(shape) + shape[-1]).to(DEVICE)
    x[..., 0] = 1.0  # an all-equal step
    mask = (torch.rand(shape) > 0.25).to(DEVICE) if masked else None
    got = tgrpo_advantage(x, *weights, mask=mask, backend="triton")
    want = tgrpo_advantage(x, *weights, mask=mask, backend="torch")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(got[..., 0] == 0, want[..., 0] == 0)


def test_advantage_kernel_float64_and_errors() -> None:
    x = _rewards((4, 5, 33), seed=1, dtype=torch.float64).to(DEVICE)
    torch.testing.assert_close(tgrpo_advantage(x, backend="triton"), tgrpo_advantage(x, backend="torch"))
    x[2, 1, 7] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        tgrpo_advantage(x, backend="triton")
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[2, 1, 7] = False
    assert torch.isfinite(tgrpo_advantage(x, mask=mask, backend="triton")).all()


def _head(rows, tokens, hidden, vocab, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(rows, tokens, hidden, generator=g).to(DEVICE, dtype)
    w = (torch.randn(vocab, hidden, generator=g) / hidden**0.5).to(DEVICE, dtype)
    y = torch.randint(0, vocab, (rows, tokens), generator=g).to(DEVICE)
    return h, w, y


def test_token_logprobs_kernel_matches_torch() -> None:
    h, w, y = _head(5, 7, 16, 1500, 0)
    upstream = torch.randn(5, 7, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    results = []
    for backend in ("torch", "triton"):
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        logp = token_logprobs(hh, ww, y, chunk_tokens=14, backend=backend)
        (logp * upstream).sum().backward()
        results.append((logp, hh.grad, ww.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ratio", ["token", "action"])
@pytest.mark.parametrize(("beta", "clamp"), [(0.04, 20.0), (0.0, None), (0.5, 0.3)])
def test_fused_kernel_matches_torch(ratio: str, beta: float, clamp: float | None) -> None:
    rows, tokens = 6, 7
    h, w, y = _head(rows, tokens, 16, 700, 2)
    g = torch.Generator().manual_seed(3)
    base = token_logprobs(h, w, y).cpu()  # old/ref near the current policy, as in training
    x = {
        "old_logp": (base + 0.2 * torch.randn(rows, tokens, generator=g)).to(DEVICE),
        "ref_logp": (base + 0.2 * torch.randn(rows, tokens, generator=g)).to(DEVICE),
        "advantages": torch.randn(rows, generator=g).to(DEVICE),
        "mask": (torch.rand(rows, tokens, generator=g) > 0.2).to(DEVICE),
        "seq_index": torch.tensor([0, 0, 0, 1, 1, 2]).to(DEVICE),
    }
    cfg = LossConfig(ratio=ratio, beta=beta, log_ratio_clamp=clamp)
    results = []
    for backend in ("torch", "triton"):
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        out = fused_policy_loss(hh, ww, y, **x, config=cfg, chunk_tokens=21, backend=backend)
        out.loss.backward()
        results.append((out.loss, hh.grad, ww.grad, *out.metrics.values()))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_fused_loss_matches_naive() -> None:
    rows, tokens = 64, 7
    h, w, y = _head(rows, tokens, 512, 32064, 4, torch.bfloat16)
    g = torch.Generator().manual_seed(5)
    base = token_logprobs(h.float(), w.float(), y).cpu()
    x = {
        "old_logp": (base + 0.1 * torch.randn(rows, tokens, generator=g)).to(DEVICE),
        "ref_logp": (base + 0.1 * torch.randn(rows, tokens, generator=g)).to(DEVICE),
        "advantages": torch.randn(rows, generator=g).to(DEVICE),
        "mask": torch.ones(rows, tokens, dtype=torch.bool, device=DEVICE),
    }
    hh = h.clone().requires_grad_()
    got = fused_policy_loss(hh, w, y, **x, ratio="token")
    got.loss.backward()
    hr = h.clone().requires_grad_()
    want = naive_fused_loss(hr, w, y, **x, ratio="token")
    want.loss.backward()
    torch.testing.assert_close(got.loss, want.loss, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(hh.grad.float(), hr.grad.float(), rtol=2e-2, atol=1e-4)


@gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_advantage_auto_backend_matches_cpu() -> None:
    x = _rewards((1024, 8, 512), seed=6)
    got = tgrpo_advantage(x.cuda())
    torch.testing.assert_close(got.cpu(), tgrpo_advantage(x), rtol=1e-5, atol=1e-5)
