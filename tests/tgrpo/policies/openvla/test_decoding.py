"""Decoding and inputs of the `openvla` policy against slow, independent recomputations: the whole sequence run
through transformers' own LlamaForCausalLM forward (no cache, full logits) at every step; the prompt's ids spelled
out character by character; the pixel normalisation by hand; the actions by OpenVLA's un-normalisation formula."""

import numpy as np
import pytest
import torch
from PIL import Image

from tgrpo.policies.openvla.policy import OpenVLAPolicy, OpenVLASettings
from tgrpo.policies.openvla.processor import pixel_values

INSTRUCTIONS = ["Pick up the alphabet soup and place it in the basket", "open the top drawer of the cabinet"]


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    return OpenVLAPolicy.load(tiny_checkpoint, settings=OpenVLASettings(unnorm_key="libero_object"))


def _obs(seed: int, n: int = 2) -> dict:
    return {"image": np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)}


def _slow_logits(policy, obs, instructions, tokens):
    """Full-vocabulary logits [B, 7, V] at the 7 action positions, each from a fresh uncached forward pass of the
    whole sequence (prompt, then the action tokens before it) through LlamaForCausalLM itself."""
    net = policy.net
    out = []
    for row, text in enumerate(instructions):
        ids = torch.tensor([policy.prompts.encode(text)])
        prompt = net.input_embeddings(ids, pixel_values(obs["image"][row:row + 1], 224))
        steps = []
        for j in range(7):
            seq = torch.cat([prompt, net.embed_tokens(torch.as_tensor(tokens[row:row + 1, :j]))], dim=1)
            steps.append(net.language_model(inputs_embeds=seq).logits[0, -1])
        out.append(torch.stack(steps))
    return torch.stack(out).float()


@torch.no_grad()
def test_greedy_cached_decoding_equals_full_recompute(policy):
    obs = _obs(0)
    act = policy.act(obs, INSTRUCTIONS, [0, 1], mode="greedy")
    logits = _slow_logits(policy, obs, INSTRUCTIONS, act.tokens)
    assert np.array_equal(act.tokens, logits.argmax(-1).numpy())
    slow = torch.log_softmax(logits, -1).gather(2, torch.from_numpy(act.tokens)[..., None])[..., 0]
    np.testing.assert_allclose(act.logprobs, slow.numpy(), rtol=0, atol=1e-5)


@torch.no_grad()
def test_sampled_tokens_and_logprobs_equal_full_recompute_at_temperature(policy):
    obs, temperature = _obs(1), 0.7
    for slot in (0, 1):
        policy.begin_episode(slot, INSTRUCTIONS[slot], (3, slot))
    act = policy.act(obs, INSTRUCTIONS, [0, 1], mode="sample", temperature=temperature)
    assert ((act.tokens >= 31744) & (act.tokens < 32000)).all()  # RL samples action tokens only
    logits = _slow_logits(policy, obs, INSTRUCTIONS, act.tokens)[..., 31744:32000] / temperature
    slow = torch.log_softmax(logits, -1).gather(2, torch.from_numpy(act.tokens - 31744)[..., None])[..., 0]
    np.testing.assert_allclose(act.logprobs, slow.numpy(), rtol=0, atol=1e-5)
    teacher = policy.token_logprobs(obs, INSTRUCTIONS, torch.from_numpy(act.tokens), temperature)
    np.testing.assert_allclose(teacher.numpy(), slow.numpy(), rtol=0, atol=1e-5)
    for slot in (0, 1):  # the same episode keys draw the same tokens
        policy.begin_episode(slot, INSTRUCTIONS[slot], (3, slot))
    again = policy.act(obs, INSTRUCTIONS, [0, 1], mode="sample", temperature=temperature)
    assert np.array_equal(again.tokens, act.tokens)


@torch.no_grad()
def test_different_images_give_different_logits(policy):
    tokens = np.full((2, 7), 31900)
    a = policy.action_logits(_obs(2), INSTRUCTIONS, tokens)
    b = policy.action_logits(_obs(3), INSTRUCTIONS, tokens)
    assert torch.equal(a, policy.action_logits(_obs(2), INSTRUCTIONS, tokens))
    assert (a - b).abs().max() > 1e-4


def test_prompt_ids_as_openvla_builds_them(policy):
    """BOS, the prompt `In: What action should the robot take to {lower-cased}?\\nOut:` (our synthetic
    tokenizer: one id per character, "▁" for spaces and in front, byte fallback for the newline), then "▁"."""
    vocab = policy.prompts.tokenizer.get_vocab()
    text = "\u2581In:\u2581What\u2581action\u2581should\u2581the\u2581robot\u2581take\u2581to\u2581open\u2581it?"
    expected = [1] + [vocab[c] for c in text] + [vocab["<0x0A>"]] + [vocab[c] for c in "Out:"] + [29871]
    assert list(policy.prompts.encode("Open IT")) == expected


def test_pixel_values_as_the_released_processor():
    image = np.full((1, 224, 224, 3), 128, np.uint8)
    image[0, 0, 0] = (0, 255, 10)
    x = pixel_values(image, 224)
    assert x.shape == (1, 6, 224, 224)
    dino_mean, dino_std = (0.484375, 0.455078125, 0.40625), (0.228515625, 0.2236328125, 0.224609375)
    for c in range(3):
        assert x[0, c, 5, 5].item() == pytest.approx((128 / 255 - dino_mean[c]) / dino_std[c], abs=1e-6)
        assert x[0, 3 + c, 5, 5].item() == pytest.approx((128 / 255 - 0.5) / 0.5, abs=1e-6)
    assert x[0, 1, 0, 0].item() == pytest.approx((1.0 - dino_mean[1]) / dino_std[1], abs=1e-6)
    big = np.random.default_rng(0).integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    resized = np.array(Image.fromarray(big[0]).resize((224, 224), Image.Resampling.BICUBIC))
    torch.testing.assert_close(pixel_values(big, 224)[0, 3:], torch.from_numpy(resized).permute(2, 0, 1) / 127.5 - 1)


def test_actions_are_unnormalised_with_the_keys_statistics(policy, tiny_checkpoint):
    import json

    stats = json.loads((tiny_checkpoint / "config.json").read_text())["norm_stats"]["libero_object_no_noops"]
    q01, q99 = np.array(stats["action"]["q01"]), np.array(stats["action"]["q99"])
    act = policy.act(_obs(4), INSTRUCTIONS, [0, 1], mode="greedy")
    bins = np.linspace(-1, 1, 256)
    centers = (bins[:-1] + bins[1:]) / 2
    x = centers[np.clip(32000 - act.tokens - 1, 0, 254)]
    expected = 0.5 * (x + 1) * (q99 - q01) + q01
    expected[:, 6] = -np.sign(2 * x[:, 6] - 1)  # OpenVLA's LIBERO gripper: [0, 1] open=1 -> -1 open / +1 close
    np.testing.assert_allclose(act.actions, expected)
