"""SFT training loop: cross-entropy on the 7 action tokens, whole-demo validation split, resumable checkpoints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from baselines.sft.config import SFTConfig
from tgrpo.policies import action_tokenizer as at
from tgrpo.policies.tiny import StateStats, TinyConfig, TinyPolicy, TinyVLA, instruction_words
from tgrpo.policies.trainable import TrainablePolicy
from tgrpo.provenance import provenance
from tgrpo.trainer_state import load_trainer_state, save_trainer_state


@dataclass
class SFTData:
    """Flattened demonstration steps. K steps in total.

    state [K, S] float32 (None for image-only data), image / wrist [K, H, W, 3] uint8 or None,
    instruction [K] str, actions [K, 7] env convention, demo [K] int (a global demo id, for the split).
    """

    state: np.ndarray | None
    image: np.ndarray | None
    wrist: np.ndarray | None
    instruction: list[str]
    actions: np.ndarray
    demo: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)

    def obs(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for key in ("state", "image", "wrist"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value[idx]
        return out


def split_by_demo(data: SFTData, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of train and validation steps; whole demonstrations go to one side."""
    demos = np.unique(data.demo)
    rng = np.random.default_rng(seed)
    n_val = round(fraction * len(demos))
    val_demos = set(rng.permutation(demos)[:n_val].tolist()) if n_val else set()
    is_val = np.array([d in val_demos for d in data.demo])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def build_policy(cfg: SFTConfig, data: SFTData) -> TinyPolicy:
    """A tiny VLA from scratch sized for the data: vocabulary, state width, cameras, action statistics."""
    words = sorted({w for text in set(data.instruction) for w in instruction_words(text)})
    state_dim = data.state.shape[1] if data.state is not None else 1
    model_cfg = TinyConfig(variant=cfg.variant, state_dim=state_dim, wrist=data.wrist is not None, words=words,
                           **cfg.model)
    torch.manual_seed(cfg.seed)
    state_stats = StateStats.from_states(data.state) if cfg.variant == "state" and cfg.normalize_state else None
    return TinyPolicy(TinyVLA(model_cfg), model_cfg, at.NormStats.from_actions(data.actions), state_stats=state_stats)


def learning_rate(cfg: SFTConfig, step: int, total: int) -> float:
    """The learning rate at optimiser step `step` of `total`: constant, or cosine decay to 0 (a function of the
    step alone, so a resumed run follows the same schedule)."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    return 0.5 * cfg.lr * (1.0 + np.cos(np.pi * min(step, total) / total))


def batch_loss(policy: TrainablePolicy, data: SFTData, idx: np.ndarray, targets: torch.Tensor,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean token cross-entropy and token accuracy of the batch `idx`."""
    tokens = targets[idx]
    logits = policy.action_logits(data.obs(idx), [data.instruction[i] for i in idx], tokens)
    columns = policy.token_columns(tokens)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), columns.flatten())
    accuracy = (logits.argmax(-1) == columns).float().mean()
    return loss, accuracy


def train(cfg: SFTConfig, data: SFTData, progress: bool = True, policy: TrainablePolicy | None = None) -> dict:
    """Train (or resume) and return final metrics. Checkpoints: out/last (every epoch), out/best (lowest val).

    `policy`: the policy to fine-tune in full (default: a tiny VLA built for `data`); it must encode actions with
    the data's statistics (`policy.stats`)."""
    torch.set_num_threads(cfg.torch_threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_idx, val_idx = split_by_demo(data, cfg.val_fraction, cfg.seed)
    policy = policy if policy is not None else build_policy(cfg, data)
    targets = torch.from_numpy(at.env_to_tokens(data.actions, policy.stats))
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = {"epoch": 0, "best_val": float("inf"), "history": []}
    trainer_file = out / "last" / "trainer.pt"
    if trainer_file.exists():
        saved = load_trainer_state(trainer_file, required=("model", "optimizer", "state"))
        policy.load_trainable_state(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
    else:
        (out / "provenance.json").write_text(json.dumps(provenance(
            profile=cfg.profile, seeds={"run": cfg.seed}, policy=policy.describe()), indent=2))
    writer = _writer(out)
    steps_per_epoch = max(1, int(np.ceil(len(train_idx) / cfg.batch_size)))
    bar = _bar(cfg.epochs * steps_per_epoch, state["epoch"] * steps_per_epoch, progress)
    total_steps = cfg.epochs * steps_per_epoch
    for epoch in range(state["epoch"], cfg.epochs):
        policy.set_training(True)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(train_idx)
        losses = []
        for k, start in enumerate(range(0, len(order), cfg.batch_size)):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, epoch * steps_per_epoch + k, total_steps)
            loss, _ = batch_loss(policy, data, order[start:start + cfg.batch_size], targets)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), cfg.grad_clip)
            optimizer.step()
            losses.append(loss.item())
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"epoch {epoch + 1}/{cfg.epochs} loss {losses[-1]:.3f}")
        val_loss, val_acc = evaluate_loss(policy, data, val_idx, targets, cfg.batch_size)
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                  "val_token_accuracy": val_acc}
        state["history"].append(record)
        for key in ("train_loss", "val_loss", "val_token_accuracy"):
            if record[key] is not None:
                writer.add_scalar(f"sft/{key}", record[key], epoch + 1)
        state["epoch"] = epoch + 1
        extra = {"sft_config": cfg.to_dict(), "epoch": epoch + 1}
        if val_loss is None or val_loss < state["best_val"]:
            state["best_val"] = val_loss if val_loss is not None else state["best_val"]
            policy.save(out / "best", extra)
        policy.save(out / "last", extra)
        save_trainer_state(trainer_file, {"model": policy.trainable_state(), "optimizer": optimizer.state_dict(),
                                          "state": state})
    if bar is not None:
        bar.close()
    writer.close()
    (out / "history.json").write_text(json.dumps(state["history"], indent=2))
    return state["history"][-1] if state["history"] else {}


@torch.no_grad()
def evaluate_loss(policy, data, idx, targets, batch_size) -> tuple[float | None, float | None]:
    if len(idx) == 0:
        return None, None
    policy.set_training(False)
    total_loss, total_acc = 0.0, 0.0
    for start in range(0, len(idx), batch_size):
        part = idx[start:start + batch_size]
        loss, acc = batch_loss(policy, data, part, targets)
        total_loss += loss.item() * len(part)
        total_acc += acc.item() * len(part)
    return total_loss / len(idx), total_acc / len(idx)


def _writer(out: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(out / "tensorboard"))


def _bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="sft", dynamic_ncols=True)

