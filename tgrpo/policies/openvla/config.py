"""OpenVLA-7B's architecture as numbers, and the scaled-down copy the tests build (docs/openvla.md).

The released checkpoints describe the model by backbone ids only (`dinosiglip-vit-so-224px`, `llama2-7b-pure`);
the sizes below are those backbones' (timm `vit_large_patch14_reg4_dinov2`, `vit_so400m_patch14_siglip_224`,
Llama-2-7B with LlamaConfig's defaults). A checkpoint written by this project at another size records its
`OpenVLAConfig` in config.json under `ARCH_KEY`; a released checkpoint has no such entry and is full size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tgrpo.policies import action_tokenizer as at

ARCH_KEY = "tgrpo_architecture"  # config.json entry of project-written checkpoints at a non-released size
VISION_BACKBONE_ID = "dinosiglip-vit-so-224px"
LLM_BACKBONE_PREFIX = "llama2-7b"
IMAGE_SIZE = 224
PATCH = 14


@dataclass(frozen=True)
class ViTConfig:
    """One timm VisionTransformer as OpenVLA creates it (`img_size=224, num_classes=0`).

    reg_tokens / class_token: DINOv2-reg4 has cls + 4 registers (pos_embed over the patches only); SigLIP neither.
    layer_scale: LayerScale after attention and MLP (DINOv2). attn_pool: SigLIP's `map` pooling head, held so the
    released state dict loads strictly; OpenVLA never calls it.
    """

    width: int
    depth: int
    heads: int
    mlp_hidden: int
    reg_tokens: int = 0
    class_token: bool = False
    layer_scale: bool = False
    attn_pool: bool = False

    @property
    def prefix_tokens(self) -> int:
        return int(self.class_token) + self.reg_tokens

    @property
    def feature_block(self) -> int:
        """Index of the block whose output is the feature (OpenVLA: `get_intermediate_layers(n={depth - 2})`)."""
        return self.depth - 2


DINO = ViTConfig(width=1024, depth=24, heads=16, mlp_hidden=4096, reg_tokens=4, class_token=True, layer_scale=True)
SIGLIP = ViTConfig(width=1152, depth=27, heads=16, mlp_hidden=4304, attn_pool=True)


@dataclass(frozen=True)
class LLMConfig:
    """The Llama-2 language model; every field not here is LlamaConfig's default (rms_norm_eps 1e-6, rope 1e4)."""

    hidden: int = 4096
    intermediate: int = 11008
    layers: int = 32
    heads: int = 32
    vocab: int = at.PADDED_VOCAB
    pad_token_id: int = at.LLAMA_VOCAB
    max_positions: int = 2048

    def llama_config(self):
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=self.vocab, hidden_size=self.hidden, intermediate_size=self.intermediate,
                           num_hidden_layers=self.layers, num_attention_heads=self.heads,
                           num_key_value_heads=self.heads, max_position_embeddings=self.max_positions,
                           pad_token_id=self.pad_token_id, rms_norm_eps=1e-6, tie_word_embeddings=False)


@dataclass(frozen=True)
class OpenVLAConfig:
    """The whole model: two featurizers, the fused-GELU projector (vision -> 4 x vision -> llm -> llm), the LLM."""

    dino: ViTConfig = DINO
    siglip: ViTConfig = SIGLIP
    llm: LLMConfig = field(default_factory=LLMConfig)
    image_size: int = IMAGE_SIZE
    patch: int = PATCH

    def __post_init__(self) -> None:
        if self.image_size % self.patch:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the patch size {self.patch}")
        if self.llm.vocab < at.LLAMA_VOCAB:
            raise ValueError(f"the vocabulary must hold the action tokens (ids up to {at.LLAMA_VOCAB - 1})")

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch) ** 2

    @property
    def vision_width(self) -> int:
        return self.dino.width + self.siglip.width

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> OpenVLAConfig:
        return cls(ViTConfig(**d["dino"]), ViTConfig(**d["siglip"]), LLMConfig(**d["llm"]), d["image_size"], d["patch"])


def tiny_config() -> OpenVLAConfig:
    """OpenVLA's structure at test size: every module and key kept, widths and depths scaled down, the vocabulary
    and the 256 patches kept (action ids and the image path are the real ones)."""
    return OpenVLAConfig(
        dino=ViTConfig(width=16, depth=3, heads=2, mlp_hidden=64, reg_tokens=4, class_token=True, layer_scale=True),
        siglip=ViTConfig(width=24, depth=3, heads=2, mlp_hidden=40, attn_pool=True),
        llm=LLMConfig(hidden=32, intermediate=64, layers=2, heads=4),
    )
