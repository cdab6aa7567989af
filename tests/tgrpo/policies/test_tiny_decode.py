"""The inference path act() decodes with: LoRA folding, and re-reading weights when they change."""

import numpy as np
import torch

from tgrpo.policies import action_tokenizer as at
from tgrpo.policies.tiny import TinyConfig, TinyPolicy, TinyVLA, add_lora
from tgrpo.policies.tiny_decode import folded_linear

STATS = at.NormStats(q01=(-0.5,) * 6 + (0.0,), q99=(0.5,) * 6 + (1.0,))
INSTR = ["pick up the alphabet soup and place it in the basket"] * 3


def _policy(lora: bool = False) -> TinyPolicy:
    torch.manual_seed(0)
    cfg = TinyConfig(state_dim=16, d_model=32, n_layers=2, words=["pick", "up", "soup", "basket"])
    policy = TinyPolicy(TinyVLA(cfg), cfg, STATS)
    if lora:
        add_lora(policy, rank=4, alpha=8)
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)  # make the adapters change the outputs
    return policy


def _obs():
    return {"state": np.random.default_rng(0).normal(size=(3, 12)).astype(np.float32)}


def _greedy_by_recomputing(policy: TinyPolicy) -> np.ndarray:
    """The slow reference: every token recomputes the whole sequence through the nn.Module stack."""
    with torch.no_grad():
        context = policy.context(_obs(), INSTR)
        bins = torch.zeros(3, 0, dtype=torch.long)
        for _ in range(7):
            bins = torch.cat([bins, policy.model.logits(context, bins)[:, -1].argmax(-1, keepdim=True) + 1], dim=1)
    return (bins - 1 + at.FIRST_ACTION_TOKEN).numpy()


def test_folded_lora_weight_computes_what_the_wrapped_layer_computes():
    policy = _policy(lora=True)
    layer = policy.model.base_model.model.blocks[0].fc1
    x = torch.randn(5, 32)
    weight, bias = folded_linear(layer)
    with torch.no_grad():
        torch.testing.assert_close(torch.nn.functional.linear(x, weight, bias), layer(x))
        base = layer.base_layer
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        by_hand = x @ base.weight.T + base.bias + layer.scaling["default"] * (x @ a.T @ b.T)
        torch.testing.assert_close(layer(x), by_hand)


def test_act_follows_an_optimiser_step_and_switched_off_adapters():
    policy = _policy(lora=True)
    before = policy.act(_obs(), INSTR, [0, 1, 2]).tokens
    np.testing.assert_array_equal(before, _greedy_by_recomputing(policy))
    optimiser = torch.optim.SGD([p for p in policy.model.parameters() if p.requires_grad], lr=5.0)
    (-policy.token_logprobs(_obs(), INSTR, torch.from_numpy(before)).sum()).backward()
    optimiser.step()  # in place: the decoder must notice
    after = policy.act(_obs(), INSTR, [0, 1, 2]).tokens
    np.testing.assert_array_equal(after, _greedy_by_recomputing(policy))
    with policy.model.disable_adapter():
        base = policy.act(_obs(), INSTR, [0, 1, 2]).tokens
        np.testing.assert_array_equal(base, _greedy_by_recomputing(policy))
    assert not np.array_equal(base, after)
    np.testing.assert_array_equal(policy.act(_obs(), INSTR, [0, 1, 2]).tokens, after)  # adapters back on
