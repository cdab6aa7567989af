"""A second, minimal `TrainablePolicy` (not the tiny VLA) trains through the contract alone: one smoke RL
iteration on the real simulator and one SFT epoch, with no code that knows its class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from baselines.sft.config import SFTConfig
from baselines.sft.train import SFTData, train
from tgrpo.policies import action_tokenizer as at
from tgrpo.policies.base import PolicyOutput
from tgrpo.policies.trainable import TrainablePolicy, checkpoint_sha256, effective_weight
from tgrpo.rl.config import for_profile
from tgrpo.rl.loop import Trainer

STATS = at.NormStats((-1.0,) * 6 + (0.0,), (1.0,) * 6 + (1.0,))


class MLPPolicy(TrainablePolicy):
    """State -> one hidden vector, plus a learned offset per action position; 256 action columns. Its tokens do not
    condition on earlier ones (not autoregressive), which the contract allows."""

    name = "mlp-test"

    def __init__(self, state_dim: int = 32, hidden: int = 16, seed: int = 0):
        torch.manual_seed(seed)
        self.state_dim, self.stats, self.seed = state_dim, STATS, seed
        self.model = nn.ModuleDict({"trunk": nn.Linear(state_dim, hidden), "head": nn.Linear(hidden, at.N_BINS)})
        self.positions = torch.linspace(-1, 1, at.ACTION_DIM)[:, None]
        self.generator = torch.Generator().manual_seed(seed)

    def _modules(self) -> nn.ModuleDict:
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def obs_config(self):
        from tgrpo.envs.observation import ObsConfig

        return ObsConfig(mode="state")

    def action_hidden(self, obs, instructions, tokens=None):
        state = np.zeros((len(obs["state"]), self.state_dim), np.float32)
        width = min(self.state_dim, obs["state"].shape[1])
        state[:, :width] = obs["state"][:, :width]
        h = torch.tanh(self._modules()["trunk"](torch.from_numpy(state)))
        return h[:, None, :] * self.positions[None]  # [B, 7, H]

    def action_logits(self, obs, instructions, tokens):
        return self._modules()["head"](self.action_hidden(obs, instructions, tokens))

    def head_weight(self):
        return effective_weight(self._modules()["head"])

    def token_columns(self, tokens):
        return tokens - at.FIRST_ACTION_TOKEN

    @torch.no_grad()
    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0):
        logits = self.action_logits(obs, instructions, None).float()
        logp = torch.log_softmax(logits, -1)
        if mode == "greedy":
            columns = logp.argmax(-1)
        else:
            probs = torch.softmax(logits / temperature, -1).flatten(0, 1)
            columns = torch.multinomial(probs, 1, generator=self.generator).view(logits.shape[:2])
        tokens = (columns + at.FIRST_ACTION_TOKEN).numpy()
        return PolicyOutput(at.tokens_to_env(tokens, self.stats), tokens, logp.gather(2, columns[..., None])
                            .squeeze(2).numpy())

    def reference(self):
        return self.model.disable_adapter()

    def add_adapters(self, rank, alpha, dropout=0.0):
        from peft import LoraConfig, get_peft_model

        self.model = get_peft_model(self.model, LoraConfig(r=rank, lora_alpha=alpha, target_modules=["trunk", "head"]))

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def set_training(self, training):
        self.model.train(training)

    def trainable_state(self):
        return self.model.state_dict()

    def load_trainable_state(self, state):
        self.model.load_state_dict(state)

    def describe(self):
        return {"name": self.name, "seed": self.seed, **getattr(self, "notes", {})}

    def annotate(self, **fields):
        self.notes = {**getattr(self, "notes", {}), **fields}

    def save(self, directory, extra=None):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self._modules().state_dict(), directory / "weights.pt")
        (directory / "meta.json").write_text(json.dumps({"state_dim": self.state_dim, **(extra or {})}))
        return checkpoint_sha256(directory)

    def export_merged(self, directory, extra=None):
        plain = MLPPolicy(self.state_dim, seed=self.seed)
        plain.model = self.model.merge_and_unload() if hasattr(self.model, "merge_and_unload") else self.model
        return plain.save(directory, extra)

    @classmethod
    def load(cls, directory, seed=0):
        policy = cls(json.loads((Path(directory) / "meta.json").read_text())["state_dim"], seed=seed)
        policy.model.load_state_dict(torch.load(Path(directory) / "weights.pt", weights_only=True))
        return policy


@pytest.mark.libero
def test_a_second_policy_runs_a_smoke_rl_iteration_through_the_contract(tmp_path):
    cfg = for_profile("smoke", method="tgrpo", suite="libero_object", task_id=0, init_checkpoint=tmp_path / "init",
                      out_dir=tmp_path / "run", group_size=2, max_steps=8, iterations=1, lr=1e-2)
    trainer = Trainer(cfg, MLPPolicy())
    before = {k: v.clone() for k, v in trainer.policy.trainable_state().items()}
    metrics = trainer.run(progress=False)
    assert len(metrics) == 1 and metrics[0]["loss/grad_norm"] > 0
    after = trainer.policy.trainable_state()
    assert any(not torch.equal(before[k], after[k]) for k in before if "lora_" in k)  # the adapters moved
    assert all(torch.equal(before[k], after[k]) for k in before if "lora_" not in k)  # the base did not
    block = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert block["policy"]["name"] == "mlp-test" and len(block["git_sha"]) == 40
    exported = MLPPolicy.load(trainer.export_policy(tmp_path / "policy"))
    obs = {"state": np.random.default_rng(0).normal(size=(2, 32)).astype(np.float32)}
    tokens = torch.from_numpy(exported.act(obs, ["x", "x"], [0, 1]).tokens)
    with torch.no_grad():
        torch.testing.assert_close(exported.token_logprobs(obs, ["x", "x"], tokens),
                                   trainer.policy.token_logprobs(obs, ["x", "x"], tokens), atol=1e-5, rtol=1e-5)


def test_a_second_policy_runs_an_sft_epoch_through_the_contract(tmp_path):
    rng = np.random.default_rng(0)
    actions = np.tile([[0.4, -0.2, 0.0, 0.1, 0.0, -0.3, -1.0]], (60, 1))
    data = SFTData(rng.normal(size=(60, 32)).astype(np.float32), None, None, ["x"] * 60, actions,
                   np.repeat(np.arange(6), 10))
    cfg = SFTConfig(suite="libero_goal", demos_dir=tmp_path, out_dir=tmp_path / "out", epochs=8, batch_size=16,
                    lr=1e-1, lr_schedule="constant", model={})
    final = train(cfg, data, progress=False, policy=MLPPolicy())
    first = json.loads((tmp_path / "out" / "history.json").read_text())[0]
    assert final["epoch"] == 8 and final["val_loss"] < first["val_loss"] - 1  # it learns the one action
    assert (tmp_path / "out" / "best" / "weights.pt").exists()
    assert json.loads((tmp_path / "out" / "provenance.json").read_text())["policy"]["name"] == "mlp-test"
