"""Policy registry: `--policy NAME` -> a factory."""

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


def _openvla(checkpoint: str | None = None, seed: int = 0, unnorm_key: str | None = None,
             center_crop: bool | None = None, **_) -> Policy:
    """OpenVLA-7B (or its structure at another size) from a checkpoint directory in the released layout; the
    un-normalisation key is OpenVLA's (the suite name, `_no_noops` fallback; the CLI passes the suite)."""
    from tgrpo.policies.openvla.policy import OpenVLAPolicy, OpenVLASettings

    if checkpoint is None:
        raise ValueError("policy 'openvla' needs --checkpoint DIR (a released OpenVLA checkpoint directory)")
    crop = {} if center_crop is None else {"center_crop": center_crop}
    return OpenVLAPolicy.load(checkpoint, seed=seed, settings=OpenVLASettings(unnorm_key=unnorm_key, **crop))


def _expert(**_) -> Policy:
    from tgrpo.experts import ExpertPolicy

    return ExpertPolicy()


_FACTORIES: dict[str, Callable[..., Policy]] = {"zero": _zero, "random": _random, "tiny": _tiny, "expert": _expert,
                                                "openvla": _openvla}
POLICY_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def make_policy(name: str, **kwargs) -> Policy:
    """Build a registered policy; ValueError naming the valid choices for an unknown name."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(POLICY_NAMES)}")
    return _FACTORIES[name](**kwargs)
