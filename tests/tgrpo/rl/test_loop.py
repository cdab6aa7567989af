"""The online RL loop on the real simulator (smoke scale): it matches the core functions, resumes exactly, and a
group of equal trajectories moves nothing."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from tgrpo.envs.workers import WorkerPool
from tgrpo.losses import policy_loss
from tgrpo.policies.tiny import TinyPolicy
from tgrpo.rl.batch import flatten_steps
from tgrpo.rl.config import for_profile
from tgrpo.rl.loop import Trainer, read_metrics, reference_logprobs

pytestmark = pytest.mark.libero


def _trainer(cfg) -> Trainer:
    return Trainer(cfg, TinyPolicy.load(cfg.init_checkpoint, seed=cfg.seed))


def _cfg(init, out, method="tgrpo", **kw):
    settings = {"group_size": 2, "max_steps": 8, "lr": 1e-3, **kw}
    return for_profile("smoke", method=method, suite="libero_object", task_id=0, init_checkpoint=init,
                       out_dir=out, **settings)


def _paper_advantage(rewards: np.ndarray, a1: float, a2: float) -> np.ndarray:
    """The paper's Eq. 2-4 (docs/algorithm.md) as loops: z-scores with 1/(N-1) std plus the configured eps 1e-6;
    an all-equal group gives 0."""
    eps = 1e-6
    n, m = rewards.shape
    out = np.zeros((n, m))
    returns = rewards.sum(axis=1)
    mu_s, sd_s = returns.mean(), math.sqrt(sum((s - returns.mean()) ** 2 for s in returns) / (n - 1))
    for t in range(m):
        col = rewards[:, t]
        mu, sd = col.mean(), math.sqrt(sum((r - col.mean()) ** 2 for r in col) / (n - 1))
        for i in range(n):
            step = 0.0 if sd == 0 else (col[i] - mu) / (sd + eps)
            traj = 0.0 if sd_s == 0 else (returns[i] - mu_s) / (sd_s + eps)
            out[i, t] = a1 * step + a2 * traj
    return out


def test_one_iteration_matches_the_core_functions(init_checkpoint, tmp_path):
    trainer = _trainer(_cfg(init_checkpoint, tmp_path))
    with WorkerPool(2) as pool:
        group = trainer.collect(pool, seed=7)
    rollout = group["rollout"]
    assert rollout.length.tolist() == [8, 8] and rollout.tokens.shape == (2, 8, 7)
    np.testing.assert_allclose(group["advantages"].numpy(), _paper_advantage(group["rewards"], 0.3, 0.7), atol=1e-5)
    assert np.abs(group["advantages"].numpy()).max() > 0.1  # dense rewards differ between the trajectories
    rows = flatten_steps(rollout, group["advantages"], trainer.cfg.loss)
    with torch.no_grad():
        logp = trainer.policy.token_logprobs(rows.obs, rows.instructions, rows.tokens)
        expected = policy_loss(logp, rows.old_logp, reference_logprobs(trainer.policy, rows),
                               rows.advantages, torch.ones_like(logp, dtype=torch.bool), rows.seq_index,
                               clip_eps=0.2, beta=0.04, ratio="action", aggregation="seq-mean-token-mean")
    np.testing.assert_allclose(logp.numpy(), rows.old_logp.numpy(), atol=1e-5)  # on-policy: ratio 1
    losses = trainer.learn(group, seed=7)
    assert losses["loss/loss"] == pytest.approx(float(expected.loss), abs=1e-6)
    assert losses["loss/grad_norm"] > 0


@pytest.mark.parametrize("method,a1,a2", [("tgrpo-no-step", 0.0, 0.7), ("tgrpo-no-traj", 0.3, 0.0)])
def test_ablations_run_an_iteration_with_one_weight_zeroed(init_checkpoint, tmp_path, method, a1, a2):
    """The paper's ablations keep the other weight as it is (not renormalised to 1)."""
    trainer = _trainer(_cfg(init_checkpoint, tmp_path, method=method))
    with WorkerPool(2) as pool:
        group = trainer.collect(pool, seed=7)
    np.testing.assert_allclose(group["advantages"].numpy(), _paper_advantage(group["rewards"], a1, a2), atol=1e-5)
    assert trainer.learn(group, seed=7)["loss/grad_norm"] > 0


def test_equal_trajectories_produce_no_policy_update(init_checkpoint, tmp_path):
    # GRPO's sparse reward: an untrained policy never succeeds in 8 steps, so every trajectory scores 0.
    trainer = _trainer(_cfg(init_checkpoint, tmp_path, method="grpo"))
    with WorkerPool(2) as pool:
        group = trainer.collect(pool, seed=3)
    assert not group["rewards"].any() and not group["advantages"].any()
    rows = flatten_steps(group["rollout"], group["advantages"], trainer.cfg.loss)
    before = trainer.policy.token_logprobs(rows.obs, rows.instructions, rows.tokens).detach()
    losses = trainer.learn(group, seed=3)
    assert losses["loss/grad_norm"] == 0.0
    after = trainer.policy.token_logprobs(rows.obs, rows.instructions, rows.tokens).detach()
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_resume_equals_an_uninterrupted_run(init_checkpoint, tmp_path):
    full = _trainer(_cfg(init_checkpoint, tmp_path / "full"))
    full.run(progress=False)
    cut_cfg = _cfg(init_checkpoint, tmp_path / "cut")
    _trainer(replace(cut_cfg, iterations=1)).run(progress=False)  # "killed" after one iteration
    resumed = _trainer(cut_cfg)
    assert resumed.iteration == 1
    resumed.run(progress=False)
    assert read_metrics(tmp_path / "cut") == read_metrics(tmp_path / "full")
    pairs = zip(full.policy.model.state_dict().items(), resumed.policy.model.state_dict().items(), strict=True)
    for (name, a), (_, b) in pairs:
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_methods_and_profiles_validate(init_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="unknown method 'nope'; valid: tgrpo, grpo, tgrpo-no-step, tgrpo-no-traj"):
        _cfg(init_checkpoint, tmp_path, method="nope")
    with pytest.raises(ValueError, match="group_size"):
        _cfg(init_checkpoint, tmp_path, group_size=1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        _cfg(init_checkpoint, tmp_path, lr=0.0)
    cfg = _cfg(init_checkpoint, tmp_path, method="grpo")
    assert cfg.reward_kind == "sparse" and cfg.estimator == "grpo"
    small = {"method": "tgrpo", "suite": "libero_object", "task_id": 0, "init_checkpoint": init_checkpoint,
             "out_dir": tmp_path}
    assert for_profile("small", **small).group_size == 4
    assert for_profile("small", **small).lr == 1e-4  # the profile's default ...
    assert for_profile("small", lr=3e-5, **small).lr == 3e-5  # ... yields to an explicit value (--lr)
    assert for_profile("paper", **small).lr == 1e-5  # the paper's


def test_exported_policy_acts_like_the_trained_one(init_checkpoint, tmp_path):
    """After training, the merged plain checkpoint gives the LoRA policy's log-probs (and differs from the SFT one)."""
    trainer = _trainer(_cfg(init_checkpoint, tmp_path / "run", iterations=1, lr=1e-2))
    trainer.run(progress=False)
    exported = TinyPolicy.load(trainer.export_policy(tmp_path / "policy"))
    obs = {"state": np.random.default_rng(0).normal(size=(3, 64)).astype(np.float32)}
    instr = ["pick up the alphabet soup and place it in the basket"] * 3
    tokens = torch.from_numpy(exported.act(obs, instr, [0, 1, 2], mode="sample").tokens)
    with torch.no_grad():
        trained = trainer.policy.token_logprobs(obs, instr, tokens)
        sft = TinyPolicy.load(init_checkpoint).token_logprobs(obs, instr, tokens)
        torch.testing.assert_close(exported.token_logprobs(obs, instr, tokens), trained, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(trained, sft, atol=1e-4)
