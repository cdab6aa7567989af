"""Reading and writing OpenVLA checkpoint directories in the released layout (docs/openvla.md):

    config.json                     backbone ids, `norm_stats` per dataset key (and `tgrpo_architecture` when the
                                    checkpoint is not full size)
    model.safetensors.index.json    {"metadata": {"total_size": bytes}, "weight_map": {tensor name: shard file}}
    model-0000k-of-0000n.safetensors
    tokenizer.json                  the Llama-2 tokenizer (read with `tokenizers`)

Loading is strict: every tensor of the model present with its shape, nothing else. Anything wrong raises one
`CheckpointError` naming the first problem (the CLI turns it into a usage error).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tgrpo.policies.openvla.config import ARCH_KEY, LLM_BACKBONE_PREFIX, VISION_BACKBONE_ID, OpenVLAConfig
from tgrpo.policies.openvla.model import OpenVLAModel

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
TOKENIZER = "tokenizer.json"
NO_NOOPS = "_no_noops"
# LayerScale parameters: `gamma` in timm (and here), `scale_factor` in OpenVLA's checkpoints (its HF export renames
# them because transformers rewrites `gamma` keys on load).
RENAMES = ((".ls1.gamma", ".ls1.scale_factor"), (".ls2.gamma", ".ls2.scale_factor"))


class CheckpointError(ValueError):
    """An OpenVLA checkpoint directory that is absent, incomplete, or not this model's."""


def to_released(name: str) -> str:
    for ours, released in RENAMES:
        name = name.replace(ours, released)
    return name


def from_released(name: str) -> str:
    for ours, released in RENAMES:
        name = name.replace(released, ours)
    return name


def read_config(directory: Path) -> tuple[dict, OpenVLAConfig]:
    """config.json as written, and the architecture it describes."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"no OpenVLA checkpoint directory at {directory}")
    path = directory / "config.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path} is missing or not JSON ({type(err).__name__})") from None
    vision, llm = raw.get("vision_backbone_id"), str(raw.get("llm_backbone_id", ""))
    if vision != VISION_BACKBONE_ID or not llm.startswith(LLM_BACKBONE_PREFIX):
        raise CheckpointError(f"{path} describes backbones {vision!r} + {llm!r}; this loader builds "
                              f"{VISION_BACKBONE_ID!r} + {LLM_BACKBONE_PREFIX}* (OpenVLA-7B)")
    if not isinstance(raw.get("norm_stats"), dict) or not raw["norm_stats"]:
        raise CheckpointError(f"{path} has no norm_stats (the action statistics per dataset key)")
    try:
        cfg = OpenVLAConfig.from_dict(raw[ARCH_KEY]) if ARCH_KEY in raw else OpenVLAConfig()
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: bad {ARCH_KEY} entry ({type(err).__name__}: {err})") from None
    return raw, cfg


def resolve_unnorm_key(norm_stats: dict, key: str | None) -> str:
    """OpenVLA's choice of action statistics: `key`, else `key + "_no_noops"`; None works for a checkpoint with
    exactly one key. CheckpointError listing the valid keys otherwise."""
    valid = sorted(norm_stats)
    if key is None and len(valid) == 1:
        return valid[0]
    if key is not None:
        for candidate in (key, key + NO_NOOPS):
            if candidate in norm_stats:
                return candidate
    raise CheckpointError(f"unknown --unnorm-key {key!r} for this checkpoint; valid: {', '.join(valid)}")


def _shard_files(directory: Path) -> dict[str, list[str]]:
    """Shard file -> the tensor names the index assigns to it."""
    index = directory / INDEX
    if not index.exists():
        if (directory / SINGLE).exists():
            return {SINGLE: []}
        raise CheckpointError(f"{directory} has neither {INDEX} nor {SINGLE}")
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{index} is not a safetensors index ({type(err).__name__})") from None
    shards: dict[str, list[str]] = {}
    for name, file in weight_map.items():
        shards.setdefault(file, []).append(name)
    for file in shards:
        if not (directory / file).exists():
            raise CheckpointError(f"missing shard {directory / file} (named by {INDEX})")
    return shards


def check_layout(found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> None:
    """CheckpointError for the first missing key, unexpected key or shape mismatch (names as released)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        raise CheckpointError(f"checkpoint lacks {len(missing)} tensor(s) of OpenVLA, first {missing[0]!r}")
    if unexpected:
        raise CheckpointError(f"checkpoint has {len(unexpected)} tensor(s) OpenVLA does not, first {unexpected[0]!r}")
    for name, shape in expected.items():
        if tuple(found[name]) != tuple(shape):
            raise CheckpointError(f"tensor {name!r} has shape {list(found[name])}, OpenVLA's is {list(shape)}")


def read_state(directory: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint (released names), after checking names and shapes against `expected`."""
    from safetensors import SafetensorError, safe_open

    directory = Path(directory)
    shards = _shard_files(directory)
    handles, found = {}, {}
    try:
        for file, names in shards.items():
            handle = handles[file] = safe_open(str(directory / file), framework="pt")
            keys = set(handle.keys())
            absent = [n for n in names if n not in keys]
            if absent:
                raise CheckpointError(f"{directory / file} lacks {absent[0]!r}, which {INDEX} places there")
            for name in keys:
                if name in found:
                    raise CheckpointError(f"tensor {name!r} is stored twice ({file} and another shard)")
                found[name] = (file, tuple(handle.get_slice(name).get_shape()))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"cannot read safetensors in {directory}: {err}") from None
    check_layout({k: shape for k, (_, shape) in found.items()}, expected)
    return {name: handles[file].get_tensor(name) for name, (file, _) in found.items()}


def expected_layout(model: OpenVLAModel) -> dict[str, tuple[int, ...]]:
    """Released tensor name -> shape, for the model's state dict."""
    return {to_released(k): tuple(v.shape) for k, v in model.state_dict().items()}


def load_model(directory: Path, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """(model, raw config.json) from a checkpoint directory: built on the meta device, the tensors assigned
    strictly, cast to `dtype` on `device`."""
    raw, cfg = read_config(directory)
    with torch.device("meta"):
        model = OpenVLAModel(cfg)
    state = read_state(directory, expected_layout(model))
    model.load_state_dict({from_released(k): v.to(device=device, dtype=dtype) for k, v in state.items()},
                          strict=True, assign=True)
    _rebuild_buffers(model, device)
    return model.eval(), raw


def _rebuild_buffers(model: OpenVLAModel, device) -> None:
    """The rotary embedding's inverse frequencies are a computed (non-persistent) buffer: rebuild it off meta."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    llama = model.language_model.model
    with torch.device(device):
        llama.rotary_emb = LlamaRotaryEmbedding(model.language_model.config)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"tensors left on the meta device after loading: {left[:3]}")


def write_checkpoint(state: dict[str, torch.Tensor], cfg: OpenVLAConfig, directory: Path, config: dict,
                     tokenizer_json: str, shard_bytes: int = 5 * 2**30) -> None:
    """Write a model state dict (this project's names) at architecture `cfg` in the released layout: shards of at
    most `shard_bytes` (the released ones hold ~5 GB), the index, config.json (`config`, plus the architecture when
    it is not full size) and tokenizer.json."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("model-*-of-*.safetensors"):  # a rewrite may shard differently
        stale.unlink()
    state = {to_released(k): v.detach().contiguous().cpu() for k, v in state.items()}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(directory / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file))
    total = sum(t.numel() * t.element_size() for t in state.values())
    (directory / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    config = {k: v for k, v in config.items() if k != ARCH_KEY}
    if cfg != OpenVLAConfig():
        config[ARCH_KEY] = cfg.to_dict()
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / TOKENIZER).write_text(tokenizer_json)
