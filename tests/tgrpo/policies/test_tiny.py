"""The tiny VLA: log-probs agree with acting, greedy is deterministic, save/load round trip, LoRA reference."""

import numpy as np
import pytest
import torch

from tgrpo.policies import action_tokenizer as at
from tgrpo.policies import make_policy
from tgrpo.policies.tiny import StateStats, TinyConfig, TinyPolicy, TinyVLA, add_lora

STATS = at.NormStats(q01=(-0.5,) * 6 + (0.0,), q99=(0.5,) * 6 + (1.0,))
INSTR = ["pick up the alphabet soup and place it in the basket"] * 3


def _policy(**kw) -> TinyPolicy:
    torch.manual_seed(0)
    cfg = TinyConfig(state_dim=16, d_model=32, n_layers=2, words=["pick", "up", "soup", "basket"], **kw)
    return TinyPolicy(TinyVLA(cfg), cfg, STATS)


def _obs():
    return {"state": np.random.default_rng(0).normal(size=(3, 12)).astype(np.float32)}


@pytest.mark.parametrize("vocab_mode", ["action", "full"])
def test_token_logprobs_equal_what_act_reported(vocab_mode):
    policy = _policy(vocab_mode=vocab_mode)
    out = policy.act(_obs(), INSTR, [0, 1, 2], mode="sample")
    assert out.tokens.shape == (3, 7) and out.actions.shape == (3, 7)
    logp = policy.token_logprobs(_obs(), INSTR, torch.from_numpy(out.tokens))
    np.testing.assert_allclose(logp.detach().numpy(), out.logprobs, atol=1e-5)
    assert logp.requires_grad
    # independent check on one token: log_softmax of the teacher-forced logits, picked by hand
    logits = policy.action_logits(_obs(), INSTR, torch.from_numpy(out.tokens))
    column = out.tokens[1, 4] - (at.FIRST_ACTION_TOKEN if vocab_mode == "action" else 0)
    manual = logits[1, 4] - torch.logsumexp(logits[1, 4], dim=0)
    assert manual[column].item() == pytest.approx(out.logprobs[1, 4], abs=1e-5)


@pytest.mark.parametrize("lora", [False, True])
def test_cached_decoding_equals_recomputing_the_whole_sequence(lora):
    """act() decodes with a key/value cache; the slow reference recomputes every position for every token."""
    policy = _policy()
    if lora:
        add_lora(policy, rank=4, alpha=8)
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.05)  # make the adapters matter
    out = policy.act(_obs(), INSTR, [0, 1, 2])
    with torch.no_grad():
        context = policy.context(_obs(), INSTR)
        bins = torch.zeros(3, 0, dtype=torch.long)
        for j in range(7):
            logits = policy.model.logits(context, bins)[:, -1]
            column = logits.argmax(-1)
            np.testing.assert_array_equal(column.numpy() + at.FIRST_ACTION_TOKEN, out.tokens[:, j])
            np.testing.assert_allclose(torch.log_softmax(logits, -1).gather(1, column[:, None])[:, 0].numpy(),
                                       out.logprobs[:, j], atol=1e-5)
            bins = torch.cat([bins, column[:, None] + 1], dim=1)


def test_greedy_is_deterministic_and_actions_decode_tokens():
    policy = _policy()
    a, b = (policy.act(_obs(), INSTR, [0, 1, 2]) for _ in range(2))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.actions, at.tokens_to_env(a.tokens, STATS))
    assert set(np.unique(a.actions[:, 6])) <= {-1.0, 1.0}


def test_save_load_gives_identical_actions(tmp_path):
    policy = _policy()
    policy.save(tmp_path / "ckpt")
    loaded = make_policy("tiny", checkpoint=str(tmp_path / "ckpt"))
    np.testing.assert_array_equal(policy.act(_obs(), INSTR, [0, 1, 2]).tokens,
                                  loaded.act(_obs(), INSTR, [0, 1, 2]).tokens)


def test_state_statistics_standardise_the_padded_state(tmp_path):
    states = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 2.004]])
    stats = StateStats.from_states(states)
    assert stats.mean == pytest.approx((2.0, 5.0, 2.002)) and stats.std == pytest.approx((1.0, 0.01, 0.01))  # floor
    policy = _policy()
    policy.state_stats = StateStats(mean=tuple(np.arange(16.0)), std=(2.0,) * 16)
    raw = np.ones((1, 12), np.float32)  # padded with zeros to 16, then (x - mean) / std
    expected = (np.r_[np.ones(12), np.zeros(4)] - np.arange(16.0)) / 2.0
    np.testing.assert_allclose(policy.encode_state(raw).numpy()[0], expected, rtol=1e-6)
    policy.save(tmp_path / "ckpt")
    loaded = TinyPolicy.load(tmp_path / "ckpt")
    assert loaded.state_stats == policy.state_stats
    np.testing.assert_array_equal(policy.act(_obs(), INSTR, [0, 1, 2]).tokens,
                                  loaded.act(_obs(), INSTR, [0, 1, 2]).tokens)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tiny checkpoint"):
        make_policy("tiny", checkpoint=str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="--checkpoint"):
        make_policy("tiny")


def test_lora_reference_is_the_base_model():
    policy = _policy()
    tokens = torch.from_numpy(policy.act(_obs(), INSTR, [0, 1, 2]).tokens)
    before = policy.token_logprobs(_obs(), INSTR, tokens).detach()
    add_lora(policy, rank=4, alpha=8)
    for name, param in policy.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)  # make the adapters change the outputs
    adapted = policy.token_logprobs(_obs(), INSTR, tokens).detach()
    with policy.model.disable_adapter():
        reference = policy.token_logprobs(_obs(), INSTR, tokens).detach()
    torch.testing.assert_close(reference, before)
    assert not torch.allclose(adapted, before)
    trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_image_variant_uses_the_image():
    torch.manual_seed(0)
    cfg = TinyConfig(variant="image", d_model=32, n_layers=1, words=["soup"])
    policy = TinyPolicy(TinyVLA(cfg), cfg, STATS)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    tokens = torch.from_numpy(policy.act({"image": img}, INSTR[:2], [0, 1]).tokens)
    a = policy.token_logprobs({"image": img}, INSTR[:2], tokens)
    b = policy.token_logprobs({"image": 255 - img}, INSTR[:2], tokens)
    assert not torch.allclose(a, b)


def test_sampled_actions_depend_on_the_episode_not_on_the_batch():
    """A sampled episode acts the same alone or batched with others, in any slot; another key samples differently."""
    policy = _policy()
    obs = _obs()
    for slot, key in ((0, (3, 0)), (1, (3, 1)), (2, (3, 2))):
        policy.begin_episode(slot, INSTR[0], key)
    batched = [policy.act(obs, INSTR, [0, 1, 2], mode="sample", temperature=2.0).tokens for _ in range(3)]
    policy.begin_episode(7, INSTR[0], (3, 1))  # episode (3, 1) again, alone, in another slot
    alone = [policy.act({"state": obs["state"][1:2]}, INSTR[:1], [7], mode="sample", temperature=2.0).tokens
             for _ in range(3)]
    for b, a in zip(batched, alone, strict=True):
        np.testing.assert_array_equal(a[0], b[1])
    assert not np.array_equal(batched[0][0], batched[0][1]) or not np.array_equal(batched[1][0], batched[1][1])


def test_checkpoint_hash_ignores_where_it_came_from_but_not_its_weights(tmp_path):
    """The same weights saved by two runs (other paths and epochs in origin.json) hash alike; one changed weight
    does not."""
    import json

    import torch

    from tgrpo.policies import action_tokenizer as at
    from tgrpo.policies.tiny import TinyConfig, TinyPolicy, TinyVLA

    torch.manual_seed(0)
    cfg = TinyConfig(state_dim=8, d_model=16, n_layers=1, words=["pick", "up"])
    policy = TinyPolicy(TinyVLA(cfg), cfg, at.NormStats((-1.0,) * 6 + (0.0,), (1.0,) * 6 + (1.0,)))
    a = policy.save(tmp_path / "store_a" / "best", {"sft_config": {"out_dir": "/store/a"}, "epoch": 3})
    b = policy.save(tmp_path / "store_b" / "best", {"sft_config": {"out_dir": "/elsewhere/b"}, "epoch": 7})
    assert a == b
    assert json.loads((tmp_path / "store_b" / "best" / "origin.json").read_text())["epoch"] == 7
    with torch.no_grad():
        next(policy.model.parameters()).view(-1)[0] += 1.0
    assert policy.save(tmp_path / "store_c" / "best") != a
