"""Micro-batching keeps the paper's aggregation exactly, and the fused loss path equals the plain one.

The reference is the loss of the whole group with its weights derived from the trajectory ids
(`bench.profiling.reference.loop_policy_loss`, the paper's 1/N sum_i 1/|o_i| sum_t written as loops).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.profiling.reference import loop_policy_loss
from tgrpo.losses import LossConfig, aggregation_weights
from tgrpo.policies import action_tokenizer as at
from tgrpo.policies.tiny import TinyConfig, TinyPolicy, TinyVLA
from tgrpo.rl.batch import GroupRows
from tgrpo.rl.config import for_profile
from tgrpo.rl.loop import loss_path, micro_batch_loss

STATS = at.NormStats((-1.0,) * 6 + (0.0,), (1.0,) * 6 + (1.0,))
INSTRUCTION = "pick up the alphabet soup and place it in the basket"


def _policy(vocab_mode: str = "action") -> TinyPolicy:
    torch.manual_seed(0)
    cfg = TinyConfig(state_dim=16, d_model=32, n_layers=1, words=["pick", "up", "soup"], vocab_mode=vocab_mode)
    policy = TinyPolicy(TinyVLA(cfg), cfg, STATS)
    policy.add_adapters(rank=4, alpha=8)
    with torch.no_grad():  # LoRA's B starts at 0: move it so the adapters (the head's too) carry gradient paths
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    return policy


def _group(policy: TinyPolicy, lengths: list[int], loss: LossConfig) -> GroupRows:
    """A group of trajectories of unequal lengths (as rows), sampled from the policy, off-policy old log-probs."""
    rng = np.random.default_rng(1)
    b = sum(lengths)
    obs = {"state": rng.normal(size=(b, 16)).astype(np.float32)}
    out = policy.act(obs, [INSTRUCTION] * b, list(range(b)), mode="sample")
    tokens = torch.from_numpy(out.tokens)
    seq = torch.from_numpy(np.repeat(np.arange(len(lengths)), lengths))
    old = torch.from_numpy(out.logprobs) + 0.2 * torch.from_numpy(rng.normal(size=(b, 7)).astype(np.float32))
    ref = torch.from_numpy(out.logprobs) + 0.1 * torch.from_numpy(rng.normal(size=(b, 7)).astype(np.float32))
    weights = aggregation_weights(torch.ones(b, 7, dtype=torch.bool), seq, loss.ratio, loss.aggregation).float()
    return GroupRows(obs, [INSTRUCTION] * b, tokens, old, torch.from_numpy(rng.normal(size=b).astype(np.float32)),
                     seq, weights, ref)


def _grads(policy: TinyPolicy, rows: GroupRows, cfg, micro: int | None, path: str) -> tuple[float, list]:
    params = policy.trainable_parameters()
    for p in params:
        p.grad = None
    total = 0.0
    for part in rows.split(micro):
        out = micro_batch_loss(policy, part, cfg, path)
        out.loss.backward()
        total += float(out.loss.detach())
    return total, [p.grad.clone() for p in params]


def _cfg(tmp_path, **kw):
    return for_profile("smoke", method="tgrpo", suite="libero_object", task_id=0, init_checkpoint=tmp_path,
                       out_dir=tmp_path, **kw)


@pytest.mark.parametrize("ratio", ["action", "token"])
def test_one_group_in_1_2_and_4_micro_batches_gives_the_paper_gradient(tmp_path, ratio):
    cfg = _cfg(tmp_path, loss=LossConfig(ratio=ratio))
    policy = _policy()
    rows = _group(policy, [3, 5, 2, 6], cfg.loss)  # 16 rows; trajectories straddle the micro-batch edges
    policy.set_training(True)
    logp = policy.token_logprobs(rows.obs, rows.instructions, rows.tokens)
    want, _ = loop_policy_loss(logp.double(), rows.old_logp.double(), rows.ref_logp.double(),
                               rows.advantages.double(), rows.mask, rows.seq_index, cfg.loss)
    want_grads = torch.autograd.grad(want, policy.trainable_parameters())
    for micro in (None, 8, 4):  # 1, 2 and 4 micro-batches
        loss, grads = _grads(policy, rows, cfg, micro, "plain")
        assert loss == pytest.approx(float(want), rel=1e-5, abs=1e-7)
        for got, expected in zip(grads, want_grads, strict=True):
            torch.testing.assert_close(got, expected.float(), rtol=1e-4, atol=1e-6)


def test_minibatch_rows_take_their_share_renormalised(tmp_path):
    cfg = _cfg(tmp_path)
    rows = _group(_policy(), [3, 5], cfg.loss)
    part = rows.take(np.array([0, 1, 2, 3]), renormalise=True)
    # rows 0-2 are trajectory 0 (weight 1/(2*3) each), row 3 of trajectory 1 (1/(2*5)): renormalised by hand
    expected = torch.tensor([1 / 6, 1 / 6, 1 / 6, 1 / 10]) / (3 / 6 + 1 / 10)
    torch.testing.assert_close(part.weights, expected)


@pytest.mark.parametrize("vocab_mode", ["action", "full"])
def test_fused_path_equals_the_plain_path(tmp_path, vocab_mode):
    """The fused pass (hidden states x the head's effective weight, LoRA delta included) gives the plain path's
    loss and gradients, so the CUDA dispatch trains the same model."""
    cfg = _cfg(tmp_path)
    policy = _policy(vocab_mode)
    rows = _group(policy, [4, 4], cfg.loss)
    policy.set_training(True)
    plain_loss, plain = _grads(policy, rows, cfg, 4, "plain")
    fused_loss, fused = _grads(policy, rows, cfg, 4, "fused")
    assert fused_loss == pytest.approx(plain_loss, rel=1e-5)
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    head_params = [n for n, p in policy.model.named_parameters() if p.requires_grad and ".head." in n]
    assert head_params  # the head's adapters were part of what both paths trained


def test_loss_path_dispatch(tmp_path):
    auto = _cfg(tmp_path)
    assert loss_path(auto, torch.device("cuda")) == "fused"
    assert loss_path(auto, torch.device("cpu")) == "plain"
    assert loss_path(replace(auto, loss_path="plain"), torch.device("cuda")) == "plain"
    assert loss_path(replace(auto, loss_path="fused"), torch.device("cpu")) == "fused"
    with pytest.raises(ValueError, match="loss_path"):
        _cfg(tmp_path, loss_path="triton")


def test_rollout_log_probs_are_the_tempered_policy_s_and_the_update_uses_the_same(tmp_path):
    """Sampled at T = 0.5, the reported log-probs are log_softmax(logits / 0.5) (computed here by hand from the
    teacher-forced logits), the update's log-probs at the config's T equal them (ratio 1 on-policy), and the fused
    path divides the head by T the same way."""
    cfg = _cfg(tmp_path, temperature=0.5)
    policy = _policy()
    obs = {"state": np.random.default_rng(3).normal(size=(5, 16)).astype(np.float32)}
    out = policy.act(obs, [INSTRUCTION] * 5, list(range(5)), mode="sample", temperature=0.5)
    tokens = torch.from_numpy(out.tokens)
    with torch.no_grad():
        logits = policy.action_logits(obs, [INSTRUCTION] * 5, tokens).double()
        columns = policy.token_columns(tokens)
        by_hand = (logits / 0.5).log_softmax(-1).gather(2, columns[..., None]).squeeze(2)
        at_t = policy.token_logprobs(obs, [INSTRUCTION] * 5, tokens, temperature=0.5)
        at_1 = policy.token_logprobs(obs, [INSTRUCTION] * 5, tokens)
    np.testing.assert_allclose(out.logprobs, by_hand.numpy(), atol=1e-5)
    np.testing.assert_allclose(at_t.numpy(), out.logprobs, atol=1e-5)
    assert not np.allclose(at_1.numpy(), out.logprobs, atol=1e-3)  # T = 1 would not be the behaviour policy
    rows = _group(policy, [4, 4], cfg.loss)
    policy.set_training(True)
    plain_loss, plain = _grads(policy, rows, cfg, None, "plain")
    fused_loss, fused = _grads(policy, rows, cfg, None, "fused")
    assert fused_loss == pytest.approx(plain_loss, rel=1e-5)
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
