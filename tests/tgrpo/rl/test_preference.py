"""Preference training (DPO, GRAPE): the micro-batched gradient is the loss's exact gradient, identical pairs move
nothing, a GRAPE round on the real simulator matches the core functions from training placements only, and both
methods run end to end at the smoke profile through `tgrpo-bench train` and `run_rl`."""

import json
import math

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.runs import run_rl
from tgrpo.envs.libero_env import official_init_states
from tgrpo.envs.workers import WorkerPool
from tgrpo.policies.tiny import TinyPolicy
from tgrpo.preference_losses import sigmoid_preference_loss, trajectory_logprobs
from tgrpo.rl.config import for_profile
from tgrpo.rl.loop import read_metrics
from tgrpo.rl.preference import PreferenceTrainer, TrajectoryRows, pair_rows, preference_backward

INSTRUCTION = "pick up the alphabet soup and place it in the basket"


def _cfg(init, out, method="grape", **kw):
    return for_profile("smoke", method=method, suite="libero_object", task_id=0, init_checkpoint=init, out_dir=out,
                       **kw)


def _adapted_policy(init) -> TinyPolicy:
    policy = TinyPolicy.load(init)
    torch.manual_seed(1)
    policy.add_adapters(4, 8)
    with torch.no_grad():  # LoRA's B starts at 0; give it values so that every adapter matrix has a gradient
        for p in policy.trainable_parameters():
            p.add_(0.05 * torch.randn_like(p))
    return policy


def _rows(seq: list[int], seed: int = 0) -> TrajectoryRows:
    rng = np.random.default_rng(seed)
    n = len(seq)
    tokens = torch.from_numpy(rng.integers(31744, 32000, size=(n, 7)))
    obs = {"state": rng.normal(size=(n, 64)).astype(np.float32)}
    return TrajectoryRows(obs, [INSTRUCTION] * n, tokens, torch.tensor(seq), max(seq) + 1)


def _grads(policy) -> list[torch.Tensor]:
    out = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in policy.trainable_parameters()]
    for p in policy.trainable_parameters():
        p.grad = None
    return out


@pytest.mark.parametrize("micro", [None, 1, 3])
def test_micro_batched_gradient_is_the_losss_gradient(init_checkpoint, tmp_path, micro):
    """Two pairs (sequences 0 > 1, 2 > 3) of 2-4 rows; the direct autograd of the loss of the summed log-probs."""
    policy = _adapted_policy(init_checkpoint)
    rows = _rows([0, 0, 1, 2, 1, 3, 3, 2, 0, 1, 1])
    ref = torch.tensor([-300.0, -310.0, -295.0, -290.0])
    cfg = _cfg(init_checkpoint, tmp_path, method="dpo", beta=0.05, micro_batch_rows=micro)
    metrics = preference_backward(policy, rows, ref, cfg)
    got = _grads(policy)
    logp = trajectory_logprobs(policy.token_logprobs(rows.obs, rows.instructions, rows.tokens), rows.mask,
                               rows.seq_index, 4)
    expected = sigmoid_preference_loss(logp[0::2], logp[1::2], ref[0::2], ref[1::2], beta=0.05)
    expected.loss.backward()
    assert metrics["loss"] == pytest.approx(expected.loss.item(), rel=1e-5)
    for a, b in zip(got, _grads(policy), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    assert max(float(g.abs().max()) for g in got) > 0


def _pair_of(first: TrajectoryRows, second: TrajectoryRows) -> TrajectoryRows:
    return TrajectoryRows({"state": np.concatenate([first.obs["state"], second.obs["state"]])},
                          first.instructions + second.instructions, torch.cat([first.tokens, second.tokens]),
                          torch.tensor([0] * len(first.tokens) + [1] * len(second.tokens)), 2)


def test_identical_chosen_and_rejected_and_beta_to_zero_move_nothing(init_checkpoint, tmp_path):
    """Identical trajectories: the two sequences' gradients cancel, up to float32 rounding (a millionth of a real
    pair's). beta -> 0: the gradient shrinks with beta. (Pairing never pairs equal trajectories: equal outcomes and
    equal costs give no pair, tests/tgrpo/rl/test_pairs.py.)"""
    policy = _adapted_policy(init_checkpoint)
    one, other = _rows([0, 0, 0], seed=0), _rows([0, 0, 0], seed=1)
    ref = torch.tensor([-50.0, -50.0])
    preference_backward(policy, _pair_of(one, other), ref, _cfg(init_checkpoint, tmp_path))
    real = max(float(g.abs().max()) for g in _grads(policy))
    metrics = preference_backward(policy, _pair_of(one, one), ref, _cfg(init_checkpoint, tmp_path))
    assert metrics["loss"] == pytest.approx(math.log(2)) and metrics["reward_margin"] == 0.0
    assert max(float(g.abs().max()) for g in _grads(policy)) <= 1e-5 * real
    preference_backward(policy, _pair_of(one, other), ref, _cfg(init_checkpoint, tmp_path, beta=1e-6))
    tiny = max(float(g.abs().max()) for g in _grads(policy))
    assert 0 < tiny <= 1e-4 * real  # beta 0.1 -> 1e-6 scales it by 1e-5 (sigmoid(-margin) is about 1/2 in both)


@pytest.mark.libero
def test_grape_round_on_the_simulator_matches_the_core_functions(init_checkpoint, tmp_path):
    cfg = _cfg(init_checkpoint, tmp_path, max_steps=8, pairs_per_batch=8)
    trainer = PreferenceTrainer(cfg, TinyPolicy.load(init_checkpoint))
    with WorkerPool(2) as pool:
        group = trainer.collect_group(pool, seed=11)
    official = official_init_states("libero_object", 0)
    assert not any(np.allclose(group.start.state, s) for s in official)  # a training placement
    assert group.rollout.length.tolist() == [8, 8] and group.cost is not None
    (chosen, rejected), = group.pairs  # two trajectories, different costs: one pair, the cheaper one chosen
    assert group.cost[chosen] < group.cost[rejected]
    rows = pair_rows([(group, chosen, rejected)])
    with torch.no_grad():
        logp = trainer.policy.token_logprobs(rows.obs, rows.instructions, rows.tokens).sum(-1)
        with trainer.policy.reference():
            ref = trainer.policy.token_logprobs(rows.obs, rows.instructions, rows.tokens).sum(-1)
    lw, ll, rw, rl = (float(x[rows.seq_index == k].sum()) for x, k in ((logp, 0), (logp, 1), (ref, 0), (ref, 1)))
    assert lw == pytest.approx(float(group.rollout.logprobs[chosen].sum()), abs=1e-3)  # the rollout's own log-probs
    margin = 0.1 * ((lw - rw) - (ll - rl))  # 0 before the first update: the adapters start as the identity
    losses = trainer.learn_pairs([(group, chosen, rejected)], np.random.default_rng(0))
    assert losses["loss"] == pytest.approx(math.log(1 + math.exp(-margin)), abs=1e-6)
    assert losses["grad_norm"] > 0


@pytest.mark.libero
def test_dpo_smoke_run_through_the_cli(init_checkpoint, tmp_path):
    """An untrained policy never succeeds in 20 steps: DPO finds no pair, makes no update, and the run still
    trains and exports (the evaluation after training: the GRAPE run below)."""
    out = tmp_path / "dpo"
    code = main(["train", "--method", "dpo", "--suite", "object", "--task", "0", "--profile", "smoke",
                 "--init-checkpoint", str(init_checkpoint), "--out", str(out), "--no-progress", "--no-eval"])
    assert code == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["pairs/count"] == 0 and rows[0]["rollout/success_rate"] == 0.0
    assert not any(k.startswith("loss/") for k in rows[0])
    assert json.loads((out / "config.json").read_text())["stop_rule"] == "independent"
    assert (out / "policy" / "policy.json").is_file() and not (out / "eval").exists()


@pytest.mark.libero
def test_grape_smoke_run_end_to_end(init_checkpoint, tmp_path):
    cfg = _cfg(init_checkpoint, tmp_path / "grape", eval_episodes=1)
    record = run_rl(cfg, progress=False)
    assert [r["iteration"] for r in record.metrics] == [1, 2]  # two rounds, re-collected with the updated policy
    assert [r["train_seed"] for r in record.metrics] == [1_000_000, 1_000_001]
    assert all(r["pairs/count"] == 1 and r["loss/grad_norm"] > 0 for r in record.metrics)
    assert record.eval is not None and record.eval.summary["suites"]
    sft = TinyPolicy.load(init_checkpoint)
    trained = TinyPolicy.load(record.policy_dir)
    obs = {"state": np.random.default_rng(0).normal(size=(2, 64)).astype(np.float32)}
    tokens = torch.from_numpy(sft.act(obs, [INSTRUCTION] * 2, [0, 1], mode="greedy").tokens)
    with torch.no_grad():
        moved = trained.token_logprobs(obs, [INSTRUCTION] * 2, tokens) - sft.token_logprobs(obs, [INSTRUCTION] * 2,
                                                                                             tokens)
    assert float(moved.abs().max()) > 0  # the preference updates reached the exported policy


@pytest.mark.libero
def test_a_resumed_grape_run_equals_an_uninterrupted_one(init_checkpoint, tmp_path):
    """Killed after its first round and rerun, a run gives the same metrics and weights as one run straight
    through (placements, sampling and minibatch order are seeded per round; the optimizer state is checkpointed)."""
    def trainer(out, rounds=2):
        cfg = _cfg(init_checkpoint, out, rounds=rounds, max_steps=8, eval_episodes=0, lr=1e-3)
        return PreferenceTrainer(cfg, TinyPolicy.load(init_checkpoint))

    full = trainer(tmp_path / "full")
    full.run(progress=False)
    trainer(tmp_path / "cut", rounds=1).run(progress=False)
    resumed = trainer(tmp_path / "cut")
    assert resumed.iteration == 1
    resumed.run(progress=False)
    assert read_metrics(tmp_path / "cut") == read_metrics(tmp_path / "full")
    for (name, a), (_, b) in zip(full.policy.model.state_dict().items(), resumed.policy.model.state_dict().items(),
                                 strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
