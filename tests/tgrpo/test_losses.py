"""tgrpo.losses against unit-by-unit float64 autograd references (bench.profiling.reference)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from bench.profiling.reference import loop_policy_loss, naive_fused_loss
from tgrpo.losses import (
    LossConfig,
    aggregation_weights,
    clipped_value_loss,
    fused_policy_loss,
    get_value_loss,
    policy_loss,
    token_logprobs,
)

F64 = torch.float64


def _rows(rows: int, tokens: int, seed: int, spread: float = 0.3, logp=None) -> dict[str, torch.Tensor]:
    """Random token log-probs (or ``logp``), old/ref log-probs ``spread`` away, advantages, a mask."""
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(rows, tokens, generator=g, dtype=F64) * 3 if logp is None else logp.detach()
    return {
        "logp": logp,
        "old_logp": logp + spread * torch.randn(rows, tokens, generator=g, dtype=F64),
        "ref_logp": logp + spread * torch.randn(rows, tokens, generator=g, dtype=F64),
        "advantages": torch.randn(rows, generator=g, dtype=F64),
        "mask": torch.rand(rows, tokens, generator=g) > 0.2,
    }


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 6),
    tokens=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    ratio=st.sampled_from(["token", "action"]),
    aggregation=st.sampled_from(["seq-mean-token-mean", "token-mean"]),
    beta=st.sampled_from([0.0, 0.04, 0.5]),
    clamp=st.sampled_from([None, 20.0, 0.2]),
    with_seq=st.booleans(),
    spread=st.sampled_from([0.0, 0.1, 1.0]),
)
def test_policy_loss_matches_loop_reference(
    rows, tokens, seed, ratio, aggregation, beta, clamp, with_seq, spread
) -> None:
    x = _rows(rows, tokens, seed, spread)
    seq = torch.randint(0, rows, (rows,), generator=torch.Generator().manual_seed(seed)) if with_seq else None
    cfg = LossConfig(ratio=ratio, aggregation=aggregation, beta=beta, log_ratio_clamp=clamp)
    logp = x.pop("logp").requires_grad_()
    got = policy_loss(logp, **x, seq_index=seq, config=cfg)
    (grad,) = torch.autograd.grad(got.loss, logp, allow_unused=True, materialize_grads=True)
    ref_logp = logp.detach().clone().requires_grad_()
    want, want_metrics = loop_policy_loss(
        ref_logp, x["old_logp"], x["ref_logp"], x["advantages"], x["mask"], seq, cfg
    )
    want_grad = torch.zeros_like(ref_logp)
    if want.requires_grad:
        (want_grad,) = torch.autograd.grad(want, ref_logp, allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(got.loss, torch.as_tensor(want, dtype=F64), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, want_grad, rtol=1e-10, atol=1e-12)
    for name, value in want_metrics.items():
        assert float(got.metrics[name]) == pytest.approx(value, rel=1e-6, abs=1e-9), name


def test_k3_kl_and_first_epoch_gradient() -> None:
    x = _rows(5, 7, 0)
    x["old_logp"] = x["ref_logp"] = x["logp"].clone()
    logp = x.pop("logp").requires_grad_()
    out = policy_loss(logp, **x, ratio="token", aggregation="token-mean")
    assert float(out.metrics["kl_mean"]) == 0 and float(out.metrics["clip_frac"]) == 0
    assert float(out.metrics["ratio_min"]) == float(out.metrics["ratio_max"]) == 1
    (grad,) = torch.autograd.grad(out.loss, logp)
    mask = x["mask"].to(F64)
    torch.testing.assert_close(grad, -x["advantages"][:, None] * mask / mask.sum())
    d = torch.linspace(-5, 5, 101, dtype=F64)
    k3 = d.exp() - d - 1
    assert (k3 >= 0).all() and k3[50] == 0


def test_clip_fraction_and_clipped_gradient() -> None:
    logp = torch.zeros(1, 4, dtype=F64, requires_grad=True)
    old = torch.tensor([[-0.5, 0.5, -0.5, 0.5]], dtype=F64)  # ratios e^0.5 (above 1.2), e^-0.5 (below 0.8)
    adv = torch.tensor([1.0], dtype=F64)
    out = policy_loss(
        logp, old, logp.detach(), adv, torch.ones(1, 4, dtype=torch.bool), ratio="token", beta=0.0
    )
    # A > 0: ratio above 1 + eps is clipped (no gradient); ratio below 1 - eps keeps its gradient.
    assert float(out.metrics["clip_frac"]) == 0.5
    (grad,) = torch.autograd.grad(out.loss, logp)
    torch.testing.assert_close(
        grad, torch.tensor([[0.0, -math.exp(-0.5), 0.0, -math.exp(-0.5)]], dtype=F64) / 4
    )


def test_aggregations_agree_for_equal_lengths_and_differ_otherwise() -> None:
    x = _rows(6, 7, 1)
    x["mask"] = torch.ones(6, 7, dtype=torch.bool)
    seq = torch.tensor([0, 0, 0, 1, 1, 1])
    a = policy_loss(**x, seq_index=seq, aggregation="seq-mean-token-mean").loss
    b = policy_loss(**x, seq_index=seq, aggregation="token-mean").loss
    torch.testing.assert_close(a, b)
    x["mask"][3:5] = False  # trajectory 1 is now shorter
    a = policy_loss(**x, seq_index=seq, aggregation="seq-mean-token-mean").loss
    b = policy_loss(**x, seq_index=seq, aggregation="token-mean").loss
    assert not torch.allclose(a, b)


def test_aggregation_weights() -> None:
    mask = torch.tensor([[1, 1], [1, 0], [0, 0], [1, 1]])
    seq = torch.tensor([0, 0, 2, 2])
    w = aggregation_weights(mask, seq, "token", "seq-mean-token-mean")
    torch.testing.assert_close(
        w, torch.tensor([[1 / 6, 1 / 6], [1 / 6, 0], [0, 0], [1 / 4, 1 / 4]], dtype=F64)
    )
    w = aggregation_weights(mask, seq, "action", "seq-mean-token-mean")
    torch.testing.assert_close(w, torch.tensor([0.25, 0.25, 0.0, 0.5], dtype=F64))
    w_far = aggregation_weights(mask, torch.tensor([7, 7, 1000, 1000]), "action", "seq-mean-token-mean")
    torch.testing.assert_close(w_far, w)  # ids are labels, not bounded by B
    w = aggregation_weights(mask, None, "action", "token-mean")
    torch.testing.assert_close(w, torch.tensor([1, 1, 0, 1], dtype=F64) / 3)


def test_padding_garbage_does_not_leak() -> None:
    x = _rows(4, 7, 2)
    for key in ("old_logp", "ref_logp", "logp"):
        x[key] = torch.where(x["mask"], x[key], torch.nan)
    logp = x.pop("logp").requires_grad_()
    for ratio in ("token", "action"):
        out = policy_loss(logp, **x, ratio=ratio)
        (grad,) = torch.autograd.grad(out.loss, logp)
        assert torch.isfinite(out.loss) and torch.isfinite(grad).all()
        assert all(torch.isfinite(v) for v in out.metrics.values())


# ---------------------------------------------------------------- token_logprobs and the fused loss


def _head(rows: int, tokens: int, hidden: int, vocab: int, seed: int, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(rows, tokens, hidden, generator=g, dtype=dtype)
    w = torch.randn(vocab, hidden, generator=g, dtype=dtype) / hidden**0.5
    y = torch.randint(0, vocab, (rows, tokens), generator=g)
    return h, w, y


@pytest.mark.parametrize("chunk_tokens", [1, 5, 14, 4096])
def test_token_logprobs_matches_log_softmax(chunk_tokens: int) -> None:
    h, w, y = _head(4, 7, 12, 97, 0)
    h.requires_grad_()
    w.requires_grad_()
    want = torch.log_softmax(h @ w.T, -1).gather(-1, y[..., None]).squeeze(-1)
    got = token_logprobs(h, w, y, chunk_tokens=chunk_tokens)
    assert got.dtype == F64 and got.shape == (4, 7)
    torch.testing.assert_close(got, want)
    upstream = torch.randn(4, 7, dtype=F64)
    grads = torch.autograd.grad((got * upstream).sum(), (h, w))
    want_grads = torch.autograd.grad((want * upstream).sum(), (h, w))
    for a, b in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_token_logprobs_hidden_only_and_float32() -> None:
    h, w, y = _head(3, 7, 8, 50, 1, torch.float32)
    h.requires_grad_()
    got = token_logprobs(h, w, y, chunk_tokens=7)
    assert got.dtype == torch.float32
    (grad,) = torch.autograd.grad(got.sum(), h)
    hd = h.detach().double().requires_grad_()
    want = torch.log_softmax(hd @ w.double().T, -1).gather(-1, y[..., None]).sum()
    torch.testing.assert_close(grad, torch.autograd.grad(want, hd)[0].float(), rtol=1e-5, atol=1e-6)


CASES = list(itertools.product(["token", "action"], ["seq-mean-token-mean", "token-mean"], [False, True]))


@pytest.mark.parametrize(("ratio", "aggregation", "with_seq"), CASES)
def test_fused_loss_matches_naive_float64(ratio: str, aggregation: str, with_seq: bool) -> None:
    rows, tokens = 6, 7
    h, w, y = _head(rows, tokens, 16, 301, 3)
    x = _rows(
        rows, tokens, 3, spread=0.4, logp=torch.log_softmax(h @ w.T, -1).gather(-1, y[..., None]).squeeze(-1)
    )
    x.pop("logp")
    seq = torch.tensor([0, 0, 1, 1, 1, 3]) if with_seq else None
    cfg = LossConfig(ratio=ratio, aggregation=aggregation, log_ratio_clamp=0.5)
    h.requires_grad_()
    w.requires_grad_()
    want = naive_fused_loss(h, w, y, **x, seq_index=seq, config=cfg)
    want_grads = torch.autograd.grad(want.loss, (h, w))
    for chunk_tokens in (7, 20, 1000):
        hh, ww = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
        got = fused_policy_loss(hh, ww, y, **x, seq_index=seq, config=cfg, chunk_tokens=chunk_tokens)
        got.loss.backward()
        torch.testing.assert_close(got.loss, want.loss)
        torch.testing.assert_close(hh.grad, want_grads[0])
        torch.testing.assert_close(ww.grad, want_grads[1])
        for name, value in want.metrics.items():
            torch.testing.assert_close(got.metrics[name].double(), value.double())


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any op produces while active (forward and backward)."""

    largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_logits_are_never_materialised_whole() -> None:
    rows, tokens, vocab = 4, 7, 1000
    h, w, y = _head(rows, tokens, 8, vocab, 5, torch.float32)
    x = _rows(rows, tokens, 5, logp=token_logprobs(h, w, y))
    x = {k: v.float() if v.is_floating_point() else v for k, v in x.items() if k != "logp"}
    h.requires_grad_()
    with _LargestTensor() as probe:
        token_logprobs(h, w, y, chunk_tokens=14).sum().backward()
        fused_policy_loss(h, w, y, **x, chunk_tokens=14).loss.backward()
    assert probe.largest == 14 * vocab  # one chunk of logits, never all rows * tokens * vocab


def test_fused_loss_float32_no_grad_and_grad_scaling() -> None:
    h, w, y = _head(5, 7, 16, 200, 4, torch.float32)
    x = {
        k: (v.float() if v.is_floating_point() else v)
        for k, v in _rows(5, 7, 4, logp=token_logprobs(h, w, y)).items()
    }
    x.pop("logp")
    with torch.no_grad():
        plain = fused_policy_loss(h, w, y, **x)
    h.requires_grad_()
    out = fused_policy_loss(h, w, y, **x)
    torch.testing.assert_close(plain.loss, out.loss)
    (3.0 * out.loss).backward()
    hd = h.detach().double().requires_grad_()
    want = naive_fused_loss(
        hd, w.double(), y, **{k: v.double() if v.is_floating_point() else v for k, v in x.items()}
    )
    (3.0 * want.loss).backward()
    torch.testing.assert_close(h.grad, hd.grad.float(), rtol=1e-4, atol=1e-6)


def test_config_and_shape_errors() -> None:
    for kwargs in (
        {"clip_eps": 0.0},
        {"beta": -1.0},
        {"ratio": "step"},
        {"aggregation": "sum"},
        {"log_ratio_clamp": 0.0},
    ):
        with pytest.raises(ValueError):
            LossConfig(**kwargs)
    x = _rows(3, 7, 0)
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(**{**x, "advantages": torch.zeros(3, 7)})
    with pytest.raises(ValueError, match="seq_index"):
        policy_loss(**x, seq_index=torch.zeros(3, dtype=torch.int32))
    with pytest.raises(TypeError):
        policy_loss(**x, clip=0.1)
    h, w, y = _head(3, 7, 8, 50, 0)
    with pytest.raises(ValueError, match="targets"):
        token_logprobs(h, w, y.int())
    with pytest.raises(ValueError, match="dtypes"):
        token_logprobs(h, w.float(), y)


# ---------------------------------------------------------------- clipped value loss


def loop_value_loss(values, old_values, returns, weights, clip):
    """PPO2's clipped value loss, one row at a time in Python floats: the loss and its gradient w.r.t. each value.
    Per row: u = (v - R)^2, v_c = v_old + min(max(v - v_old, -c), c), k = (v_c - R)^2, ell = 0.5 * max(u, k);
    d ell / d v is (v - R) on the unclipped branch, (v_c - R) * [|v - v_old| < c] on the clipped one."""
    loss, grads = 0.0, []
    for v, old, ret, w in zip(values, old_values, returns, weights, strict=True):
        u = (v - ret) ** 2
        if clip is None:
            loss += w * 0.5 * u
            grads.append(w * (v - ret))
            continue
        vc = old + min(max(v - old, -clip), clip)
        k = (vc - ret) ** 2
        loss += w * 0.5 * max(u, k)
        if u >= k:
            grads.append(w * (v - ret))
        else:
            grads.append(w * (vc - ret) * (1.0 if abs(v - old) < clip else 0.0))
    return loss, grads


def test_clipped_value_loss_hand_computed() -> None:
    # row 0: u = (1 - 0)^2 = 1; v_c = 0.5 + 0.2 = 0.7, k = 0.49 -> 0.5 * 1
    # row 1: v - old = -1 -> v_c = 0.8, k = (0.8 + 0.5)^2 = 1.69 > u = 0.25 -> 0.5 * 1.69, clipped (no gradient)
    values = torch.tensor([1.0, 0.0], dtype=F64, requires_grad=True)
    out = get_value_loss("clip-mse")(values, torch.tensor([0.5, 1.0], dtype=F64), torch.tensor([0.0, -0.5], dtype=F64),
                                     torch.tensor([0.5, 0.5], dtype=F64), clip=0.2)
    assert float(out.loss.detach()) == pytest.approx(0.5 * 0.5 * 1.0 + 0.5 * 0.5 * 1.69)
    assert float(out.metrics["value_clip_frac"]) == 0.5
    out.loss.backward()
    torch.testing.assert_close(values.grad, torch.tensor([0.5 * 1.0, 0.0], dtype=F64))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.sampled_from([None, 0.05, 0.2, 1.0]), st.integers(0, 10_000))
def test_clipped_value_loss_matches_its_equation(rows: int, clip: float | None, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(rows, generator=g, dtype=F64)
    old = values + 0.3 * torch.randn(rows, generator=g, dtype=F64)
    returns = torch.randn(rows, generator=g, dtype=F64)
    weights = torch.rand(rows, generator=g, dtype=F64)
    weights = weights / weights.sum()
    want, want_grad = loop_value_loss(values.tolist(), old.tolist(), returns.tolist(), weights.tolist(), clip)
    v = values.clone().requires_grad_()
    out = clipped_value_loss(v, old, returns, weights, clip=clip)
    out.loss.backward()
    assert float(out.loss.detach()) == pytest.approx(want, rel=1e-12, abs=1e-12)
    torch.testing.assert_close(v.grad, torch.tensor(want_grad, dtype=F64), rtol=1e-12, atol=1e-12)


def test_clipped_value_loss_refuses_bad_input() -> None:
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="must be \\[B\\] alike"):
        clipped_value_loss(x, x, torch.zeros(2), x)
    with pytest.raises(ValueError, match="value clip must be None or finite and > 0"):
        clipped_value_loss(x, x, x, x, clip=0.0)
