"""SFT on a hand-made dataset: it learns, splits whole demos, and a resumed run equals an uninterrupted one."""

import json
import math

import numpy as np
import pytest

from baselines.sft import train as train_module
from baselines.sft.config import SFTConfig, for_profile
from baselines.sft.train import SFTData, learning_rate, split_by_demo, train

# Two instructions, each always paired with one fixed action: the ideal policy is exact.
ACTIONS = {"open the drawer": [0.4, -0.2, 0.0, 0.1, 0.0, -0.3, -1.0],
           "close the drawer": [-0.4, 0.2, 0.3, 0.0, -0.1, 0.3, 1.0]}


def _data(demos: int = 12, steps: int = 10) -> SFTData:
    rng = np.random.default_rng(0)
    instr = [list(ACTIONS)[d % 2] for d in range(demos) for _ in range(steps)]
    actions = np.array([ACTIONS[i] for i in instr])
    state = rng.normal(size=(len(instr), 6)).astype(np.float32)
    return SFTData(state, None, None, instr, actions, np.repeat(np.arange(demos), steps))


def _cfg(tmp_path, **kw) -> SFTConfig:
    base = {"suite": "libero_goal", "demos_dir": tmp_path, "out_dir": tmp_path / "out", "epochs": 12,
            "batch_size": 16, "lr": 3e-3, "torch_threads": 1, "model": {"d_model": 32, "n_layers": 1}}
    return SFTConfig(**{**base, **kw})


def test_split_keeps_demos_whole():
    data = _data()
    train_idx, val_idx = split_by_demo(data, 0.25, seed=0)
    assert set(data.demo[train_idx]).isdisjoint(data.demo[val_idx])
    assert len(set(data.demo[val_idx])) == 3 and len(train_idx) + len(val_idx) == len(data)


def test_sft_learns_the_actions(tmp_path):
    history_first = train(_cfg(tmp_path, epochs=1, lr=1e-4), _data(), progress=False)
    assert history_first["val_loss"] == pytest.approx(math.log(256), abs=0.6)  # near uniform at the start
    final = train(_cfg(tmp_path / "b", epochs=24), _data(), progress=False)
    assert final["val_loss"] < 1.0 and final["val_token_accuracy"] > 0.9
    assert (tmp_path / "b" / "out" / "best" / "policy.json").exists()


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    full = train(_cfg(tmp_path / "full", epochs=3), _data(), progress=False)
    real, calls = train_module.evaluate_loss, []

    def killed_in_epoch_3(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run dies after epoch 2's checkpoint
        return real(*args)

    monkeypatch.setattr(train_module, "evaluate_loss", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path / "cut", epochs=3), _data(), progress=False)
    monkeypatch.setattr(train_module, "evaluate_loss", real)
    resumed = train(_cfg(tmp_path / "cut", epochs=3), _data(), progress=False)
    assert resumed == full
    history = json.loads((tmp_path / "cut" / "out" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_extending_a_constant_schedule_run_equals_a_longer_run(tmp_path):
    full = train(_cfg(tmp_path / "full", epochs=3, lr_schedule="constant"), _data(), progress=False)
    train(_cfg(tmp_path / "cut", epochs=2, lr_schedule="constant"), _data(), progress=False)
    assert train(_cfg(tmp_path / "cut", epochs=3, lr_schedule="constant"), _data(), progress=False) == full


def test_learning_rate_schedules(tmp_path):
    cosine, constant = _cfg(tmp_path, lr=0.2), _cfg(tmp_path, lr=0.2, lr_schedule="constant")
    assert [learning_rate(cosine, s, 100) for s in (0, 50, 100)] == pytest.approx([0.2, 0.1, 0.0])
    assert learning_rate(cosine, 25, 100) == pytest.approx(0.1 * (1 + math.sqrt(0.5)))
    assert {learning_rate(constant, s, 100) for s in (0, 50, 100)} == {0.2}
    with pytest.raises(ValueError, match="lr_schedule"):
        _cfg(tmp_path, lr_schedule="linear")


def test_profiles_and_validation(tmp_path):
    smoke = for_profile("smoke", suite="libero_object", demos_dir=tmp_path, out_dir=tmp_path)
    assert smoke.epochs == 1 and smoke.max_demos_per_task == 2
    with pytest.raises(ValueError, match="smoke, small, paper"):
        SFTConfig(suite="libero_object", demos_dir=tmp_path, out_dir=tmp_path, profile="huge")
