"""The scripted expert as a registered policy (`--policy expert`): privileged state in, OSC delta actions out.

Per env slot it plans skills from the task's goal literals at the first step and runs them in order; a skill whose
literal is already true is skipped, and once all skills ran while some literal is still false the remaining ones
are planned again (at most `max_replans` times). The stage each step was taken in is recorded: `stage(slot)` is
the current one, `stage_log(slot)` the per-step history, `transitions(slot)` the steps where a stage began with the
end-effector pose there (the stage entry poses of `tgrpo.rewards.keyposes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tgrpo.experts.control import OPEN
from tgrpo.experts.planner import plan_task
from tgrpo.experts.scene import Scene
from tgrpo.policies.base import Policy, PolicyOutput


@dataclass
class StageInfo:
    """Where an episode is: global stage index (over the whole plan), skill index, names."""

    index: int
    skill_index: int
    skill: str
    stage: str

    @property
    def label(self) -> str:
        return f"{self.skill}/{self.stage}"


@dataclass
class _Slot:
    layout: object
    skills: list = field(default_factory=list)
    current: int = 0
    planned: bool = False
    replans: int = 0
    offset: int = 0  # global stage index of the current skill's first stage
    steps: int = 0
    log: list = field(default_factory=list)  # per step: global stage index
    transitions: list = field(default_factory=list)  # dicts: step, stage index, skill, stage, eef pose, gripper


class ExpertPolicy(Policy):
    """Privileged-state scripted expert for the LIBERO tasks."""

    name = "expert"
    obs_mode = "state"

    def __init__(self, max_replans: int = 2):
        self.max_replans = max_replans
        self._slots: dict[int, _Slot] = {}

    def begin_episode(self, slot: int, instruction: str, episode_key: tuple = (), layout=None) -> None:
        if layout is None:
            raise ValueError("the expert needs the task's privileged layout at episode start")
        self._slots[slot] = _Slot(layout=layout)

    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0) -> PolicyOutput:
        privileged = np.asarray(obs["privileged"])
        actions = np.zeros((len(slots), 7))
        for k, slot in enumerate(slots):
            actions[k] = self._act_one(self._slots[slot], Scene(self._slots[slot].layout, privileged[k]))
        return PolicyOutput(actions)

    def _act_one(self, s: _Slot, scene: Scene) -> np.ndarray:
        if not s.planned:
            s.skills, s.planned = plan_task(scene), True
        while s.current < len(s.skills):
            skill = s.skills[s.current]
            if skill.stage == 0 and skill.t == 0 and skill.satisfied(scene):
                self._advance(s)  # already true: skip
                continue
            if skill.done:
                self._advance(s)
                continue
            before = skill.stage
            index = s.offset + skill.stage
            self._mark(s, scene, index, skill)
            action = skill.act(scene)
            s.log.append(s.offset + before)
            s.steps += 1
            return action
        # all skills ran: replan what is still false, else hold still
        pending = [i for i in range(len(s.layout.goal_literals)) if not scene.goal(i)]
        if pending and s.replans < self.max_replans:
            s.replans += 1
            s.offset += sum(len(sk.stages) for sk in s.skills[s.current:])
            s.skills += plan_task(scene)
            return self._act_one(s, scene)
        s.log.append(s.offset)
        s.steps += 1
        return np.array([0, 0, 0, 0, 0, 0, OPEN], dtype=np.float64)

    def _advance(self, s: _Slot) -> None:
        s.offset += len(s.skills[s.current].stages)
        s.current += 1

    def _mark(self, s: _Slot, scene: Scene, index: int, skill) -> None:
        if s.transitions and s.transitions[-1]["index"] == index and s.transitions[-1]["retries"] == skill.retries:
            return
        desc = skill.describe()
        record = {
            "step": s.steps, "index": index, "skill_index": s.current, "skill": skill.name,
            "stage": skill.stage_name, "retries": skill.retries, "eef_pos": scene.eef.tolist(),
            "eef_quat": scene.get("eef_quat").tolist(), "gripper_opening": scene.opening,
            **{k: v for k, v in desc.items() if k != "skill"},
        }
        for role in ("object", "target"):
            name = desc.get(role)
            if name and scene.has(f"pose/{name}"):
                record[f"{role}_pos"] = scene.pos(name).tolist()
        if "joint" in desc and scene.has(f"handle/{desc['object']}/{desc['joint']}"):
            record["handle_pos"] = scene.get(f"handle/{desc['object']}/{desc['joint']}").tolist()
        s.transitions.append(record)

    # -- stage access -------------------------------------------------------------------------------------------
    def stage(self, slot: int) -> StageInfo | None:
        s = self._slots.get(slot)
        if s is None or not s.planned:
            return None
        if s.current >= len(s.skills):
            return StageInfo(s.offset, s.current, "idle", "idle")
        skill = s.skills[s.current]
        return StageInfo(s.offset + skill.stage, s.current, skill.name, skill.stage_name)

    def stage_log(self, slot: int) -> np.ndarray:
        """Global stage index of every step taken so far, [T] int."""
        return np.asarray(self._slots[slot].log, dtype=np.int64)

    def transitions(self, slot: int) -> list[dict]:
        return list(self._slots[slot].transitions)

    def plan(self, slot: int) -> list[dict]:
        return [sk.describe() | {"stages": list(sk.stages)} for sk in self._slots[slot].skills]

    def describe(self) -> dict:
        return {"name": self.name, "max_replans": self.max_replans}
