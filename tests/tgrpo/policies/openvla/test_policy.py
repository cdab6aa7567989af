"""The `openvla` policy's training contract: LoRA where OpenVLA's fine-tuning puts it, the reference policy (adapters
disabled) equal to the base model, the action head, and checkpoints written with and without adapters."""

import numpy as np
import pytest
import torch

from tgrpo.policies.openvla.policy import OpenVLAPolicy, OpenVLASettings

INSTRUCTIONS = ["put the bowl on the plate", "put the bowl on the plate"]
TOKENS = torch.tensor([[31744, 31800, 31999, 31900, 31850, 31760, 31990], [31999, 31744, 31870, 31871, 31744, 31900,
                                                                            31801]])


def _obs() -> dict:
    return {"image": np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)}


def _load(directory, key="libero_goal"):
    return OpenVLAPolicy.load(directory, settings=OpenVLASettings(unnorm_key=key))


@pytest.fixture(scope="module")
def adapted(tiny_checkpoint):
    """The policy with LoRA adapters whose B matrices are non-zero (as after some training)."""
    policy = _load(tiny_checkpoint)
    torch.manual_seed(0)
    policy.add_adapters(rank=4, alpha=8)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)
    return policy


def test_lora_wraps_every_linear_layer_that_runs_but_the_output_layer(adapted):
    wrapped = {n.removeprefix("base_model.model.").removesuffix(".base_layer")
               for n, m in adapted.model.named_modules() if n.endswith("base_layer")}
    linears = {n.removesuffix(".base_layer") for n, m in adapted.net.named_modules()
               if isinstance(m, torch.nn.Linear) and ".lora_" not in n}
    linears.discard("language_model.lm_head")
    never_run = ("vision_backbone.featurizer.blocks.2.", "vision_backbone.fused_featurizer.blocks.2.",
                 "vision_backbone.fused_featurizer.attn_pool.")  # tiny towers: 3 blocks, features after block 1
    assert wrapped == {n for n in linears if not n.startswith(never_run)}
    assert {"vision_backbone.featurizer.blocks.1.attn.qkv", "projector.fc1",
            "language_model.model.layers.1.mlp.down_proj"} <= wrapped
    assert all("lora_" in n for n, p in adapted.model.named_parameters() if p.requires_grad)


def test_reference_logprobs_equal_the_base_models(adapted, tiny_checkpoint):
    base = _load(tiny_checkpoint).token_logprobs(_obs(), INSTRUCTIONS, TOKENS, 0.8)
    with torch.no_grad():
        adapted_logp = adapted.token_logprobs(_obs(), INSTRUCTIONS, TOKENS, 0.8)
        with adapted.reference():
            reference = adapted.token_logprobs(_obs(), INSTRUCTIONS, TOKENS, 0.8)
    torch.testing.assert_close(reference, base.detach(), rtol=0, atol=1e-6)
    assert (adapted_logp - reference).abs().max() > 1e-3  # the adapters do change the policy


def test_head_weight_is_the_lm_heads_action_rows(adapted):
    hidden = adapted.action_hidden(_obs(), INSTRUCTIONS, TOKENS)
    assert hidden.shape == (2, 7, adapted.net.cfg.llm.hidden)
    full = adapted.net.lm_head(hidden)
    torch.testing.assert_close(adapted.action_logits(_obs(), INSTRUCTIONS, TOKENS), full[..., 31744:32000])
    assert adapted.token_columns(TOKENS).min() == 0 and adapted.token_columns(TOKENS).max() == 255


def test_logprobs_are_differentiable_into_every_adapter(adapted):
    adapted.token_logprobs(_obs(), INSTRUCTIONS, TOKENS).sum().backward()
    grads = {n: p.grad for n, p in adapted.model.named_parameters() if p.requires_grad}
    assert all(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "lora_A" in n)
    assert all(p.grad is None for p in adapted.model.parameters() if not p.requires_grad)
    adapted.model.zero_grad(set_to_none=True)


def test_save_and_export_merged_reload_the_same_policy(adapted, tmp_path):
    with torch.no_grad():
        expected = adapted.token_logprobs(_obs(), INSTRUCTIONS, TOKENS)
        adapted.save(tmp_path / "saved", extra={"note": 1})
        adapted.export_merged(tmp_path / "merged")
        saved, merged = _load(tmp_path / "saved"), _load(tmp_path / "merged")
        torch.testing.assert_close(saved.token_logprobs(_obs(), INSTRUCTIONS, TOKENS), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(merged.token_logprobs(_obs(), INSTRUCTIONS, TOKENS), expected, rtol=0, atol=1e-5)
    assert not hasattr(merged.model, "disable_adapter")  # a plain checkpoint: no peft needed to run it
    assert saved.unnorm_key == merged.unnorm_key == "libero_goal_no_noops"


def test_trainable_state_round_trip(adapted, tiny_checkpoint):
    other = _load(tiny_checkpoint)
    other.add_adapters(rank=4, alpha=8)
    other.load_trainable_state(adapted.trainable_state())
    with torch.no_grad():
        torch.testing.assert_close(other.token_logprobs(_obs(), INSTRUCTIONS, TOKENS),
                                   adapted.token_logprobs(_obs(), INSTRUCTIONS, TOKENS))
    with pytest.raises(ValueError, match="does not match"):
        other.load_trainable_state({})


def test_activation_checkpointing_gives_the_same_gradient(tiny_checkpoint):
    grads = []
    for checkpointing in (False, True):
        policy = OpenVLAPolicy.load(tiny_checkpoint, settings=OpenVLASettings(
            unnorm_key="libero_goal", activation_checkpointing=checkpointing))
        torch.manual_seed(0)
        policy.add_adapters(rank=4, alpha=8)
        policy.set_training(True)
        policy.token_logprobs(_obs(), INSTRUCTIONS, TOKENS).sum().backward()
        grads.append({n: p.grad for n, p in policy.model.named_parameters() if p.requires_grad})
    assert policy.net.language_model.is_activation_checkpointing
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7, msg=name)
