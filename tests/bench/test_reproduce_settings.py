"""`--setting` overrides of the RL stages: typed, validated, defaults dropped, one RL stage per setting, and the
values reach the RL config the stage runs."""

from __future__ import annotations

import pytest

from bench.reproduce.plan import build_plan
from bench.reproduce.settings import label, normalise, parse_setting, rl_kwargs
from tgrpo.rl.config import for_profile


def test_parse_splits_pairs_and_refuses_malformed_ones():
    assert parse_setting("a1=0.1,a2=0.9") == {"a1": "0.1", "a2": "0.9"}
    for bad in ("a1", "a1=", "=3", "a1=0.1,a1=0.2"):
        with pytest.raises(ValueError, match="--setting"):
            parse_setting(bad)


def test_values_are_typed_by_the_field_and_defaults_dropped():
    # small profile defaults: a1 0.3, a2 0.7, group_size 4, epochs 1, lr 1e-4, loss.clip_eps 0.2, max_steps None
    assert normalise("small", {"a1": "0.1", "a2": "0.9"}) == {"a1": 0.1, "a2": 0.9}
    assert normalise("small", {"a1": "0.3", "a2": "0.7", "group_size": "4", "lr": "1e-4"}) == {}
    assert normalise("small", {"epochs": "2", "stop_rule": "independent"}) == {"epochs": 2,
                                                                                "stop_rule": "independent"}
    assert normalise("small", {"max_steps": "none", "loss.clip_eps": "0.1"}) == {"loss.clip_eps": 0.1}
    assert normalise("smoke", {"max_steps": "none"}) == {"max_steps": None}  # smoke's default is 20


@pytest.mark.parametrize(("raw", "message"), [
    ({"group_size": "2.5"}, "expected int"), ({"a1": "high"}, "expected float"), ({"seed": "1"}, "harness"),
    ({"task_id": "1"}, "harness"), ({"bogus": "1"}, "unknown field"), ({"loss.bogus": "1"}, "unknown field"),
    ({"optim.lr": "1"}, "unknown prefix"), ({"group_size": "1"}, "at least 2"), ({"stop_rule": "x"}, "stop_rule"),
    ({"loss.clip_eps": "1.5"}, "clip_eps"),
])
def test_bad_settings_are_refused_naming_the_problem(raw, message):
    with pytest.raises(ValueError, match=message):
        normalise("small", raw)


def test_nested_settings_rebuild_their_dataclass_and_keep_the_rest():
    cfg = for_profile("small", method="tgrpo", suite="libero_object", task_id=1, init_checkpoint=".", out_dir=".",
                      **rl_kwargs("small", {"loss.clip_eps": 0.1, "reward.success_bonus": 2.0, "a1": 0.5, "a2": 0.5,
                                            "ppo.gamma": 0.9}))
    assert (cfg.ppo.gamma, cfg.ppo.lam) == (0.9, 0.95)
    assert (cfg.loss.clip_eps, cfg.loss.beta) == (0.1, 0.04)
    assert (cfg.reward_config.success_bonus, cfg.reward_config.stage_weight) == (2.0, 1.0)
    assert (cfg.a1, cfg.a2, cfg.lr) == (0.5, 0.5, 1e-4)


def test_a_sweep_adds_one_rl_stage_per_setting_and_keeps_the_default_key():
    plain = build_plan("libero_object", "smoke", ("tgrpo",), (1,), (0,))
    sweep = build_plan("libero_object", "smoke", ("tgrpo",), (1,), (0,),
                       ({"a1": 0.1, "a2": 0.9}, {}, {"group_size": 8}))
    rl = [s for s in sweep if s.kind == "rl"]
    assert [s.name for s in rl] == ["tgrpo-libero_object-t1-s0-smoke-a1=0.1-a2=0.9", "tgrpo-libero_object-t1-s0-smoke",
                                    "tgrpo-libero_object-t1-s0-smoke-group_size=8"]
    assert rl[1].key == plain[-1].key  # the default setting is the plain stage: one cache
    assert rl[0].config["settings"] == {"a1": 0.1, "a2": 0.9} and "settings" not in rl[1].config
    assert rl[2].estimate_s > rl[1].estimate_s  # twice the rollouts
    assert len({s.key for s in rl}) == 3
    assert label({}) == "" and label({"epochs": 2}) == "-epochs=2"


def test_a_setting_a_method_cannot_take_is_refused_at_plan_time():
    with pytest.raises(ValueError, match="does not apply to method 'dpo'"):
        build_plan("libero_object", "smoke", ("tgrpo", "dpo"), (1,), (0,), ({"a1": 0.1, "a2": 0.9},))
    build_plan("libero_object", "smoke", ("tgrpo", "dpo"), (1,), (0,), ({"group_size": 6},))  # both take it
