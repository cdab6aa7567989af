"""tgrpo.advantages against the paper's equations transcribed as loops (bench.profiling.reference)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.profiling.reference import loop_advantage
from tgrpo.advantages import (
    AdvantageConfig,
    advantage_names,
    compute_advantage,
    get_advantage_fn,
    normalise_advantage,
    step_advantage,
    tgrpo_advantage,
    trajectory_advantage,
)

# Ties are frequent on purpose: sparse and stage rewards repeat values across trajectories.
VALUES = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0]),
    st.floats(-100, 100, allow_nan=False, allow_subnormal=False),
)


@st.composite
def reward_batches(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor | None]:
    lead = draw(st.sampled_from([(), (2,), (2, 1)]))
    n_traj, n_steps = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    shape = (*lead, n_traj, n_steps)
    size = math.prod(shape)
    rewards = torch.tensor(draw(st.lists(VALUES, min_size=size, max_size=size)), dtype=torch.float64)
    mask = None
    if draw(st.booleans()):
        mask = torch.tensor(draw(st.lists(st.booleans(), min_size=size, max_size=size))).reshape(shape)
    return rewards.reshape(shape), mask


@settings(max_examples=60, deadline=None)
@given(
    batch=reward_batches(),
    weights=st.sampled_from([(0.3, 0.7), (1.0, 0.0), (0.0, 1.0), (0.5, 2.0)]),
    unbiased=st.booleans(),
)
def test_matches_loop_reference(
    batch: tuple[torch.Tensor, torch.Tensor | None], weights, unbiased: bool
) -> None:
    rewards, mask = batch
    a1, a2 = weights
    got = tgrpo_advantage(rewards, a1, a2, mask=mask, unbiased=unbiased)
    want = loop_advantage(rewards, a1, a2, mask=mask, ddof=1 if unbiased else 0)
    assert got.shape == rewards.shape and got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-7)


def test_step_and_trajectory_are_the_two_levels() -> None:
    rewards = torch.tensor([[1.0, 2.0], [2.0, 2.0], [3.0, 5.0]])
    # Step 0: [1, 2, 3] -> mean 2, unbiased std 1. Step 1: [2, 2, 5] -> mean 3, std sqrt(3).
    # Returns: [3, 4, 8] -> mean 5, std sqrt(7).
    eps = 1e-6
    want_step = torch.tensor(
        [
            [-1 / (1 + eps), -1 / (3**0.5 + eps)],
            [0.0, -1 / (3**0.5 + eps)],
            [1 / (1 + eps), 2 / (3**0.5 + eps)],
        ]
    )
    want_traj = torch.tensor([-2.0, -1.0, 3.0])[:, None].expand(3, 2) / (7**0.5 + eps)
    torch.testing.assert_close(step_advantage(rewards), want_step)
    torch.testing.assert_close(trajectory_advantage(rewards), want_traj)
    torch.testing.assert_close(tgrpo_advantage(rewards), 0.3 * want_step + 0.7 * want_traj)


@pytest.mark.parametrize("value", [0.1, 0.0, -7.3, 1e6])
def test_all_equal_gives_exact_zero(value: float) -> None:
    rewards = torch.full((2, 4, 9), value)
    for fn in (step_advantage, trajectory_advantage, tgrpo_advantage):
        assert torch.equal(fn(rewards), torch.zeros_like(rewards))


def test_tied_step_is_zero_while_trajectories_differ() -> None:
    rewards = torch.tensor([[0.1, 0.0, 1.0], [0.1, 1.0, 0.0], [0.1, 1.0, 1.0]])
    a_step = step_advantage(rewards)
    assert torch.equal(a_step[:, 0], torch.zeros(3))
    assert (a_step[:, 1:] != 0).all()
    a_traj = trajectory_advantage(rewards)
    assert a_traj[0, 0] == a_traj[1, 0] and a_traj[2, 0] > 0


def test_group_of_one_is_zero() -> None:
    assert torch.equal(tgrpo_advantage(torch.randn(3, 1, 5)), torch.zeros(3, 1, 5))
    rewards = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    mask = torch.tensor([[True, True], [True, False]])  # step 1 has one valid trajectory
    assert step_advantage(rewards, mask)[0, 1] == 0


def test_two_trajectories() -> None:
    rewards = torch.tensor([[0.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
    a_step = step_advantage(rewards, eps=0.0)
    torch.testing.assert_close(a_step, torch.tensor([[-1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / 2**0.5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_is_an_error(bad: float) -> None:
    rewards = torch.zeros(2, 3, 4)
    rewards[1, 2, 3] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        tgrpo_advantage(rewards)
    mask = torch.ones_like(rewards, dtype=torch.bool)
    mask[1, 2, 3] = False  # padded positions are never read
    assert torch.isfinite(tgrpo_advantage(rewards, mask=mask)).all()


def test_masked_steps_take_no_part() -> None:
    torch.manual_seed(0)
    rewards = torch.randn(3, 4, 6)
    mask = torch.rand(3, 4, 6) > 0.3
    mask[0, 2] = False  # a trajectory with no valid step is not a group member
    got = tgrpo_advantage(rewards, mask=mask)
    assert torch.equal(got[~mask], torch.zeros(int((~mask).sum())))
    scrambled = torch.where(mask, rewards, torch.randn(3, 4, 6) * 1e3)
    torch.testing.assert_close(tgrpo_advantage(scrambled, mask=mask.float()), got, rtol=0, atol=0)
    kept = [0, 1, 3]
    torch.testing.assert_close(got[0, kept], tgrpo_advantage(rewards[0, kept], mask=mask[0, kept]))


def test_leading_dims_are_independent_groups() -> None:
    torch.manual_seed(1)
    rewards = torch.randn(2, 3, 4, 5)
    got = tgrpo_advantage(rewards)
    for idx in [(0, 0), (1, 2)]:
        torch.testing.assert_close(got[idx], tgrpo_advantage(rewards[idx]))


def test_dtypes() -> None:
    assert tgrpo_advantage(torch.randn(4, 3)).dtype == torch.float32
    assert tgrpo_advantage(torch.randn(4, 3, dtype=torch.float64)).dtype == torch.float64
    assert tgrpo_advantage(torch.randn(4, 3).bfloat16()).dtype == torch.float32
    success = torch.tensor([[0, 0, 1], [0, 0, 0], [0, 0, 1], [0, 0, 0]])
    got = compute_advantage(success, config=AdvantageConfig(estimator="grpo"))
    assert got.dtype == torch.float32
    want = loop_advantage(success.double(), 0.0, 1.0)
    torch.testing.assert_close(got, want.float())


def test_float32_matches_float64_reference() -> None:
    torch.manual_seed(2)
    rewards = torch.randint(0, 4, (5, 6, 30)).float() + torch.rand(5, 6, 30).round(decimals=1)
    torch.testing.assert_close(
        tgrpo_advantage(rewards), loop_advantage(rewards.double()).float(), rtol=1e-5, atol=1e-5
    )


def test_registry() -> None:
    assert advantage_names() == ["gae", "grpo", "tgrpo", "tgrpo-no-step", "tgrpo-no-traj"]
    torch.manual_seed(3)
    rewards = torch.randn(2, 4, 7)
    a_step, a_traj = step_advantage(rewards), trajectory_advantage(rewards)
    cases = {
        "tgrpo": 0.3 * a_step + 0.7 * a_traj,
        "grpo": a_traj,
        "tgrpo-no-step": 0.7 * a_traj,
        "tgrpo-no-traj": 0.3 * a_step,
    }
    for name, want in cases.items():
        torch.testing.assert_close(compute_advantage(rewards, config=AdvantageConfig(estimator=name)), want)
        torch.testing.assert_close(get_advantage_fn(name)(rewards, None, AdvantageConfig()), want)
    with pytest.raises(ValueError, match="unknown advantage estimator"):
        get_advantage_fn("ppo")


@pytest.mark.parametrize(
    "kwargs",
    [{"eps": -1.0}, {"a1": math.nan}, {"a1": 0.0, "a2": 0.0}, {"estimator": "nope"}, {"a2": -0.5}],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AdvantageConfig(**kwargs)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"\[\.\.\., N, M\]"):
        tgrpo_advantage(torch.zeros(5))
    with pytest.raises(ValueError, match="mask shape"):
        tgrpo_advantage(torch.zeros(2, 5), mask=torch.ones(5, 2))
    with pytest.raises(ValueError, match="backend"):
        tgrpo_advantage(torch.zeros(2, 5), backend="cuda")  # type: ignore[arg-type]


# ---------------------------------------------------------------- GAE


def loop_gae(rewards: list[float], values: list[float], length: int, gamma: float, lam: float) -> list[float]:
    """GAE of one trajectory as the sum it is defined by (Schulman et al. 2016, Eq. 16), not the recursion:
    A_t = sum_{l = 0}^{L - 1 - t} (gamma * lam)^l * delta_{t + l}, delta_t = r_t + gamma * V_{t + 1} - V_t,
    over its first `length` steps; later steps 0."""
    delta = [rewards[t] + gamma * values[t + 1] - values[t] for t in range(length)]
    out = [sum((gamma * lam) ** k * delta[t + k] for k in range(length - t)) for t in range(length)]
    return out + [0.0] * (len(rewards) - length)


def _gae(rewards, values, mask=None, gamma=0.99, lam=0.95) -> torch.Tensor:
    return compute_advantage(torch.tensor(rewards, dtype=torch.float64),
                             None if mask is None else torch.tensor(mask),
                             AdvantageConfig(estimator="gae", gamma=gamma, lam=lam),
                             values=torch.tensor(values, dtype=torch.float64))


def test_gae_hand_computed_with_a_terminal_and_a_cut_trajectory() -> None:
    # gamma 0.9, lam 0.8 (gamma * lam = 0.72). Trajectory 0 was cut (group stop): V_3 = 3 bootstraps.
    #   delta = [1 + 0.9 * 0.2 - 0.5, 0 + 0.9 * 0.1 - 0.2, 2 + 0.9 * 3 - 0.1] = [0.68, -0.11, 4.6]
    #   A_2 = 4.6, A_1 = -0.11 + 0.72 * 4.6 = 3.202, A_0 = 0.68 + 0.72 * 3.202 = 2.98544
    # Trajectory 1 succeeded at its last step: the caller put 0 at V_3 (terminal).
    #   delta = [0 + 0.9 * 1 - 1, 1 + 0.9 * 2 - 1, 2 + 0 - 2] = [-0.1, 1.8, 0]
    #   A_2 = 0, A_1 = 1.8, A_0 = -0.1 + 0.72 * 1.8 = 1.196
    out = _gae([[1.0, 0.0, 2.0], [0.0, 1.0, 2.0]], [[0.5, 0.2, 0.1, 3.0], [1.0, 1.0, 2.0, 0.0]], gamma=0.9, lam=0.8)
    torch.testing.assert_close(out, torch.tensor([[2.98544, 3.202, 4.6], [1.196, 1.8, 0.0]], dtype=torch.float64))


def test_gae_lambda_one_is_the_discounted_return_minus_the_value() -> None:
    # R_t = r_t + 0.5 r_{t+1} + 0.25 r_{t+2} + 0.125 V_3: R_2 = 3 + 0.5 * 4 = 5, R_1 = 2 + 0.5 * 5 = 4.5,
    # R_0 = 1 + 0.5 * 4.5 = 3.25; minus V = [1, 1, 1].
    out = _gae([[1.0, 2.0, 3.0]], [[1.0, 1.0, 1.0, 4.0]], gamma=0.5, lam=1.0)
    torch.testing.assert_close(out, torch.tensor([[2.25, 3.5, 4.0]], dtype=torch.float64))
    terminal = _gae([[1.0, 2.0, 3.0]], [[1.0, 1.0, 1.0, 0.0]], gamma=0.5, lam=1.0)  # Monte-Carlo: 2.75, 3.5, 3
    torch.testing.assert_close(terminal, torch.tensor([[1.75, 2.5, 2.0]], dtype=torch.float64))


def test_gae_lambda_zero_is_the_td_error() -> None:
    # delta_t = r_t + 0.5 V_{t+1} - V_t: 1 + 1 - 3 = -1, 2 + 0.5 - 2 = 0.5, 3 + 2 - 1 = 4
    out = _gae([[1.0, 2.0, 3.0]], [[3.0, 2.0, 1.0, 4.0]], gamma=0.5, lam=0.0)
    torch.testing.assert_close(out, torch.tensor([[-1.0, 0.5, 4.0]], dtype=torch.float64))


def test_gae_masks_end_the_trace_and_bootstrap_from_the_next_state() -> None:
    # Trajectory 1 has 2 valid steps: V_2 = 5 is its bootstrap; its padded step (NaN reward, NaN V_3) is never read.
    rewards = [[1.0, 1.0, 1.0], [1.0, 1.0, math.nan]]
    values = [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 5.0, math.nan]]
    out = _gae(rewards, values, [[True, True, True], [True, True, False]], gamma=0.5, lam=1.0)
    # traj 0: returns 1.75, 1.5, 1; traj 1: 1 + 0.5 * 5 = 3.5, 1 + 0.5 * 3.5 = 2.75, then 0
    torch.testing.assert_close(out, torch.tensor([[1.75, 1.5, 1.0], [2.75, 3.5, 0.0]], dtype=torch.float64))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_gae_matches_its_defining_sum(data: st.DataObject) -> None:
    lead = data.draw(st.sampled_from([(), (2,)]))
    n, m = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 7))
    gamma, lam = data.draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0])), data.draw(st.sampled_from([0.0, 0.95, 1.0]))
    floats = st.floats(-10, 10, allow_nan=False, allow_subnormal=False)
    size = math.prod((*lead, n))
    lengths = data.draw(st.lists(st.integers(0, m), min_size=size, max_size=size))
    rewards = data.draw(st.lists(floats, min_size=size * m, max_size=size * m))
    values = data.draw(st.lists(floats, min_size=size * (m + 1), max_size=size * (m + 1)))
    r = torch.tensor(rewards, dtype=torch.float64).view(size, m)
    v = torch.tensor(values, dtype=torch.float64).view(size, m + 1)
    mask = torch.tensor([[t < length for t in range(m)] for length in lengths])
    want = torch.tensor([loop_gae(r[i].tolist(), v[i].tolist(), lengths[i], gamma, lam) for i in range(size)],
                        dtype=torch.float64)
    got = compute_advantage(r.view(*lead, n, m), mask.view(*lead, n, m),
                            AdvantageConfig(estimator="gae", gamma=gamma, lam=lam), values=v.view(*lead, n, m + 1))
    torch.testing.assert_close(got.reshape(size, m), want, rtol=1e-9, atol=1e-9)


def test_gae_refuses_missing_or_bad_values() -> None:
    rewards = torch.zeros(2, 3)
    config = AdvantageConfig(estimator="gae")
    with pytest.raises(ValueError, match=r"gae needs values \[..., N, M \+ 1\]"):
        compute_advantage(rewards, None, config)
    with pytest.raises(ValueError, match="gae needs values"):
        compute_advantage(rewards, None, config, values=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        compute_advantage(rewards, None, config, values=torch.tensor([[0.0, 0, 0, math.inf], [0, 0, 0, 0]]))
    for bad in ({"gamma": 1.5}, {"lam": -0.1}):
        with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
            AdvantageConfig(**bad)


def test_advantage_normalisation_over_the_group_valid_steps() -> None:
    adv = torch.tensor([[1.0, 2.0, 3.0], [5.0, math.nan, math.nan]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    # valid values 1, 2, 3, 5: mean 2.75, unbiased std sqrt((3.0625 + 0.5625 + 0.0625 + 5.0625) / 3) = sqrt(35/12)
    std = math.sqrt(35 / 12)
    want = torch.tensor([[(1 - 2.75) / (std + 1e-6), (2 - 2.75) / (std + 1e-6), (3 - 2.75) / (std + 1e-6)],
                         [(5 - 2.75) / (std + 1e-6), 0.0, 0.0]])
    torch.testing.assert_close(normalise_advantage(adv, mask, "group"), want)
    torch.testing.assert_close(normalise_advantage(adv, mask, "none"), torch.tensor([[1.0, 2, 3], [5, 0, 0]]))
    assert not normalise_advantage(torch.full((2, 3), 4.0), None, "group").any()  # all equal: exactly 0
    with pytest.raises(ValueError, match="unknown advantage normalisation"):
        normalise_advantage(adv, mask, "batch")
