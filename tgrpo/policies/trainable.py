"""The trainable-policy contract: what the RL loop, SFT and the fused loss need from a policy, so one loop trains
the tiny VLA and OpenVLA alike. Imports torch, so it lives apart from `base` (`zero` and `random` need none).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from tgrpo.policies.base import Policy

ORIGIN_FILE = "origin.json"  # where a checkpoint came from (run config, paths, epoch): not part of its identity


def write_origin(directory: Path, origin: dict | None) -> None:
    """Record where a checkpoint came from beside it, outside its content hash (`ORIGIN_FILE`)."""
    if origin:
        (Path(directory) / ORIGIN_FILE).write_text(json.dumps(origin, indent=2, default=str))


def checkpoint_sha256(directory: Path) -> str:
    """Content hash of a checkpoint directory: sha256 over its files' relative paths and bytes, in sorted order,
    `ORIGIN_FILE` excepted (a checkpoint is identified by what it holds, not by where it lies or which run wrote
    it: the same weights written under two run stores hash alike)."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != ORIGIN_FILE):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def effective_weight(linear: torch.nn.Module) -> torch.Tensor:
    """The weight ``[out, in]`` a linear layer applies: a peft LoRA wrapper's base weight plus its active adapters'
    deltas (none while adapters are disabled), or a plain `nn.Linear`'s weight. Differentiable."""
    if not hasattr(linear, "base_layer"):
        return linear.weight
    weight = linear.base_layer.weight
    if linear.disable_adapters or linear.merged:
        return weight
    return weight + sum(linear.get_delta_weight(name) for name in linear.active_adapters)


class TrainablePolicy(Policy):
    """A policy the RL loop, SFT and evaluation train and run through this contract alone (tiny VLA, OpenVLA).

    Shapes: B rows (environment steps), T = 7 action tokens, V head columns, H hidden size. Action tokens are
    OpenVLA ids; `token_columns` maps them to the head's columns (the identity for a full-vocabulary head).
    Implementations define every method below; nothing in the loop looks behind them.
    """

    def obs_config(self):
        """The `tgrpo.envs.observation.ObsConfig` its rollouts and evaluations render."""
        raise NotImplementedError

    def action_logits(self, obs: dict[str, np.ndarray], instructions: list[str], tokens) -> torch.Tensor:
        """Teacher-forced logits ``[B, T, V]`` of action tokens ``[B, T]``; differentiable."""
        raise NotImplementedError

    def action_hidden(self, obs: dict[str, np.ndarray], instructions: list[str], tokens) -> torch.Tensor:
        """Final hidden states ``[B, T, H]`` at the action positions (``action_logits = hidden @ head_weight().T``);
        what the fused loss (`tgrpo.losses.fused_policy_loss`) consumes instead of logits."""
        raise NotImplementedError

    def head_weight(self) -> torch.Tensor:
        """The output layer's effective weight ``[V, H]`` (adapters included), differentiable."""
        raise NotImplementedError

    def token_columns(self, tokens: torch.Tensor) -> torch.Tensor:
        """Action token ids ``[B, T]`` -> head columns ``[B, T]`` (int64)."""
        raise NotImplementedError

    def token_logprobs(self, obs: dict[str, np.ndarray], instructions: list[str], tokens,
                       temperature: float = 1.0) -> torch.Tensor:
        """``log pi_T(token_j | context, tokens_<j)`` ``[B, T]`` float32, differentiable; ``pi_T`` is the policy at
        sampling temperature T (``log_softmax(logits / T)``), the distribution rollouts at T draw from."""
        logp = torch.log_softmax(self.action_logits(obs, instructions, tokens).float() / temperature, dim=-1)
        return logp.gather(2, self.token_columns(tokens)[..., None]).squeeze(2)

    def annotate(self, **fields) -> None:
        """Add fields to what `describe()` reports from now on (e.g. the RL run a policy came from)."""
        raise NotImplementedError

    def reference(self) -> contextlib.AbstractContextManager:
        """Context in which the policy is the reference policy (adapters disabled: the SFT policy)."""
        raise NotImplementedError

    def add_adapters(self, rank: int, alpha: int, dropout: float = 0.0) -> None:
        """Wrap the model's linear layers with LoRA adapters; afterwards only they are trainable."""
        raise NotImplementedError

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        raise NotImplementedError

    def set_training(self, training: bool) -> None:
        """Train or eval mode of the underlying modules."""
        raise NotImplementedError

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Every tensor a resumed run needs back (the full weights, or the adapters alone)."""
        raise NotImplementedError

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return self.trainable_parameters()[0].device

    def save(self, directory: Path, extra: dict | None = None) -> str:
        """Write a checkpoint directory (adapters as they are); returns its content hash (sha256)."""
        raise NotImplementedError

    def export_merged(self, directory: Path, extra: dict | None = None) -> str:
        """Write a plain checkpoint with the adapters merged into the weights, loadable without peft; returns its
        content hash."""
        raise NotImplementedError

    @classmethod
    def load(cls, directory: Path, seed: int = 0) -> TrainablePolicy:
        raise NotImplementedError
