"""A synthetic OpenVLA checkpoint in the released layout, at any size (tests and CPU smoke runs; no download).

Random weights, a character-level Llama-style tokenizer (SentencePiece's "▁" word marker at Llama-2's id 29871,
`<s>` = 1, byte fallback), and made-up action statistics under the four LIBERO `*_no_noops` keys. Everything a
loader reads is real in form: shard files, index, config.json with `norm_stats`, tokenizer.json.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

from tgrpo.policies.openvla.checkpoint import write_checkpoint
from tgrpo.policies.openvla.config import LLM_BACKBONE_PREFIX, VISION_BACKBONE_ID, OpenVLAConfig, tiny_config
from tgrpo.policies.openvla.model import OpenVLAModel
from tgrpo.policies.openvla.processor import EMPTY_WORD_ID

WORD_MARK = "\u2581"  # SentencePiece's "▁"
SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")


def synthetic_tokenizer_json() -> str:
    """A Llama-2-shaped tokenizer.json: Prepend("▁") + Replace(" ", "▁") normaliser, BPE over single characters
    with byte fallback; ids 0-2 `<unk> <s> </s>`, 3-258 the bytes, then printable characters."""
    from tokenizers import Tokenizer, normalizers
    from tokenizers.models import BPE

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"<0x{b:02X}>": 3 + b for b in range(256)}
    for char in string.ascii_letters + string.digits + string.punctuation:
        vocab[char] = len(vocab)
    vocab[WORD_MARK] = EMPTY_WORD_ID
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend(WORD_MARK), normalizers.Replace(" ", WORD_MARK)])
    return tokenizer.to_str()


def synthetic_norm_stats() -> dict:
    """config.json's `norm_stats`: per key an `action` entry with q01 / q99 / mask (made-up, LIBERO-like scale)."""
    q01 = [-0.75, -0.8, -0.9, -0.1, -0.15, -0.2, 0.0]
    q99 = [0.9, 0.85, 0.95, 0.12, 0.16, 0.25, 1.0]
    action = {"q01": q01, "q99": q99, "mask": [True] * 6 + [False]}
    return {f"{suite}_no_noops": {"action": action} for suite in SUITES}


def released_config(norm_stats: dict) -> dict:
    """The fields of a released config.json this project reads, plus what identifies the format."""
    return {"model_type": "openvla", "architectures": ["OpenVLAForActionPrediction"],
            "vision_backbone_id": VISION_BACKBONE_ID, "llm_backbone_id": f"{LLM_BACKBONE_PREFIX}-pure",
            "arch_specifier": "no-align+fused-gelu-mlp", "use_fused_vision_backbone": True,
            "image_resize_strategy": "resize-naive", "pad_token_id": 32000, "pad_to_multiple_of": 64,
            "text_config": {"model_type": "llama", "pad_token_id": 32000, "vocab_size": 32064},
            "n_action_bins": 256, "norm_stats": norm_stats}


def write_synthetic_checkpoint(directory: Path, cfg: OpenVLAConfig | None = None, seed: int = 0,
                               shard_bytes: int = 2**20) -> Path:
    """Random weights (normal, std 0.02; norm weights 1) at `cfg` (default `tiny_config()`) written as a
    released checkpoint in several shards. Returns the directory."""
    cfg = cfg or tiny_config()
    torch.manual_seed(seed)
    model = OpenVLAModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "layernorm.weight")):
                p.normal_(0.0, 0.02)
    write_checkpoint(model.state_dict(), cfg, directory, released_config(synthetic_norm_stats()),
                     synthetic_tokenizer_json(), shard_bytes=shard_bytes)
    return Path(directory)
