"""Shared fixtures of the RL loop tests."""

from pathlib import Path

import pytest
import torch

from tgrpo.policies import action_tokenizer as at
from tgrpo.policies.tiny import TinyConfig, TinyPolicy, TinyVLA


@pytest.fixture(scope="module")
def init_checkpoint(tmp_path_factory) -> Path:
    """An untrained small tiny state policy (seeded), saved as the SFT checkpoint RL starts from."""
    torch.manual_seed(0)
    cfg = TinyConfig(state_dim=64, d_model=32, n_layers=1, words=["pick", "up", "alphabet", "soup", "basket"])
    path = tmp_path_factory.mktemp("sft") / "best"
    TinyPolicy(TinyVLA(cfg), cfg, at.NormStats((-1.0,) * 6 + (0.0,), (1.0,) * 6 + (1.0,))).save(path)
    return path
