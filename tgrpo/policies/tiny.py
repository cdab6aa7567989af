"""`tiny`: a small VLA with OpenVLA's action interface that trains and runs on a CPU.

Context tokens (instruction words + either the preprocessed camera image(s) or the state vector) are followed by
7 autoregressive action tokens, decoded with a prefix-causal transformer (`act` decodes with `tiny_decode`'s
cached, folded inference path; training reads `logits`). Token ids, bins and normalisation are OpenVLA's
(`action_tokenizer`). The output layer covers either the 256 action tokens (`vocab_mode="action"`, default) or
the whole padded Llama vocabulary (`"full"`, as OpenVLA's head). Every linear layer is an `nn.Linear`, so LoRA
(peft) can wrap all of them as the paper does on OpenVLA.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tgrpo.policies import action_tokenizer as at
from tgrpo.policies.base import DECODE_MODES, PolicyOutput
from tgrpo.policies.sampling import SlotSampler
from tgrpo.policies.tiny_decode import FastDecoder
from tgrpo.policies.trainable import TrainablePolicy, checkpoint_sha256, effective_weight, write_origin

PAD, UNK = 0, 1
VARIANTS = ("state", "image")
VOCAB_MODES = ("action", "full")


STATE_STD_FLOOR = 0.01  # metres / radians / quaternion units: a dimension that barely moves is not blown up


@dataclass(frozen=True)
class StateStats:
    """Per-dimension mean and std of the (zero-padded) training state vectors; the state variant sees
    (state - mean) / max(std, STATE_STD_FLOOR). Absolute world coordinates sit around 1 m while the differences that
    matter are centimetres, so an unnormalised linear projection learns them poorly (robomimic and LeRobot
    normalise observations the same way)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_states(cls, states: np.ndarray) -> StateStats:
        states = np.asarray(states, dtype=np.float64)
        return cls(tuple(states.mean(axis=0).tolist()), tuple(np.maximum(states.std(axis=0), STATE_STD_FLOOR).tolist()))

    def apply(self, padded: np.ndarray) -> np.ndarray:
        return ((padded - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).astype(np.float32)


@dataclass
class TinyConfig:
    """Architecture of the tiny VLA; saved with every checkpoint.

    variant: "state" (proprioception + object poses, no rendering: the CPU-scale RL setting) or "image".
    state_dim: length the state vector is zero-padded to (the largest of the suite's tasks).
    vocab_mode: "action" (256 logits, default: a model trained from scratch never uses the other 31808 ids) or
        "full" (32064 logits as OpenVLA, so the same full-vocabulary log-prob and loss kernels are exercised).
    """

    variant: str = "state"
    state_dim: int = 128
    wrist: bool = False
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    mlp_ratio: int = 4
    state_tokens: int = 4
    image_grid: int = 6
    max_words: int = 20
    vocab_mode: str = "action"
    words: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; valid: {', '.join(VARIANTS)}")
        if self.vocab_mode not in VOCAB_MODES:
            raise ValueError(f"unknown vocab_mode {self.vocab_mode!r}; valid: {', '.join(VOCAB_MODES)}")
        if self.d_model % self.n_heads:
            raise ValueError("d_model must be a multiple of n_heads")

    @property
    def vocab_size(self) -> int:
        return at.N_BINS if self.vocab_mode == "action" else at.PADDED_VOCAB


def instruction_words(instruction: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", instruction.lower())


class Block(nn.Module):
    """Pre-norm transformer block with separate q, k, v, out projections (all nn.Linear, LoRA-able)."""

    def __init__(self, d: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, mlp_ratio * d), nn.Linear(mlp_ratio * d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, n, d], mask [n, n] (True: may attend) -> [B, n, d]."""
        b, n, d = x.shape
        h = self.norm1(x)
        q, k, v = (proj(h).view(b, n, self.heads, d // self.heads).transpose(1, 2) for proj in (self.q, self.k, self.v))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.o(att.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class TinyVLA(nn.Module):
    """[context tokens | BOS, a_0 .. a_5] -> logits for a_0 .. a_6."""

    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.word_emb = nn.Embedding(len(cfg.words) + 2, d, padding_idx=PAD)
        self.word_pos = nn.Parameter(torch.zeros(cfg.max_words, d))
        if cfg.variant == "state":
            self.state_proj = nn.Linear(cfg.state_dim, cfg.state_tokens * d)
        else:
            self.cnn = nn.Sequential(
                nn.Conv2d(3, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                nn.Conv2d(64, d, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(cfg.image_grid),
            )
            cameras = 2 if cfg.wrist else 1
            self.image_pos = nn.Parameter(torch.zeros(cameras, cfg.image_grid**2, d))
        self.action_emb = nn.Embedding(at.N_BINS + 1, d)  # 0 = BOS, 1..256 = action bins
        self.action_pos = nn.Parameter(torch.zeros(at.ACTION_DIM, d))
        self.blocks = nn.ModuleList(Block(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size, bias=False)
        for p in (self.word_pos, self.action_pos):
            nn.init.normal_(p, std=0.02)

    def context(self, words: torch.Tensor, state: torch.Tensor | None, images: torch.Tensor | None) -> torch.Tensor:
        """words [B, W] ids, state [B, S] float, images [B, C, H, W, 3] uint8 -> context tokens [B, L, d]."""
        parts = [self.word_emb(words) + self.word_pos[: words.shape[1]]]
        if self.cfg.variant == "state":
            parts.append(self.state_proj(state).view(state.shape[0], self.cfg.state_tokens, self.cfg.d_model))
        else:
            b, cams = images.shape[:2]
            x = images.flatten(0, 1).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            feats = self.cnn(x).flatten(2).transpose(1, 2).reshape(b, cams, -1, self.cfg.d_model)
            parts.append((feats + self.image_pos[:cams]).flatten(1, 2))
        return torch.cat(parts, dim=1)

    def hidden(self, context: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        """context [B, L, d], action bins [B, k] (1..256, k <= 6) -> hidden states [B, k + 1, d] at BOS, a_0.."""
        b, length = context.shape[:2]
        bos = torch.zeros(b, 1, dtype=torch.long, device=context.device)
        steps = torch.cat([bos, bins], dim=1)
        x = torch.cat([context, self.action_emb(steps) + self.action_pos[: steps.shape[1]]], dim=1)
        n = x.shape[1]
        mask = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        mask[:, :length] = True  # every position sees the whole context (prefix-LM)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x[:, length:])

    def logits(self, context: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(context, bins))


def tokens_to_bins(tokens: torch.Tensor) -> torch.Tensor:
    """OpenVLA token ids 31744..31999 -> decoder input ids 1..256."""
    return tokens - at.FIRST_ACTION_TOKEN + 1


def tokens_to_columns(tokens: torch.Tensor, vocab_mode: str) -> torch.Tensor:
    """Token ids -> columns of the output layer (the 256-slice or the whole vocabulary)."""
    return tokens - at.FIRST_ACTION_TOKEN if vocab_mode == "action" else tokens


def columns_to_tokens(columns: torch.Tensor, vocab_mode: str) -> torch.Tensor:
    return columns + at.FIRST_ACTION_TOKEN if vocab_mode == "action" else columns


class TinyPolicy(TrainablePolicy):
    """The tiny VLA behind the trainable-policy contract: act, token log-probs with gradients, save/load."""

    name = "tiny"

    def __init__(self, model: nn.Module, cfg: TinyConfig, stats: at.NormStats, meta: dict | None = None,
                 state_stats: StateStats | None = None, seed: int = 0):
        self.model, self.cfg, self.stats, self.state_stats = model, cfg, stats, state_stats
        self.meta = meta or {}
        self.seed = seed
        self._sampler = SlotSampler(seed)
        self._decoder = FastDecoder()
        self.obs_mode = cfg.variant
        self._word_index = {w: i + 2 for i, w in enumerate(cfg.words)}

    # ----- inputs
    def encode_words(self, instructions: list[str]) -> torch.Tensor:
        ids = torch.full((len(instructions), self.cfg.max_words), PAD, dtype=torch.long)
        for row, text in enumerate(instructions):
            words = instruction_words(text)[: self.cfg.max_words] or ["<unk>"]
            ids[row, : len(words)] = torch.tensor([self._word_index.get(w, UNK) for w in words])
        return ids

    def encode_state(self, state: np.ndarray) -> torch.Tensor:
        state = np.asarray(state, dtype=np.float32)
        out = np.zeros((state.shape[0], self.cfg.state_dim), dtype=np.float32)
        width = min(state.shape[1], self.cfg.state_dim)
        out[:, :width] = state[:, :width]
        if self.state_stats is not None:
            out = self.state_stats.apply(out)
        return torch.from_numpy(out)

    def context(self, obs: dict[str, np.ndarray], instructions: list[str]) -> torch.Tensor:
        words = self.encode_words(instructions)
        if self.cfg.variant == "state":
            return self.model.context(words, self.encode_state(obs["state"]), None)
        cams = [obs["image"]] + ([obs["wrist"]] if self.cfg.wrist else [])
        images = torch.from_numpy(np.stack(cams, axis=1))
        return self.model.context(words, None, images)

    # ----- policy interface
    def begin_episode(self, slot: int, instruction: str, episode_key: tuple = (), layout=None) -> None:
        """Sampling draws from one generator per slot, seeded by (policy seed, episode key): a sampled episode's
        actions do not depend on which other episodes share the batch or the worker."""
        self._sampler.begin(slot, episode_key)

    @torch.no_grad()
    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0) -> PolicyOutput:
        if mode not in DECODE_MODES:
            raise ValueError(f"unknown decode mode {mode!r}; valid: {', '.join(DECODE_MODES)}")
        if self.model.training:  # eval() walks every module: 3 ms a call with LoRA's wrappers
            self.model.eval()
        logits, cache = self._decoder.start(self.model, self.context(obs, instructions))
        tokens, logprobs, bins = [], [], None
        for j in range(at.ACTION_DIM):
            if bins is not None:  # the previous token's bins extend the cache
                logits = self._decoder.step(bins, j, cache)
            if mode == "greedy":
                logp = F.log_softmax(logits.float(), dim=-1)
                column = logp.argmax(dim=-1)
            else:  # the behaviour policy is the tempered one: report its log-probs (the ratio's denominator)
                logp = F.log_softmax(logits.float() / temperature, dim=-1)
                column = self._sampler.sample(F.softmax(logits.float() / temperature, dim=-1), slots)
            token = columns_to_tokens(column, self.cfg.vocab_mode)
            tokens.append(token)
            logprobs.append(logp.gather(1, column[:, None]).squeeze(1))
            bins = tokens_to_bins(token.clamp(at.FIRST_ACTION_TOKEN, at.LLAMA_VOCAB - 1))  # full vocab may emit others
        tokens_np = torch.stack(tokens, dim=1).numpy()
        return PolicyOutput(at.tokens_to_env(tokens_np, self.stats), tokens_np,
                            torch.stack(logprobs, dim=1).numpy().astype(np.float32))

    def action_hidden(self, obs: dict[str, np.ndarray], instructions: list[str], tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced final hidden states [B, 7, d] for action tokens [B, 7] (OpenVLA ids)."""
        context = self.context(obs, instructions)
        inputs = tokens_to_bins(tokens.clamp(at.FIRST_ACTION_TOKEN, at.LLAMA_VOCAB - 1))[:, :-1]
        return self.model.hidden(context, inputs)

    def action_logits(self, obs: dict[str, np.ndarray], instructions: list[str], tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [B, 7, V] for action tokens [B, 7] (OpenVLA ids)."""
        return self._head()(self.action_hidden(obs, instructions, tokens))

    def head_weight(self) -> torch.Tensor:
        """The head's weight [V, d] with a LoRA adapter's delta added while adapters are active."""
        return effective_weight(self._head())

    def token_columns(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens_to_columns(tokens, self.cfg.vocab_mode)

    def _head(self) -> nn.Module:
        return self.model.get_base_model().head if hasattr(self.model, "get_base_model") else self.model.head

    def obs_config(self):
        from tgrpo.envs.observation import ObsConfig

        return ObsConfig(mode=self.cfg.variant, wrist=self.cfg.wrist)

    def reference(self):
        """The SFT policy: the same model with its LoRA adapters disabled (no second copy)."""
        if not hasattr(self.model, "disable_adapter"):
            raise RuntimeError("the reference policy needs adapters: call add_adapters first")
        return self.model.disable_adapter()

    def add_adapters(self, rank: int, alpha: int, dropout: float = 0.0) -> None:
        add_lora(self, rank, alpha, dropout)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def set_training(self, training: bool) -> None:
        self.model.train(training)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)

    def describe(self) -> dict:
        return {"name": self.name, "variant": self.cfg.variant, "seed": self.seed, **self.meta}

    def annotate(self, **fields) -> None:
        self.meta.update(fields)

    # ----- persistence
    def save(self, directory: Path, extra: dict | None = None) -> str:
        """Write model.pt and policy.json; returns the directory's content hash."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), directory / "model.pt")
        meta = {"config": asdict(self.cfg), "norm_stats": self.stats.to_dict(),
                "state_stats": asdict(self.state_stats) if self.state_stats is not None else None}
        (directory / "policy.json").write_text(json.dumps(meta, indent=2))
        write_origin(directory, extra)
        return checkpoint_sha256(directory)

    def export_merged(self, directory: Path, extra: dict | None = None) -> str:
        """A plain tiny checkpoint with the LoRA adapters merged into the weights (`eval --policy tiny`)."""
        import copy

        model = copy.deepcopy(self.model)
        merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        return TinyPolicy(merged, self.cfg, self.stats, state_stats=self.state_stats).save(directory, extra)

    @classmethod
    def load(cls, directory: Path, seed: int = 0) -> TinyPolicy:
        """The checkpoint `save` wrote; FileNotFoundError if absent, CheckpointError if it cannot be read."""
        directory = Path(directory)
        if not (directory / "policy.json").exists() or not (directory / "model.pt").exists():
            raise FileNotFoundError(f"no tiny checkpoint at {directory} (expected policy.json and model.pt)")
        try:
            meta = json.loads((directory / "policy.json").read_text())
            cfg = TinyConfig(**meta["config"])
            stats = at.NormStats(**{k: tuple(v) for k, v in meta["norm_stats"].items()})
            state_stats = meta.get("state_stats")  # absent in checkpoints from before state normalisation
            if state_stats:
                state_stats = StateStats(**{k: tuple(v) for k, v in state_stats.items()})
            model = TinyVLA(cfg)
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RuntimeError) as err:
            raise CheckpointError(f"{directory / 'policy.json'} is not a tiny policy description "
                                  f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from None
        try:
            model.load_state_dict(torch.load(directory / "model.pt", map_location="cpu", weights_only=True))
        except Exception as err:  # noqa: BLE001 (a bad file: RuntimeError, UnpicklingError, EOFError, ... from torch)
            raise CheckpointError(f"{directory / 'model.pt'} does not hold the weights its policy.json describes "
                                  f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from None
        return cls(model, cfg, stats, {"checkpoint": str(directory), "checkpoint_sha256": checkpoint_sha256(directory)},
                   state_stats or None, seed)


class CheckpointError(ValueError):
    """A tiny checkpoint that exists but cannot be read (corrupt, truncated, or not this model's)."""


def lora_targets(model: nn.Module) -> list[str]:
    """Names of every nn.Linear in the model (LoRA on all linear layers, as OpenVLA's LIBERO fine-tunes)."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def add_lora(policy: TinyPolicy, rank: int = 32, alpha: int = 16, dropout: float = 0.0) -> TinyPolicy:
    """Wrap the policy's model with LoRA adapters (peft); the frozen base is the reference policy
    (`with policy.model.disable_adapter(): ...`), so no second copy is held."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=lora_targets(policy.model))
    policy.model = get_peft_model(policy.model, config)
    return policy
