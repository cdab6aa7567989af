"""The composition equals a slow reference written by hand from the same weights: patch embedding as explicit
per-patch matmuls, attention as softmax(q k^T / sqrt(d)) v, features of block depth - 2 without the prefix tokens
and without the final norm, DINO channels before SigLIP's, the projector, and [BOS | patches | prompt] order."""

import math

import pytest
import torch

from tgrpo.policies.openvla.config import tiny_config
from tgrpo.policies.openvla.model import OpenVLAModel


def _ln(x, p, name):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-6) * p[f"{name}.weight"] + p[f"{name}.bias"]


def _lin(x, p, name):
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def _gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def _vit(p, pre, cfg, pixels, last_block, final_norm=False):
    """A timm ViT by hand; returns the tokens after block `last_block` without the prefix tokens."""
    b, d, grid = pixels.shape[0], cfg.width, 224 // 14
    w = p[f"{pre}.patch_embed.proj.weight"].reshape(d, -1)
    patches = torch.stack([pixels[:, :, 14 * i:14 * i + 14, 14 * j:14 * j + 14].reshape(b, -1) @ w.T
                           for i in range(grid) for j in range(grid)], dim=1) + p[f"{pre}.patch_embed.proj.bias"]
    x = patches + p[f"{pre}.pos_embed"]
    prefix = []
    if cfg.class_token:
        prefix.append(p[f"{pre}.cls_token"].expand(b, 1, d))
    if cfg.reg_tokens:
        prefix.append(p[f"{pre}.reg_token"].expand(b, cfg.reg_tokens, d))
    x = torch.cat([*prefix, x], dim=1)
    hd = d // cfg.heads
    for i in range(last_block + 1):
        blk = f"{pre}.blocks.{i}"
        qkv = _lin(_ln(x, p, f"{blk}.norm1"), p, f"{blk}.attn.qkv").reshape(b, -1, 3, cfg.heads, hd)
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
        y = _lin(att.transpose(1, 2).reshape(b, -1, d), p, f"{blk}.attn.proj")
        x = x + (y * p[f"{blk}.ls1.gamma"] if cfg.layer_scale else y)
        y = _lin(_gelu(_lin(_ln(x, p, f"{blk}.norm2"), p, f"{blk}.mlp.fc1")), p, f"{blk}.mlp.fc2")
        x = x + (y * p[f"{blk}.ls2.gamma"] if cfg.layer_scale else y)
    if final_norm:
        x = _ln(x, p, f"{pre}.norm")
    return x[:, cfg.prefix_tokens:]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = OpenVLAModel(tiny_config()).eval()
    with torch.no_grad():
        for param in net.parameters():
            param.normal_(0.0, 0.3)  # large enough that every block, token and norm changes the output
    return net


def _reference(net, pixels, ids, **vit_options):
    cfg, p = net.cfg, net.state_dict()
    feats = []
    for pre, vcfg, chans in (("vision_backbone.featurizer", cfg.dino, slice(0, 3)),
                             ("vision_backbone.fused_featurizer", cfg.siglip, slice(3, 6))):
        last = vit_options.get("last_block", vcfg.depth - 2)
        feats.append(_vit(p, pre, vcfg, pixels[:, chans], last, vit_options.get("final_norm", False)))
    x = torch.cat(feats, dim=2)
    image = _lin(_gelu(_lin(_gelu(_lin(x, p, "projector.fc1")), p, "projector.fc2")), p, "projector.fc3")
    text = p["language_model.model.embed_tokens.weight"][ids]
    return torch.cat([text[:, :1], image, text[:, 1:]], dim=1)


def test_input_embeddings_equal_the_hand_written_composition(model):
    torch.manual_seed(1)
    pixels, ids = torch.randn(2, 6, 224, 224), torch.randint(0, 32064, (2, 9))
    with torch.no_grad():
        ours = model.input_embeddings(ids, pixels)
        ref = _reference(model, pixels, ids)
        assert ours.shape == (2, 1 + 256 + 8, model.cfg.llm.hidden)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
        # the reference is sensitive to each choice it pins: the last block, the final norm
        for wrong in ({"last_block": 2}, {"last_block": 0}, {"final_norm": True}):
            assert (_reference(model, pixels, ids, **wrong) - ref).abs().max() > 1e-2


def test_swapping_the_two_image_halves_changes_the_embeddings(model):
    torch.manual_seed(2)
    pixels, ids = torch.randn(1, 6, 224, 224), torch.tensor([[1, 5, 6]])
    with torch.no_grad():
        swapped = torch.cat([pixels[:, 3:], pixels[:, :3]], dim=1)
        assert (model.input_embeddings(ids, pixels) - model.input_embeddings(ids, swapped)).abs().max() > 1e-2
