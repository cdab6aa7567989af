"""PPO's critic (tgrpo.rl.critic) without the simulator: running statistics against numpy, terminal states, that
its updates fit a group's returns, and its config's validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tgrpo.envs.rollout import GroupRollout
from tgrpo.rl.critic import Critic, PPOConfig, RunningNorm, explained_variance


def _rollout(privileged: np.ndarray, done: np.ndarray, mask: np.ndarray) -> GroupRollout:
    """A group as the rollout layer returns it; only privileged, done and mask are read by the critic."""
    n, m = done.shape
    return GroupRollout(obs={}, actions=np.zeros((n, m, 7)), tokens=None, logprobs=None, privileged=privileged,
                        done=done, mask=mask, success=done.any(1), length=mask.sum(1), errors=[None] * n,
                        sim_warnings=[{}] * n, instruction="pick up the soup")


def test_running_norm_matches_numpy_over_all_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(k, 4)) for k in (5, 1, 17, 9)]
    batches[0][:, 3] = 1.5  # a constant dimension: std floored
    norm = RunningNorm(4, floor=0.01)
    for b in batches:
        norm.update(torch.from_numpy(b))
    seen = np.concatenate(batches)
    np.testing.assert_allclose(norm.mean.numpy(), seen.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), seen.var(0), rtol=1e-10)
    x = rng.normal(size=(3, 4))
    want = (x - seen.mean(0)) / np.maximum(seen.std(0), 0.01)
    np.testing.assert_allclose(norm.normalise(torch.from_numpy(x)).numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(norm.denormalise(norm.normalise(torch.from_numpy(x))).numpy(), x, rtol=1e-5)


def test_values_are_zero_after_a_success_step_and_bootstrap_otherwise():
    rng = np.random.default_rng(1)
    privileged = rng.normal(size=(2, 4, 5))  # N = 2, M = 3
    done = np.array([[False, True, False], [False, False, False]])  # trajectory 0 succeeded at step 1
    mask = np.array([[True, True, False], [True, True, True]])
    torch.manual_seed(0)
    critic = Critic(PPOConfig(), "clip-mse")
    values = critic.values(_rollout(privileged, done, mask))
    raw = critic.model.value(torch.from_numpy(privileged).flatten(0, 1)).view(2, 4)
    assert values[0, 2] == 0.0 and raw[0, 2] != 0.0  # the state after the success step is terminal
    keep = torch.ones(2, 4, dtype=torch.bool)
    keep[0, 2] = False
    torch.testing.assert_close(values[keep], raw[keep])  # every other state, the bootstrap V[1, 3] included


def test_updates_fit_the_returns_of_a_group():
    """Returns that are a smooth function of the state: the critic's explained variance on a fresh group rises
    from about 0 to near 1 over repeated updates (it learns, and the metric reports it)."""
    rng = np.random.default_rng(2)
    torch.manual_seed(0)
    critic = Critic(PPOConfig(value_clip=None), "clip-mse")

    def group():
        privileged = rng.uniform(-1, 1, size=(4, 31, 6)) * 0.1 + 1.0  # around 1 m, centimetre spread: as LIBERO's
        rollout = _rollout(privileged, np.zeros((4, 30), bool), np.ones((4, 30), bool))
        returns = torch.from_numpy(20 + 50 * (privileged[:, :-1, 0] - 1.0) - 30 * (privileged[:, :-1, 1] - 1.0) ** 2)
        return {"rollout": rollout, "values": critic.values(rollout)[:, :-1], "returns": returns.float()}

    first = critic.update(group(), 4, 4, 1.0, np.random.default_rng(0))["explained_variance"]
    for _ in range(5):
        last = critic.update(group(), 4, 4, 1.0, np.random.default_rng(0))
    assert first < 0.2 and last["explained_variance"] > 0.9, (first, last)
    assert last["value_clip_frac"] == 0.0  # value_clip None: the plain squared error


def test_explained_variance():
    r = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(r, r) == 1.0
    assert explained_variance(torch.full((4,), 2.5), r) == 0.0  # the mean return
    assert explained_variance(r - 1.0, r) == 1.0  # a constant offset is not variance
    assert math.isnan(explained_variance(r, torch.ones(4)))


@pytest.mark.parametrize("bad", [{"gamma": 1.1}, {"lam": -0.5}, {"advantage_norm": "batch"}, {"value_clip": 0.0},
                                 {"warmup_iterations": -1}, {"lr": 0.0}, {"hidden": 0}])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        PPOConfig(**bad)
