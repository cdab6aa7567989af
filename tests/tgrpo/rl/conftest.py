"""A small untrained tiny-VLA checkpoint (state variant, 64-dim state) the RL and preference tests start from."""

from pathlib import Path

import pytest
import torch

from tgrpo.policies import action_tokenizer as at
from tgrpo.policies.tiny import TinyConfig, TinyPolicy, TinyVLA


@pytest.fixture(scope="module")
def init_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = TinyConfig(state_dim=64, d_model=32, n_layers=1, words=["pick", "up", "alphabet", "soup", "basket"])
    path = tmp_path_factory.mktemp("sft") / "best"
    TinyPolicy(TinyVLA(cfg), cfg, at.NormStats((-1.0,) * 6 + (0.0,), (1.0,) * 6 + (1.0,))).save(path)
    return path
