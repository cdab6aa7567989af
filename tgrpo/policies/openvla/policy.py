"""`openvla`: OpenVLA-7B (or a checkpoint of its structure at any size) behind the trainable-policy contract.

Defaults are what OpenVLA's LIBERO script does (docs/openvla.md): centre crop on, the suite name as the
un-normalisation key (with the `_no_noops` fallback), greedy decoding over the whole vocabulary, actions
un-normalised by q01/q99 where the mask says and the gripper mapped -sign(2x - 1). RL samples and scores the 256
action tokens only (`head_weight` is the lm_head's action rows): the distribution rollouts draw from is the one
`token_logprobs` and the fused loss see.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tgrpo.policies import action_tokenizer as at
from tgrpo.policies.base import DECODE_MODES, PolicyOutput
from tgrpo.policies.openvla import checkpoint as ck
from tgrpo.policies.openvla.decoding import decode_actions
from tgrpo.policies.openvla.model import ATTENTION, OpenVLAModel
from tgrpo.policies.openvla.processor import PromptEncoder, pixel_values
from tgrpo.policies.sampling import SlotSampler
from tgrpo.policies.trainable import TrainablePolicy, checkpoint_sha256, effective_weight, write_origin

ADAPTERS = "lora_adapters.safetensors"
ADAPTER_CONFIG = "lora_adapters.json"
ACTION_ROWS = slice(at.FIRST_ACTION_TOKEN, at.LLAMA_VOCAB)  # the lm_head rows of the 256 action tokens


@dataclass(frozen=True)
class OpenVLASettings:
    """How the policy runs a checkpoint.

    unnorm_key None: the checkpoint's only key; the CLI passes the suite name as OpenVLA's script does.
    center_crop True: OpenVLA's LIBERO script default (its released fine-tunes were trained with crop augmentation).
    device "auto": CUDA when present, else the CPU. dtype "auto": bfloat16 on CUDA (as released), float32 on a CPU.
    activation_checkpointing None: on with CUDA (the LLM's layers recompute their activations in the backward pass,
        so a micro-batch of 16 rows of ~300 tokens fits; the gradient is the same), off on a CPU (test sizes).
    """

    unnorm_key: str | None = None
    center_crop: bool = True
    device: str = "auto"
    dtype: str = "auto"
    activation_checkpointing: bool | None = None

    def torch_device(self) -> torch.device:
        return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device)

    def torch_dtype(self) -> torch.dtype:
        if self.dtype == "auto":
            return torch.bfloat16 if self.torch_device().type == "cuda" else torch.float32
        return getattr(torch, self.dtype)


def lora_targets(model: OpenVLAModel) -> list[str]:
    """OpenVLA's fine-tuning LoRA (`target_modules="all-linear"` on the whole VLA): every nn.Linear of the vision
    towers, projector and LLM except the output layer; also without the vision modules that never run (SigLIP's
    pooling head, each tower's last block), which would hold adapters no gradient reaches."""
    prefixes: list[str] = []
    for tower in ("featurizer", "fused_featurizer"):
        cfg = getattr(model.vision_backbone, tower).cfg
        prefixes += [f"vision_backbone.{tower}.attn_pool."]
        prefixes += [f"vision_backbone.{tower}.blocks.{i}." for i in range(cfg.feature_block + 1, cfg.depth)]
    unused = tuple(prefixes)
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and name != "language_model.lm_head" and not name.startswith(unused)]


class OpenVLAPolicy(TrainablePolicy):
    name = "openvla"
    obs_mode = "image"

    def __init__(self, model: OpenVLAModel, raw_config: dict, tokenizer_json: str, settings: OpenVLASettings,
                 seed: int = 0, meta: dict | None = None):
        self.model: nn.Module = model
        self.raw_config, self.settings, self.seed = raw_config, settings, seed
        self.prompts = PromptEncoder(tokenizer_json)
        self.unnorm_key = ck.resolve_unnorm_key(raw_config["norm_stats"], settings.unnorm_key)
        try:
            action = raw_config["norm_stats"][self.unnorm_key]["action"]
            self.stats = at.NormStats(tuple(map(float, action["q01"])), tuple(map(float, action["q99"])),
                                      tuple(map(bool, action.get("mask", [True] * len(action["q01"])))))
        except (KeyError, TypeError, ValueError):
            raise ck.CheckpointError(f"norm_stats[{self.unnorm_key!r}] has no action q01/q99 lists") from None
        if not len(self.stats.q01) == len(self.stats.q99) == len(self.stats.mask) == at.ACTION_DIM:
            raise ck.CheckpointError(f"norm_stats[{self.unnorm_key!r}] is not {at.ACTION_DIM}-dimensional")
        self.meta = meta or {}
        self._sampler = SlotSampler(seed)
        self._adapters: dict | None = None
        checkpointing = settings.activation_checkpointing
        if checkpointing or (checkpointing is None and self.device.type == "cuda"):
            model.language_model.activation_checkpointing_enable({"use_reentrant": False})  # in train mode only

    # ----- inputs
    @property
    def net(self) -> OpenVLAModel:
        """The OpenVLA module itself (inside peft's wrapper once adapters are added)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def _embeddings(self, obs: dict[str, np.ndarray], instructions: list[str], rows: list[int]) -> torch.Tensor:
        net = self.net
        pixels = pixel_values(obs["image"][rows], net.cfg.image_size).to(self.device, self._dtype())
        ids = torch.tensor([self.prompts.encode(instructions[r]) for r in rows], device=self.device)
        return net.input_embeddings(ids, pixels)

    def _dtype(self) -> torch.dtype:
        return self.net.lm_head.weight.dtype

    def _by_prompt_length(self, instructions: list[str]) -> list[list[int]]:
        """Rows grouped by prompt length: each group runs as one batch without padding (exact per row)."""
        groups: dict[int, list[int]] = {}
        for row, text in enumerate(instructions):
            groups.setdefault(len(self.prompts.encode(text)), []).append(row)
        return list(groups.values())

    # ----- policy interface
    def begin_episode(self, slot: int, instruction: str, episode_key: tuple = (), layout=None) -> None:
        self._sampler.begin(slot, episode_key)

    @torch.no_grad()
    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0) -> PolicyOutput:
        """Greedy: argmax over the whole vocabulary (OpenVLA's `generate`), log-probs under it. Sample: one of the
        256 action tokens from ``softmax(action logits / T)``, log-probs under that (`token_logprobs` at T)."""
        if mode not in DECODE_MODES:
            raise ValueError(f"unknown decode mode {mode!r}; valid: {', '.join(DECODE_MODES)}")
        if self.model.training:
            self.model.eval()
        tokens = np.zeros((len(instructions), at.ACTION_DIM), np.int64)
        logprobs = np.zeros((len(instructions), at.ACTION_DIM), np.float32)
        for rows in self._by_prompt_length(instructions):
            row_slots = [slots[r] for r in rows]

            def choose(_, logits: torch.Tensor, row_slots=row_slots) -> tuple[torch.Tensor, torch.Tensor]:
                if mode == "greedy":
                    logp = F.log_softmax(logits, dim=-1)
                    token = logp.argmax(dim=-1)
                    return token, logp.gather(1, token[:, None]).squeeze(1)
                logp = F.log_softmax(logits[:, ACTION_ROWS] / temperature, dim=-1)
                column = self._sampler.sample(logp.exp().cpu(), row_slots).to(logits.device)
                return column + at.FIRST_ACTION_TOKEN, logp.gather(1, column[:, None]).squeeze(1)

            tok, logp = decode_actions(self.net, self._embeddings(obs, instructions, rows), choose)
            tokens[rows], logprobs[rows] = tok.cpu().numpy(), logp.cpu().numpy()
        return PolicyOutput(at.tokens_to_env(tokens, self.stats), tokens, logprobs)

    def action_hidden(self, obs: dict[str, np.ndarray], instructions: list[str], tokens) -> torch.Tensor:
        """Teacher-forced final hidden states [B, 7, H] at the positions that predict the 7 action tokens."""
        tokens = torch.as_tensor(tokens, device=self.device)
        out = [None] * len(instructions)
        for rows in self._by_prompt_length(instructions):
            prompt = self._embeddings(obs, instructions, rows)
            actions = self.net.embed_tokens(tokens[rows, :-1])
            hidden = self.net.hidden(torch.cat([prompt, actions], dim=1))[:, -at.ACTION_DIM:]
            for i, r in enumerate(rows):
                out[r] = hidden[i]
        return torch.stack(out)

    def action_logits(self, obs: dict[str, np.ndarray], instructions: list[str], tokens) -> torch.Tensor:
        """[B, 7, 256]: logits of the 256 action tokens (columns = token id - 31744)."""
        return self.action_hidden(obs, instructions, tokens) @ self.head_weight().T

    def head_weight(self) -> torch.Tensor:
        return effective_weight(self.net.lm_head)[ACTION_ROWS]

    def token_columns(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(tokens) - at.FIRST_ACTION_TOKEN

    def obs_config(self):
        from tgrpo.envs.observation import ObsConfig

        return ObsConfig(mode="image", center_crop=self.settings.center_crop)

    def reference(self) -> contextlib.AbstractContextManager:
        if not hasattr(self.model, "disable_adapter"):
            raise RuntimeError("the reference policy needs adapters: call add_adapters first")
        return self.model.disable_adapter()

    def add_adapters(self, rank: int, alpha: int, dropout: float = 0.0) -> None:
        """peft LoRA as OpenVLA's fine-tuning script sets it (Gaussian init); the base weights are frozen."""
        from peft import LoraConfig, get_peft_model

        self._adapters = {"rank": rank, "alpha": alpha, "dropout": dropout}
        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=lora_targets(self.net),
                            init_lora_weights="gaussian")
        self.model = get_peft_model(self.model, config)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def set_training(self, training: bool) -> None:
        self.model.train(training)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        if set(state) != set(params):
            raise ValueError(f"trainable state does not match the policy's ({len(state)} vs {len(params)} tensors)")
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)

    @property
    def device(self) -> torch.device:
        return self.net.lm_head.weight.device

    def describe(self) -> dict:
        return {"name": self.name, "unnorm_key": self.unnorm_key, "center_crop": self.settings.center_crop,
                "dtype": str(self._dtype()).removeprefix("torch."), "attention": ATTENTION, "seed": self.seed,
                **self.meta}

    def annotate(self, **fields) -> None:
        self.meta.update(fields)

    # ----- persistence
    def _write(self, directory: Path, state: dict[str, torch.Tensor], extra: dict | None) -> str:
        ck.write_checkpoint(state, self.net.cfg, directory, self.raw_config, self.prompts.tokenizer_json)
        write_origin(directory, extra)
        return checkpoint_sha256(directory)

    def save(self, directory: Path, extra: dict | None = None) -> str:
        """The base weights in the released layout, plus the LoRA adapters (if any) beside them."""
        from safetensors.torch import save_file

        directory = Path(directory)
        base = {n: t for n, t in _plain_state(self.model).items() if "lora_" not in n}
        self._write(directory, base, extra)
        if self._adapters is not None:
            lora = {n: t.detach().contiguous().cpu() for n, t in self.model.state_dict().items() if "lora_" in n}
            save_file(lora, str(directory / ADAPTERS))
            (directory / ADAPTER_CONFIG).write_text(json.dumps(self._adapters))
        return checkpoint_sha256(directory)

    def export_merged(self, directory: Path, extra: dict | None = None) -> str:
        """The released layout with the adapters merged into the weights (`eval --policy openvla` loads it)."""
        return self._write(Path(directory), merged_state(self.model), extra)

    @classmethod
    def load(cls, directory: Path, seed: int = 0, settings: OpenVLASettings | None = None) -> OpenVLAPolicy:
        """A checkpoint in the released layout (with adapters, if `save` wrote them); CheckpointError otherwise."""
        from safetensors.torch import load_file

        settings = settings or OpenVLASettings()
        directory = Path(directory)
        model, raw = ck.load_model(directory, settings.torch_dtype(), settings.torch_device())
        try:
            tokenizer_json = (directory / ck.TOKENIZER).read_text()
        except OSError:
            raise ck.CheckpointError(f"{directory / ck.TOKENIZER} is missing (the checkpoint's tokenizer)") from None
        raw = {k: v for k, v in raw.items() if k not in (ck.ARCH_KEY, "tgrpo")}
        meta = {"checkpoint": str(directory), "checkpoint_sha256": checkpoint_sha256(directory)}
        policy = cls(model, raw, tokenizer_json, settings, seed, meta)
        if (directory / ADAPTER_CONFIG).exists():
            adapters = json.loads((directory / ADAPTER_CONFIG).read_text())
            policy.add_adapters(adapters["rank"], adapters["alpha"], adapters["dropout"])
            state = load_file(str(directory / ADAPTERS), device=str(policy.device))
            missing, unexpected = policy.model.load_state_dict(state, strict=False)
            if unexpected or any("lora_" in n for n in missing):
                raise ck.CheckpointError(f"{directory / ADAPTERS} does not match the LoRA config beside it")
        return policy


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """OpenVLA names (no peft prefixes, `base_layer` folded away) -> tensors of the wrapped or plain model."""
    net = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {n.replace(".base_layer.", "."): t for n, t in net.state_dict().items()}


def merged_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The plain OpenVLA state dict with every LoRA layer's adapters merged (W + s B A), no copy of the model."""
    net = model.get_base_model() if hasattr(model, "get_base_model") else model
    state = {n: t for n, t in _plain_state(model).items() if "lora_" not in n}
    with torch.no_grad():
        for name, module in net.named_modules():
            if hasattr(module, "base_layer"):
                state[f"{name}.weight"] = effective_weight(module).detach()
    return state
