"""RL settings of a reproduction: `--setting a1=0.1,a2=0.9` overrides RL config fields for every RL stage.

Each `--setting` is one variant of the matrix (a sweep gives several); no `--setting` means the profile's defaults.
Keys are `tgrpo.rl.config.RLConfig` fields, `loss.<field>` (`tgrpo.losses.LossConfig`), `reward.<field>`
(`tgrpo.rewards.reward.RewardConfig`) or `ppo.<field>` (`tgrpo.rl.critic.PPOConfig`). A value equal to the profile's
default is dropped, so `a1=0.3,a2=0.7` is the default stage and shares its cache (the defaults are the profile's
before a method's own overrides, e.g. PPO's 4 epochs, which apply unless a setting names the field). Fields the
harness sets itself (method, task, seed, paths, evaluation) are refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

HARNESS_FIELDS = frozenset({"method", "suite", "task_id", "init_checkpoint", "out_dir", "profile", "policy", "seed",
                            "eval_episodes", "workers_eval", "torch_threads"})
NESTED = {"loss": "loss", "reward": "reward_config", "ppo": "ppo"}  # setting prefix -> RLConfig field holding it


def parse_setting(text: str) -> dict[str, str]:
    """'a1=0.1,a2=0.9' -> {'a1': '0.1', 'a2': '0.9'}; ValueError for a malformed or repeated pair."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key or not value:
            raise ValueError(f"--setting {text!r}: expected KEY=VALUE[,KEY=VALUE...], got {item.strip()!r}")
        if key in pairs:
            raise ValueError(f"--setting {text!r}: {key} given twice")
        pairs[key] = value
    return pairs


def normalise(profile: str, raw: dict[str, str]) -> dict[str, Any]:
    """Typed values minus those equal to the profile's default; ValueError naming an unknown field, a field the
    harness owns, a value of the wrong type, or a combination the config rejects."""
    default = _default_config(profile)
    typed: dict[str, Any] = {}
    for key, text in raw.items():
        holder, name = _locate(default, key)
        field = {f.name: f for f in dataclasses.fields(holder)}[name]
        value = _convert(key, text, getattr(holder, name), str(field.type))
        if value != getattr(holder, name):
            typed[key] = value
    _default_config(profile, **rl_kwargs(profile, typed))  # the config's own validation
    return dict(sorted(typed.items()))


def rl_kwargs(profile: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for `tgrpo.rl.config.for_profile` from normalised settings (nested ones rebuilt)."""
    default = _default_config(profile)
    kwargs: dict[str, Any] = {k: v for k, v in settings.items() if "." not in k}
    for prefix, field in NESTED.items():
        nested = {k.split(".", 1)[1]: v for k, v in settings.items() if k.startswith(prefix + ".")}
        if nested:
            kwargs[field] = dataclasses.replace(getattr(default, field), **nested)
    return kwargs


def check_for_method(profile: str, method: str, settings: dict[str, Any]) -> None:
    """ValueError when `method`'s config rejects the setting (e.g. a1 for a preference method), before any run."""
    from tgrpo.rl.config import for_profile

    if not settings:
        return
    try:
        for_profile(profile, method=method, suite="libero_object", task_id=0, init_checkpoint=".", out_dir=".",
                    **rl_kwargs(profile, settings))
    except (TypeError, ValueError) as err:
        raise ValueError(f"--setting {label(settings)[1:]} does not apply to method {method!r}: {err}") from None


def label(settings: dict[str, Any]) -> str:
    """The stage-name suffix of a setting: '' for the defaults, else '-a1=0.1-a2=0.9'."""
    return "".join(f"-{k}={v}" for k, v in settings.items())


def _default_config(profile: str, **overrides):
    from tgrpo.rl.config import for_profile

    return for_profile(profile, method="tgrpo", suite="libero_object", task_id=0, init_checkpoint=".", out_dir=".",
                       **overrides)


def _locate(default, key: str) -> tuple[Any, str]:
    prefix, dot, name = key.partition(".")
    if dot:
        if prefix not in NESTED:
            raise ValueError(f"--setting {key}: unknown prefix {prefix!r}; valid: {', '.join(NESTED)}")
        holder = getattr(default, NESTED[prefix])
    else:
        holder, name = default, key
    valid = [f.name for f in dataclasses.fields(holder) if not dataclasses.is_dataclass(getattr(holder, f.name))]
    if name in HARNESS_FIELDS and not dot:
        raise ValueError(f"--setting {key}: set by the harness itself (use --methods/--tasks/--seeds)")
    if name not in valid:
        raise ValueError(f"--setting {key}: unknown field; valid: {', '.join(sorted(set(valid) - HARNESS_FIELDS))}"
                         + ("" if dot else f", or {', '.join(p + '.<field>' for p in NESTED)}"))
    return holder, name


def _convert(key: str, text: str, default: Any, annotation: str) -> Any:
    if text.lower() == "none" and "None" in annotation:
        return None
    kind = type(default) if default is not None else int  # the optional fields without a default are counts
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        return kind(text)
    except ValueError:
        raise ValueError(f"--setting {key}={text}: expected {kind.__name__}"
                         + (" or none" if "None" in annotation else "")) from None
