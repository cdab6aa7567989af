"""Privileged simulator state, read every step as one flat float vector with a per-task named layout.

Rewards, the scripted expert and the state observation all read from this vector, so a rollout can return it as
one array shaped (N, M, D). The layout names every slice:

- ``eef_pos`` (3), ``eef_quat`` (4, xyzw as robosuite), ``gripper_qpos`` (2), ``gripper_opening`` (1: finger gap)
- ``pose/<entity>`` (7: position then quaternion xyzw) for every object, fixture and region of the task
- ``joint/<entity>/<joint>`` (1) for every hinge or slide joint of an articulated object or fixture
- ``goal/<i>`` (1: 0 or 1) the truth value of goal literal i, by LIBERO's own predicate
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from robosuite.utils.transform_utils import convert_quat

_FREE_JOINT = 0  # mujoco.mjtJoint.mjJNT_FREE


@dataclass(frozen=True)
class PrivilegedLayout:
    """Names and slices of the privileged vector of one task."""

    slices: dict[str, tuple[int, int]]
    goal_literals: tuple[tuple[str, ...], ...]
    entities: tuple[str, ...]
    movable: tuple[str, ...]

    @property
    def size(self) -> int:
        return max(stop for _, stop in self.slices.values())

    def get(self, vector: np.ndarray, name: str) -> np.ndarray:
        """The named slice of a privileged array [..., D] -> [..., k]."""
        start, stop = self.slices[name]
        return vector[..., start:stop]

    def to_dict(self) -> dict:
        return {
            "slices": {k: list(v) for k, v in self.slices.items()},
            "goal_literals": [list(g) for g in self.goal_literals],
            "entities": list(self.entities),
            "movable": list(self.movable),
        }


def _articulated_joints(env, name: str) -> list[str]:
    obj = env.get_object(name)
    if obj is None or not hasattr(obj, "joints"):
        return []
    model = env.sim.model
    return [j for j in obj.joints if model.jnt_type[model.joint_name2id(j)] != _FREE_JOINT]


def build_layout(env) -> PrivilegedLayout:
    """Layout for a robosuite LIBERO env (``OffScreenRenderEnv.env``) after it was built."""
    slices: dict[str, tuple[int, int]] = {}
    cursor = 0

    def add(name: str, width: int) -> None:
        nonlocal cursor
        slices[name] = (cursor, cursor + width)
        cursor += width

    for name, width in (("eef_pos", 3), ("eef_quat", 4), ("gripper_qpos", 2), ("gripper_opening", 1)):
        add(name, width)
    entities = tuple(env.object_states_dict)
    for name in entities:
        add(f"pose/{name}", 7)
    for name in list(env.objects_dict) + list(env.fixtures_dict):
        for joint in _articulated_joints(env, name):
            add(f"joint/{name}/{joint}", 1)
    goals = tuple(tuple(lit) for lit in env.parsed_problem["goal_state"])
    for i in range(len(goals)):
        add(f"goal/{i}", 1)
    return PrivilegedLayout(slices, goals, entities, tuple(env.objects_dict))


def read_privileged(env, layout: PrivilegedLayout) -> np.ndarray:
    """Current privileged vector [D] (float64) of a robosuite LIBERO env."""
    out = np.zeros(layout.size, dtype=np.float64)
    robot = env.robots[0]
    data = env.sim.data

    def put(name: str, value) -> None:
        start, stop = layout.slices[name]
        out[start:stop] = value

    put("eef_pos", data.site_xpos[robot.eef_site_id])
    put("eef_quat", convert_quat(data.get_body_xquat(robot.robot_model.eef_name), to="xyzw"))
    finger_qpos = data.qpos[robot._ref_gripper_joint_pos_indexes]
    put("gripper_qpos", finger_qpos)
    put("gripper_opening", finger_qpos[0] - finger_qpos[1])
    for name in layout.entities:
        state = env.object_states_dict[name]
        geom = state.get_geom_state()
        quat = geom["quat"] if state.object_state_type == "site" else convert_quat(geom["quat"], to="xyzw")
        put(f"pose/{name}", np.concatenate([geom["pos"], quat]))
    model = env.sim.model
    for key in layout.slices:
        if key.startswith("joint/"):
            joint = key.split("/", 2)[2]
            put(key, data.qpos[model.get_joint_qpos_addr(joint)])
    for i, literal in enumerate(layout.goal_literals):
        put(f"goal/{i}", float(bool(env._eval_predicate(list(literal)))))
    return out

