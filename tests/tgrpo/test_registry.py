"""The registries: one name once, unknown names answered with the valid choices, methods by family."""

import pytest

from tgrpo.registry import Registry
from tgrpo.rl.methods import get_method, method_names


def test_a_name_registers_once_and_unknown_names_list_the_known_ones():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    reg.add("b", 2)
    assert reg.get("b") == 2 and reg.names() == ["a", "b"] and "a" in reg
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.add("a", 3)
    with pytest.raises(ValueError, match="unknown widget 'c'; known: a, b"):
        reg.get("c")


def test_methods_by_family():
    assert method_names("rl") == ("tgrpo", "grpo", "tgrpo-no-step", "tgrpo-no-traj", "ppo")
    assert method_names("sft") == ("sft",)
    assert get_method("grpo").reward == "sparse" and get_method("tgrpo").estimator == "tgrpo"
    assert get_method("ppo").value_loss == "clip-mse" and get_method("tgrpo").value_loss is None
    with pytest.raises(ValueError, match="unknown method 'sft'; valid: tgrpo, grpo"):
        get_method("sft", family="rl")
