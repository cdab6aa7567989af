"""The regression cases: what each one runs and how closely it must agree with its reference.

Four kinds (docs/regression.md):
- ``frame``: the first preprocessed agentview frame of an official episode (after the protocol's wait steps):
  per-channel mean and std and a sha256 of the uint8 array. Guards the renderer, assets and image path.
- ``expert``: the scripted expert on official episodes in state mode: success, steps, and hashes of the privileged
  state along each episode. Guards the physics, the controller and LIBERO's success check.
- ``sft``: a small committed SFT checkpoint evaluated greedy under the protocol: success, steps and a hash of the
  action tokens per episode. Guards the policy, the evaluation path and the physics.
- ``rl``: one smoke RL iteration (collect + learn) from that checkpoint: rewards, advantages and loss terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "expected_results" / "regression"
SFT_CHECKPOINT = "sft_checkpoint"  # directory under the reference directory
KINDS = ("frame", "expert", "sft", "rl")
# One task per suite, short ones the expert solves on all 50 official states (docs/expert.md: 68-164 steps on
# average); goal task 7 and LIBERO-10 task 2 place fixtures (the stove), so the fixture table is covered too.
EXPERT_TASKS = {"libero_spatial": 0, "libero_object": 0, "libero_goal": 7, "libero_10": 2}


@dataclass(frozen=True)
class Case:
    """One regression case. `params` say what runs (recorded with the reference; a reference recorded for other
    params is stale). `tolerance`: largest absolute difference accepted in a float value; 0 = bit-identical.
    Strings, integers and booleans (hashes, success, steps) must always be equal."""

    name: str
    kind: str
    params: dict = field(default_factory=dict)
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown case kind {self.kind!r}; valid: {', '.join(KINDS)}")


def _short(suite: str) -> str:
    return suite.removeprefix("libero_")


CASES: tuple[Case, ...] = (
    *(Case(f"frame_{_short(s)}", "frame", {"suite": s, "task_id": t, "episode": 0, "fast_render": False})
      for s, t in EXPERT_TASKS.items()),
    *(Case(f"expert_{_short(s)}", "expert", {"suite": s, "task_id": t, "episodes": [0, 1], "hash_every": 10})
      for s, t in EXPERT_TASKS.items()),
    Case("sft_object", "sft", {"suite": "libero_object", "task_id": 0, "episodes": [0, 1, 2],
                               "checkpoint": SFT_CHECKPOINT}),
    Case("rl_smoke_object", "rl", {"suite": "libero_object", "task_id": 0, "method": "tgrpo", "group_size": 2,
                                   "max_steps": 8, "seed": 7, "checkpoint": SFT_CHECKPOINT}, tolerance=1e-6),
)
CASE_NAMES: tuple[str, ...] = tuple(c.name for c in CASES)


def select(names: list[str] | None) -> list[Case]:
    """The named cases in the order of CASES (all of them for None); ValueError naming the valid ones."""
    if names is None:
        return list(CASES)
    unknown = [n for n in names if n not in CASE_NAMES]
    if unknown:
        raise ValueError(f"unknown case(s) {', '.join(unknown)}; valid: {', '.join(CASE_NAMES)}")
    return [c for c in CASES if c.name in names]
