"""The base of the scripted expert's skills: a small state machine over named stages, and its one stage-exit test.

A skill reads a `Scene` each step and returns one action. Its stage index only moves forward, except on a
detected failure (an empty grasp, a slipped handle), when it goes back to an earlier stage and counts a retry.
Stage names are the vocabulary of the demonstrations' stage entry poses (`tgrpo.rewards.keyposes`): the
end-effector pose on entering each stage is recorded there. The skills themselves live in `pick_place`,
`articulated` (drawers, doors, knobs), `push` and `enclosure`; the geometry they share in `geometry`.
"""

from __future__ import annotations

import numpy as np

from tgrpo.experts.scene import Scene

MAX_RETRIES = 3  # failed attempts (an empty grasp, a slipped handle) a skill retries before it gives up
STALL_WINDOW = 4  # steps: a value is compared with its value this many steps earlier
STALL_EPS = 0.0015  # m (or the value's own unit): a change below this over STALL_WINDOW steps is a stall
STALL_AFTER = 6  # steps a stage runs before a stall may end it (the motion must get going first)
WAYPOINT_TOL = 0.02  # m: a free-space waypoint (a retreat point, a lift or rise height) counts as reached this close
RELEASE_MIN_STEPS = 6  # steps a release keeps the fingers opening before their gap may end it
RELEASE_MAX_STEPS = 12  # steps after which a release ends whatever the gap (opening takes about 10)


class Skill:
    """Base: `stages` names, `act(scene) -> action [7]`, `done` once the last stage completed."""

    name = "skill"
    stages: tuple[str, ...] = ()

    def __init__(self, literal_index: int | None = None):
        self.literal_index = literal_index
        self.stage = 0
        self.t = 0  # steps spent in the current stage
        self.done = False
        self.failed = False
        self.retries = 0
        self._history: list[float] = []

    @property
    def stage_name(self) -> str:
        return self.stages[min(self.stage, len(self.stages) - 1)]

    def goto(self, stage: str) -> None:
        self.stage = self.stages.index(stage)
        self.t = -1  # act() counts the step that made the move: the new stage starts at t == 0
        self._history = []

    def next(self) -> None:
        self.t = -1
        self._history = []
        if self.stage + 1 >= len(self.stages):
            self.done = True
        else:
            self.stage += 1

    def retry(self, stage: str) -> None:
        self.retries += 1
        if self.retries > MAX_RETRIES:
            self.failed = True
            self.done = True
        else:
            self.goto(stage)

    def stalled(self, value: float, window: int = STALL_WINDOW, eps: float = STALL_EPS) -> bool:
        """True once `value` changed less than eps over the last `window` steps."""
        self._history.append(float(value))
        h = self._history
        return len(h) > window and abs(h[-1] - h[-1 - window]) < eps

    def stage_done(self, reached: bool, limit: int | None = None, stall: float | None = None,
                   stall_after: int = STALL_AFTER, window: int = STALL_WINDOW, eps: float = STALL_EPS) -> bool:
        """The stage-exit test: its goal is `reached`; or, past `stall_after` steps in the stage, `stall` (a value
        the stage drives, such as the grip site's height) has stalled; or the stage ran more than `limit` steps.
        The stall history is fed only when the goal is not reached and the stage is past `stall_after`."""
        if reached:
            return True
        if stall is not None and self.t > stall_after and self.stalled(stall, window, eps):
            return True
        return limit is not None and self.t > limit

    def act(self, scene: Scene) -> np.ndarray:
        action = getattr(self, f"_{self.stage_name}")(scene)
        self.t += 1
        return action

    def describe(self) -> dict:
        return {"skill": self.name}

    def satisfied(self, scene: Scene) -> bool:
        """Nothing to do: the skill's goal literal already holds."""
        return self.literal_index is not None and scene.goal(self.literal_index)
