"""The trajectory preference loss (DPO / GRAPE's TPO) against its equation written as a loop, hand-computed values,
and the cases where it must not move the policy (beta -> 0, identical chosen and rejected)."""

import math

import pytest
import torch

from tgrpo.preference_losses import (
    PREFERENCE_LOSSES,
    get_preference_loss,
    sigmoid_preference_loss,
    trajectory_logprobs,
)


def loop_loss(pw, pl, rw, rl, beta):
    """mean_p -log sigmoid(beta * ((pi_w - ref_w) - (pi_l - ref_l))), pair by pair in Python floats."""
    total = 0.0
    for a, b, c, d in zip(pw, pl, rw, rl, strict=True):
        margin = beta * ((a - c) - (b - d))
        total += -math.log(1.0 / (1.0 + math.exp(-margin)))
    return total / len(pw)


def loop_grad(pw, pl, rw, rl, beta):
    """d loss / d pi_w and d loss / d pi_l per pair: -+ beta * sigmoid(-margin) / P."""
    gw, gl = [], []
    for a, b, c, d in zip(pw, pl, rw, rl, strict=True):
        s = 1.0 / (1.0 + math.exp(beta * ((a - c) - (b - d))))
        gw.append(-beta * s / len(pw))
        gl.append(beta * s / len(pw))
    return gw, gl


def _leaves(pw, pl, rw, rl):
    """Current log-likelihoods as leaves that take gradients; the reference ones as constants."""
    return [torch.tensor(v, dtype=torch.float64, requires_grad=grad) for v, grad in
            ((pw, True), (pl, True), (rw, False), (rl, False))]


def test_hand_computed_pair():
    # margin = 0.5 * ((-10 + 12) - (-9 + 8)) = 1.5; loss = log(1 + e^-1.5); d/d pi_w = -0.5 * sigmoid(-1.5)
    pw, pl, rw, rl = _leaves([-10.0], [-9.0], [-12.0], [-8.0])
    out = sigmoid_preference_loss(pw, pl, rw, rl, beta=0.5)
    assert out.loss.item() == pytest.approx(0.2014132779827524, abs=1e-12)
    out.loss.backward()
    assert float(pw.grad) == pytest.approx(-0.5 * 0.18242552380635635, abs=1e-12)
    assert float(pl.grad) == pytest.approx(0.5 * 0.18242552380635635, abs=1e-12)
    m = out.metrics
    assert float(m["reward_margin"]) == pytest.approx(1.5)
    assert float(m["reward_accuracy"]) == 1.0
    assert float(m["chosen_reward"]) == pytest.approx(1.0) and float(m["rejected_reward"]) == pytest.approx(-0.5)
    assert float(m["logp_margin"]) == pytest.approx(-1.0)  # the chosen one is less likely, yet preferred


@pytest.mark.parametrize("beta", [0.01, 0.1, 1.0, 3.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_equation_as_a_loop(beta, seed):
    gen = torch.Generator().manual_seed(seed)
    p = 1 + seed * 3
    values = [(torch.randn(p, generator=gen, dtype=torch.float64) * 20 - 150).tolist() for _ in range(4)]
    pw, pl, rw, rl = _leaves(*values)
    out = sigmoid_preference_loss(pw, pl, rw, rl, beta=beta)
    assert out.loss.item() == pytest.approx(loop_loss(*values, beta), rel=1e-10, abs=1e-12)
    out.loss.backward()
    gw, gl = loop_grad(*values, beta)
    torch.testing.assert_close(pw.grad, torch.tensor(gw, dtype=torch.float64), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(pl.grad, torch.tensor(gl, dtype=torch.float64), rtol=1e-10, atol=1e-14)


def test_identical_chosen_and_rejected_give_no_gradient():
    """The same trajectory as chosen and rejected: margin 0, loss log 2, and the two gradients cancel exactly."""
    logp = torch.tensor([-40.0, -75.5], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([-41.0, -70.0], dtype=torch.float64)
    out = sigmoid_preference_loss(logp, logp, ref, ref, beta=0.1)
    assert out.loss.item() == pytest.approx(math.log(2))
    out.loss.backward()
    assert torch.equal(logp.grad, torch.zeros(2, dtype=torch.float64))


def test_beta_to_zero_gives_no_gradient():
    """The gradient is beta * sigmoid(-margin) / P: it vanishes with beta (loss -> log 2)."""
    values = ([-10.0, -30.0], [-20.0, -5.0], [-12.0, -31.0], [-18.0, -6.0])
    for beta in (1e-3, 1e-6, 1e-9):
        pw, pl, rw, rl = _leaves(*values)
        out = sigmoid_preference_loss(pw, pl, rw, rl, beta=beta)
        out.loss.backward()
        assert float(pw.grad.abs().max()) <= beta / 2 * 1.01
        assert out.loss.item() == pytest.approx(math.log(2), abs=beta * 10)


def test_no_pair_is_zero_loss():
    empty = torch.zeros(0, requires_grad=True)
    out = sigmoid_preference_loss(empty, empty, empty, empty, beta=0.1)
    assert out.loss.item() == 0.0 and all(float(v) == 0.0 for v in out.metrics.values())


def test_trajectory_logprobs_sums_each_trajectorys_valid_tokens():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, float("nan")], [-3.0, -4.0], [-0.25, -0.25]], requires_grad=True)
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [1, 1]])
    seq = torch.tensor([0, 0, 2, 0])
    out = trajectory_logprobs(logp, mask, seq, 4)
    # by hand: trajectory 0 = -1 - 2 - 0.5 - 0.25 - 0.25 = -4.0; 1 has no row; 2 = -7
    torch.testing.assert_close(out, torch.tensor([-4.0, 0.0, -7.0, 0.0]))
    out.sum().backward()
    torch.testing.assert_close(logp.grad, mask.float())  # the NaN at the invalid token is never read


def test_bad_arguments_and_registry():
    one = torch.zeros(1)
    with pytest.raises(ValueError, match="beta must be > 0"):
        sigmoid_preference_loss(one, one, one, one, beta=0.0)
    with pytest.raises(ValueError, match=r"must all be \[P\]"):
        sigmoid_preference_loss(one, torch.zeros(2), one, one, beta=0.1)
    with pytest.raises(ValueError, match="seq_index must be int64"):
        trajectory_logprobs(torch.zeros(2, 7), torch.ones(2, 7), torch.zeros(2, dtype=torch.int32), 1)
    assert get_preference_loss("sigmoid") is sigmoid_preference_loss and "sigmoid" in PREFERENCE_LOSSES
    with pytest.raises(ValueError, match="unknown preference loss 'ipo'; known: sigmoid"):
        get_preference_loss("ipo")
