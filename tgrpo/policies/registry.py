"""Policy registry: `--policy NAME` -> a factory. Later policies (expert, tiny, openvla) join here."""

from __future__ import annotations

from collections.abc import Callable

from tgrpo.policies.base import Policy


def _zero(**_) -> Policy:
    from tgrpo.policies.simple import ZeroPolicy

    return ZeroPolicy()


def _random(seed: int = 0, **_) -> Policy:
    from tgrpo.policies.simple import RandomPolicy

    return RandomPolicy(seed=seed)


def _tiny(checkpoint: str | None = None, seed: int = 0, **_) -> Policy:
    from tgrpo.policies.tiny import TinyPolicy

    if checkpoint is None:
        raise ValueError("policy 'tiny' needs --checkpoint DIR (written by `tgrpo-bench train`)")
    return TinyPolicy.load(checkpoint, seed=seed)


def _expert(**_) -> Policy:
    from tgrpo.experts import ExpertPolicy

    return ExpertPolicy()


_FACTORIES: dict[str, Callable[..., Policy]] = {"zero": _zero, "random": _random, "tiny": _tiny, "expert": _expert}
POLICY_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def make_policy(name: str, **kwargs) -> Policy:
    """Build a registered policy; ValueError naming the valid choices for an unknown name."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(POLICY_NAMES)}")
    return _FACTORIES[name](**kwargs)
