"""The two vision featurizers of OpenVLA in plain torch, with timm's VisionTransformer parameter names, so the
released state dict loads into them strictly (timm itself needs torchvision, which does not load here).

What OpenVLA computes (its `get_intermediate_layers(n={depth - 2})` call on timm 0.9 ViTs): patch embedding
(a 14x14 stride-14 convolution), position embedding added to the patch tokens only, the prefix tokens (DINOv2:
cls then 4 registers; SigLIP: none) put in front, the pre-norm blocks up to and including the second-to-last one,
no final norm, prefix tokens dropped. Blocks: ``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))`` with
LayerNorm eps 1e-6, qkv with bias split as [3, heads, head_dim], exact GELU, LayerScale only in DINOv2.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tgrpo.policies.openvla.config import ViTConfig

LN_EPS = 1e-6


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, N, D] -> [B, N, D], bidirectional."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class LayerScale(nn.Module):
    """Per-channel scale; stored as `.scale_factor` in OpenVLA's checkpoints (renamed on load)."""

    def __init__(self, width: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((width,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=LN_EPS)
        self.attn = Attention(cfg.width, cfg.heads)
        self.ls1 = LayerScale(cfg.width) if cfg.layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(cfg.width, eps=LN_EPS)
        self.mlp = Mlp(cfg.width, cfg.mlp_hidden)
        self.ls2 = LayerScale(cfg.width) if cfg.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, width: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(3, width, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, (H / p) * (W / p), D], row-major patches."""
        return self.proj(x).flatten(2).transpose(1, 2)


class AttentionPoolLatent(nn.Module):
    """The parameters of SigLIP's `map` pooling head (timm's AttentionPoolLatent); OpenVLA never calls it."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.latent = nn.Parameter(torch.zeros(1, 1, width))
        self.q, self.kv, self.proj = nn.Linear(width, width), nn.Linear(width, 2 * width), nn.Linear(width, width)
        self.norm = nn.LayerNorm(width, eps=LN_EPS)
        self.mlp = Mlp(width, hidden)


class ViTFeaturizer(nn.Module):
    """One timm ViT as OpenVLA uses it: pixels [B, 3, S, S] -> patch features [B, (S / 14)^2, D]."""

    def __init__(self, cfg: ViTConfig, image_size: int, patch: int):
        super().__init__()
        self.cfg = cfg
        n_patches = (image_size // patch) ** 2
        if cfg.class_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        if cfg.reg_tokens:
            self.reg_token = nn.Parameter(torch.zeros(1, cfg.reg_tokens, cfg.width))
        self.pos_embed = nn.Parameter(torch.randn(1, n_patches, cfg.width) * 0.02)
        self.patch_embed = PatchEmbed(cfg.width, patch)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, eps=LN_EPS)  # held for strict loading: features are taken before it
        if cfg.attn_pool:
            self.attn_pool = AttentionPoolLatent(cfg.width, cfg.mlp_hidden)

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """The token sequence entering block 0: [prefix tokens | patches + pos_embed], [B, prefix + P, D]."""
        x = self.patch_embed(pixels) + self.pos_embed
        prefix = [t for name in ("cls_token", "reg_token") if (t := getattr(self, name, None)) is not None]
        return torch.cat([t.expand(x.shape[0], -1, -1) for t in prefix] + [x], dim=1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Output of block `depth - 2` without the prefix tokens (the last block's output would feed nothing)."""
        x = self.tokens(pixels)
        for block in self.blocks[: self.cfg.feature_block + 1]:
            x = block(x)
        return x[:, self.cfg.prefix_tokens:]
