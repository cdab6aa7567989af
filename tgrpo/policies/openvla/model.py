"""OpenVLA's composition (prismatic's `PrismaticForConditionalGeneration`, written here without remote code):

    pixels [B, 6, S, S] -> DINOv2 on channels 0-2, SigLIP on 3-5 -> patch features concatenated on channels
    [B, 256, 2176] -> projector fc1 -> GELU -> fc2 -> GELU -> fc3 -> [B, 256, H]
    LLM input: embedding(BOS), the 256 projected patches, embedding(rest of the prompt), in that order.

The language model is transformers' `LlamaForCausalLM` (SDPA attention); module names follow the released
checkpoints (`vision_backbone.featurizer`, `vision_backbone.fused_featurizer`, `projector`, `language_model`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tgrpo.policies.openvla.config import OpenVLAConfig
from tgrpo.policies.openvla.vit import ViTFeaturizer

ATTENTION = "sdpa"  # OpenVLA's released numbers used flash-attention 2 (docs/deviations.md)


class VisionBackbone(nn.Module):
    def __init__(self, cfg: OpenVLAConfig):
        super().__init__()
        self.featurizer = ViTFeaturizer(cfg.dino, cfg.image_size, cfg.patch)
        self.fused_featurizer = ViTFeaturizer(cfg.siglip, cfg.image_size, cfg.patch)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 6, S, S] (DINO-normalised RGB, then SigLIP-normalised RGB) -> [B, P, D_dino + D_siglip]."""
        dino, siglip = torch.split(pixels, [3, 3], dim=1)
        return torch.cat([self.featurizer(dino), self.fused_featurizer(siglip)], dim=2)


class Projector(nn.Module):
    def __init__(self, vision: int, llm: int):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(vision, 4 * vision), nn.Linear(4 * vision, llm), nn.Linear(llm, llm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(F.gelu(self.fc2(F.gelu(self.fc1(x)))))


class OpenVLAModel(nn.Module):
    """The whole network. Build the 7B one on the meta device (`with torch.device("meta")`) unless it runs."""

    def __init__(self, cfg: OpenVLAConfig):
        super().__init__()
        from transformers import LlamaForCausalLM

        self.cfg = cfg
        self.vision_backbone = VisionBackbone(cfg)
        self.projector = Projector(cfg.vision_width, cfg.llm.hidden)
        llama = cfg.llm.llama_config()
        llama._attn_implementation = ATTENTION
        self.language_model = LlamaForCausalLM(llama)

    def image_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 6, S, S] -> projected patch embeddings [B, P, H]."""
        return self.projector(self.vision_backbone(pixels))

    def input_embeddings(self, input_ids: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """Prompt ids [B, L] (BOS first) and pixels -> the LLM's input [B, 1 + P + L - 1, H]."""
        text = self.embed_tokens(input_ids)
        image = self.image_embeddings(pixels).to(text.dtype)
        return torch.cat([text[:, :1], image, text[:, 1:]], dim=1)

    def hidden(self, embeddings: torch.Tensor, cache=None) -> torch.Tensor:
        """Final (normed) hidden states [B, n, H] of the LLM for input embeddings [B, n, H] that follow what `cache`
        holds (a transformers Cache, extended in place; None: no cache, positions from 0)."""
        return self.language_model.model(inputs_embeds=embeddings, cache=cache, use_cache=cache is not None)\
            .last_hidden_state

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.get_input_embeddings()(ids)

    @property
    def lm_head(self) -> nn.Module:
        return self.language_model.lm_head
