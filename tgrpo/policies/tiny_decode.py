"""Inference-only decoding of the tiny VLA's 7 action tokens with a key/value cache: the function of recomputing
`TinyVLA.logits` for every token, with fewer and larger ops (rollouts and evaluation call it every env step;
training keeps the module path and its gradients).

- LoRA adapters (peft) are folded into each linear layer's weight for the call, W + s B A: one matmul, not three;
- a block's q, k and v are one matmul (their weights stacked);
- the cache is preallocated and written in place, not concatenated per token;
- the last block computes its output at the BOS position only: the context positions' last-layer outputs feed
  nothing (their keys and values, which the action tokens attend to, are still computed).

The folded weights are re-read when any parameter changed (torch's in-place version counters: an optimiser step
bumps them) or an adapter was switched off or on (peft's `disable_adapter()`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from tgrpo.policies import action_tokenizer as at

Linear = tuple[torch.Tensor, torch.Tensor | None]
Norm = tuple[torch.Tensor, torch.Tensor, float]


def folded_linear(module: nn.Module) -> Linear:
    """(weight, bias) of what an nn.Linear, or peft's LoRA wrapper of one, computes now (eval mode)."""
    base = getattr(module, "base_layer", None)
    if base is None:
        return module.weight, module.bias
    weight, bias = base.weight, base.bias
    if module.disable_adapters or module.merged:  # merged: the base weight already holds the adapters
        return weight, bias
    for name in module.active_adapters:
        if name not in module.lora_A:
            continue
        if name in getattr(module, "lora_variant", {}):
            raise NotImplementedError(f"LoRA variant {type(module.lora_variant[name]).__name__} is not folded")
        scale, lora_b = module.scaling[name], module.lora_B[name]
        weight = weight + scale * (lora_b.weight @ module.lora_A[name].weight)
        if lora_b.bias is not None:
            bias = scale * lora_b.bias if bias is None else bias + scale * lora_b.bias
    return weight, bias


def _norm(module: nn.LayerNorm) -> Norm:
    return module.weight, module.bias, module.eps


@dataclass
class _Block:
    norm1: Norm
    qkv: Linear
    o: Linear
    norm2: Norm
    fc1: Linear
    fc2: Linear


def _stacked(parts: list[Linear]) -> Linear:
    biases = [b for _, b in parts]
    bias = None if any(b is None for b in biases) else torch.cat(biases)
    return torch.cat([w for w, _ in parts]), bias


@dataclass
class DecodeState:
    """Keys and values [layers, B, heads, positions, d/heads] of the context, BOS and the tokens so far."""

    keys: torch.Tensor
    values: torch.Tensor
    length: int  # positions filled


class FastDecoder:
    """`start(model, context)` -> (logits of a_0, state); `step(bins, position, state)` -> logits of a_position.

    Same numbers as `TinyVLA.logits` up to float rounding (tests/tgrpo/policies/test_tiny.py)."""

    def __init__(self) -> None:
        self._model: nn.Module | None = None
        self._params: list[torch.Tensor] = []
        self._lora: list[nn.Module] = []
        self._key: tuple | None = None
        self._blocks: list[_Block] = []
        self._head: Linear | None = None
        self._norm: Norm | None = None

    def _weights(self, model: nn.Module) -> None:
        if model is not self._model:  # a new model (or one wrapped with LoRA since): list what to watch
            self._model, self._params = model, list(model.parameters())
            self._lora = [m for m in model.modules() if hasattr(m, "base_layer")]
        key = (tuple(p._version for p in self._params), tuple((m.disable_adapters, m.merged) for m in self._lora))
        if key == self._key:
            return
        self._blocks = [
            _Block(_norm(b.norm1), _stacked([folded_linear(b.q), folded_linear(b.k), folded_linear(b.v)]),
                   folded_linear(b.o), _norm(b.norm2), folded_linear(b.fc1), folded_linear(b.fc2))
            for b in model.blocks
        ]
        self._head, self._norm, self._key = folded_linear(model.head), _norm(model.norm), key
        self._emb, self._pos, self._heads = model.action_emb, model.action_pos, model.cfg.n_heads

    def _block(self, i: int, x: torch.Tensor, heads: int, state: DecodeState, mask: torch.Tensor | None,
               last_only: bool) -> torch.Tensor:
        """x [B, n, d] at cache positions state.length .. + n; returns the block's output (at the last position
        only when `last_only`)."""
        blk = self._blocks[i]
        b, n, d = x.shape
        start, end = state.length, state.length + n
        q, k, v = F.linear(F.layer_norm(x, (d,), *blk.norm1), *blk.qkv) \
            .view(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        state.keys[i, :, :, start:end], state.values[i, :, :, start:end] = k, v
        if last_only:
            q, x, mask = q[:, :, -1:], x[:, -1:], None  # the last position sees every earlier one
        att = F.scaled_dot_product_attention(q, state.keys[i, :, :, :end], state.values[i, :, :, :end],
                                             attn_mask=mask)
        x = x + F.linear(att.transpose(1, 2).reshape(b, -1, d), *blk.o)
        h = F.layer_norm(x, (d,), *blk.norm2)
        return x + F.linear(F.gelu(F.linear(h, *blk.fc1)), *blk.fc2)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.layer_norm(x, (x.shape[-1],), *self._norm), *self._head)

    @torch.no_grad()
    def start(self, model: nn.Module, context: torch.Tensor) -> tuple[torch.Tensor, DecodeState]:
        """context [B, L, d] -> (logits of a_0 [B, V], the cache of context + BOS)."""
        self._weights(model)
        b, length, d = context.shape
        heads, layers = self._heads, len(self._blocks)
        bos = (self._emb.weight[0] + self._pos[0]).expand(b, 1, d)
        x = torch.cat([context, bos], dim=1)
        n = length + 1
        shape = (layers, b, heads, n + at.ACTION_DIM - 1, d // heads)
        state = DecodeState(x.new_empty(shape), x.new_empty(shape), 0)
        mask = torch.ones(n, n, dtype=torch.bool).tril()
        mask[:, :length] = True  # prefix-LM: the context sees itself whole, BOS sees everything
        for i in range(layers):
            x = self._block(i, x, heads, state, mask, last_only=i == layers - 1)
        state.length = n
        return self._logits(x[:, -1]), state

    @torch.no_grad()
    def step(self, bins: torch.Tensor, position: int, state: DecodeState) -> torch.Tensor:
        """bins [B] (1..256) of action token `position - 1` -> logits of a_position [B, V]; extends `state`
        (after `start`, with the weights it read)."""
        x = (self._emb(bins) + self._pos[position])[:, None]
        for i in range(len(self._blocks)):
            x = self._block(i, x, self._heads, state, None, last_only=False)
        state.length += 1
        return self._logits(x[:, -1])
