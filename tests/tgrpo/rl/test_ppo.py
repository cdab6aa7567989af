"""PPO with a critic on the real simulator (smoke scale): the critic's warm-up leaves the policy bit-identical, a
killed run resumes to the uninterrupted one (critic included), and `tgrpo-bench train --method ppo` runs end to end."""

import json
from dataclasses import replace

import pytest
import torch

from bench.cli import main
from tgrpo.policies.tiny import TinyPolicy
from tgrpo.rl.config import for_profile
from tgrpo.rl.loop import Trainer, read_metrics

pytestmark = pytest.mark.libero


def _cfg(init, out, **kw):
    return for_profile("smoke", method="ppo", suite="libero_object", task_id=0, init_checkpoint=init, out_dir=out,
                       **{"group_size": 2, "max_steps": 8, "lr": 1e-3, **kw})


def _trainer(cfg) -> Trainer:
    return Trainer(cfg, TinyPolicy.load(cfg.init_checkpoint, seed=cfg.seed))


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_warmup_leaves_the_policy_unchanged_and_a_resumed_run_equals_an_uninterrupted_one(init_checkpoint, tmp_path):
    cfg = _cfg(init_checkpoint, tmp_path / "cut")
    assert cfg.ppo.warmup_iterations == 1 and (cfg.epochs, cfg.minibatches) == (4, 4)
    cut = _trainer(replace(cfg, iterations=1))
    before = {k: v.clone() for k, v in cut.policy.trainable_state().items()}
    cut.run(progress=False)  # iteration 1: the critic's warm-up, then "killed"
    assert _states_equal(cut.policy.trainable_state(), before)  # LoRA adapters and base weights bit-identical
    (warmup,) = read_metrics(tmp_path / "cut")
    assert not any(k.startswith("loss/") for k in warmup) and warmup["critic/grad_norm"] > 0

    resumed = _trainer(cfg)
    assert resumed.iteration == 1
    resumed.run(progress=False)  # iteration 2: value and policy updates
    full = _trainer(replace(cfg, out_dir=tmp_path / "full"))
    full.run(progress=False)
    rows = read_metrics(tmp_path / "full")
    assert read_metrics(tmp_path / "cut") == rows
    assert rows[1]["loss/grad_norm"] > 0 and rows[1]["loss/clip_frac"] >= 0
    assert not _states_equal(full.policy.trainable_state(), before)  # the policy moved after the warm-up
    assert _states_equal(full.policy.trainable_state(), resumed.policy.trainable_state())
    assert _states_equal(full.critic.model.state_dict(), resumed.critic.model.state_dict())


def test_train_cli_runs_ppo_end_to_end(init_checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--method", "ppo", "--suite", "object", "--task", "0", "--profile", "smoke",
                 "--init-checkpoint", str(init_checkpoint), "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "ppo" and config["ppo"]["gamma"] == 0.99 and config["epochs"] == 4
    rows = read_metrics(out)
    assert [r["iteration"] for r in rows] == [1, 2] and "loss/kl_mean" in rows[1] and "loss/kl_mean" not in rows[0]
    assert all(-1e9 < r["critic/value_loss"] < 1e9 for r in rows)
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert summary["suites"]["libero_object"]["episodes"] == 2
