"""LIBERO evaluation protocol: the suites and every constant of OpenVLA's LIBERO evaluation, each with its source.

Sources (see docs/protocol.md): [OVLA] OpenVLA's LIBERO evaluation script (``run_libero_eval.py``) and its
``libero_utils.py``; [LIB] LIBERO's benchmark definitions and ``OffScreenRenderEnv``; [RS] robosuite 1.4.0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

SUITE_ALIASES: dict[str, str] = {
    "spatial": "libero_spatial",
    "object": "libero_object",
    "goal": "libero_goal",
    "long": "libero_10",
    "10": "libero_10",
}

# [OVLA] max policy steps per suite, chosen there from the longest training demonstration of each suite.
MAX_POLICY_STEPS: dict[str, int] = {
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
}

SUITES: tuple[str, ...] = tuple(MAX_POLICY_STEPS)
TASKS_PER_SUITE = 10  # [LIB] every evaluated suite has 10 tasks
INIT_STATES_PER_TASK = 50  # [LIB] fixed initial states shipped per task


def resolve_suite(name: str) -> str:
    """Canonical suite name for a suite name or alias; ValueError naming the valid choices otherwise."""
    key = name.strip().lower()
    if key in MAX_POLICY_STEPS:
        return key
    if key in SUITE_ALIASES:
        return SUITE_ALIASES[key]
    choices = ", ".join(list(SUITES) + list(SUITE_ALIASES))
    raise ValueError(f"unknown suite {name!r}; valid: {choices}")


def _check_ids(ids: list[int], what: str, limit: int) -> list[int]:
    """ids: at least one, none repeated, each in 0..limit-1; ValueError naming what is wrong otherwise."""
    if not ids:
        raise ValueError(f"no {what} given; valid: 0..{limit - 1}")
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise ValueError(f"{what} {repeated} given more than once")
    bad = [i for i in ids if not 0 <= i < limit]
    if bad:
        raise ValueError(f"{what} {bad} out of range; valid: 0..{limit - 1}")
    return ids


def check_task_ids(task_ids: list[int]) -> list[int]:
    """Validate task ids (0..9, at least one, no repeats); ValueError naming the valid range otherwise."""
    return _check_ids(task_ids, "task id(s)", TASKS_PER_SUITE)


def check_episode_ids(episode_ids: list[int]) -> list[int]:
    """Validate episode (= official init state) indices (0..49, at least one, no repeats)."""
    return _check_ids(episode_ids, "episode index(es)", INIT_STATES_PER_TASK)


def check_episode_count(episodes: int) -> list[int]:
    """The first `episodes` official init states; ValueError naming the limit otherwise."""
    if not 1 <= episodes <= INIT_STATES_PER_TASK:
        raise ValueError(f"--episodes must be 1..{INIT_STATES_PER_TASK} (each task has at most "
                         f"{INIT_STATES_PER_TASK} official init states), got {episodes}")
    return list(range(episodes))


def _src(source: str, **kw):
    return field(metadata={"source": source}, **kw)


@dataclass(frozen=True)
class Protocol:
    """The pinned evaluation protocol. Frozen: a run records it and cannot change it midway."""

    num_wait_steps: int = _src("[OVLA] num_steps_wait = 10: objects settle before the policy acts", default=10)
    wait_action: tuple[float, ...] = _src(
        "[OVLA] dummy action during the wait: no motion, gripper open (-1)", default=(0.0,) * 6 + (-1.0,)
    )
    env_seed: int = _src("[OVLA] env.seed(0) once per task after building the env", default=0)
    camera_resolution: int = _src("[OVLA] env built with camera_heights = camera_widths = 256", default=256)
    image_size: int = _src("[OVLA] frames resized to 224x224, the model's input size", default=224)
    jpeg_quality: int = _src(
        "[OVLA] tf.image.encode_jpeg default quality 95 (round trip matches the RLDS training images)", default=95
    )
    center_crop_area: float = _src(
        "[OVLA] released LIBERO checkpoints were trained with random crops of 90% area; eval center-crops "
        "that area (side sqrt(0.9)) and resizes back",
        default=0.9,
    )
    control_freq: int = _src("[LIB] OffScreenRenderEnv default, 20 Hz OSC_POSE", default=20)
    controller: str = _src("[LIB] OSC_POSE delta controller", default="OSC_POSE")
    episode_start: str = _src(
        "[OVLA] env.reset() then set_init_state(k) each episode; 'restore' (clean-up + set_init_state, no model "
        "rebuild) is a named faster alternative, see docs/protocol.md",
        default="reset",
    )
    max_policy_steps: dict[str, int] = _src("[OVLA] per suite", default_factory=lambda: dict(MAX_POLICY_STEPS))  # noqa: RUF009 (_src is field())

    def __post_init__(self) -> None:
        if self.episode_start not in ("reset", "restore"):
            raise ValueError(f"episode_start must be 'reset' or 'restore', got {self.episode_start!r}")
        if len(self.wait_action) != 7:
            raise ValueError("wait_action must have 7 entries")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


OPENVLA_PROTOCOL = Protocol()
