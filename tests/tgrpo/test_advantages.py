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
    assert advantage_names() == ["grpo", "tgrpo", "tgrpo-no-step", "tgrpo-no-traj"]
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
