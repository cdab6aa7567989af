"""Privileged simulator state, read every step as one flat float vector with a per-task named layout.

Rewards, the scripted expert and the state observation all read from this vector, so a rollout can return it as
one array shaped (N, M, D). The layout names every slice:

- ``eef_pos`` (3), ``eef_quat`` (4, xyzw as robosuite), ``gripper_qpos`` (2), ``gripper_opening`` (1: finger gap)
- ``pose/<entity>`` (7: position then quaternion xyzw) for every object, fixture and region of the task
- ``joint/<entity>/<joint>`` (1) for every hinge or slide joint of an articulated object or fixture
- ``goal/<i>`` (1: 0 or 1) the truth value of goal literal i, by LIBERO's own predicate

Geometry slices (appended after the goals; used by the scripted expert, ``tgrpo/experts``):

- ``aabb/<entity>`` (6: world min xyz, max xyz) of the collision geoms of every object and fixture
- ``box/<entity>`` (6: center xyz, half extents xyz) the same geoms' bounding box in the entity's body frame (static)
- ``size/<region>`` (3) half sizes of every region site in its own frame (LIBERO's ``SiteObject.size``)
- ``part/<entity>/<joint>`` (6: world min, max) collision geoms of the body the joint moves (drawer, door, knob)
- ``handle/<entity>/<joint>`` (3) world center of the moving part's handle: for a slide joint the geom farthest
  along the opening direction, for a hinge the geom farthest from the hinge line (a knob: its center)
- ``axis/<entity>/<joint>`` (3) the joint axis in world coordinates; ``anchor/<entity>/<joint>`` (3) its anchor
- ``ranges/<entity>/<joint>`` (8: open lo, hi, close lo, hi, turn-on lo, hi, turn-off lo, hi; NaN where the
  asset defines none) LIBERO's articulation ranges, which its Open/Close/TurnOn/TurnOff predicates compare against
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

    @classmethod
    def from_dict(cls, d: dict) -> PrivilegedLayout:
        return cls({k: tuple(v) for k, v in d["slices"].items()}, tuple(tuple(g) for g in d["goal_literals"]),
                   tuple(d["entities"]), tuple(d["movable"]))

    def state_vector(self, privileged: np.ndarray) -> np.ndarray:
        """The `state` observation from privileged arrays [..., D] -> [..., S] float32: end-effector position and
        quaternion, finger joints, pose of every movable object (not fixtures or regions), articulated joints."""
        keys = ["eef_pos", "eef_quat", "gripper_qpos"] + [f"pose/{name}" for name in self.movable]
        keys += [k for k in self.slices if k.startswith("joint/")]
        return np.concatenate([self.get(privileged, k) for k in keys], axis=-1).astype(np.float32)

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
    bodies = list(env.objects_dict) + list(env.fixtures_dict)
    for name in bodies:
        add(f"aabb/{name}", 6)
        add(f"box/{name}", 6)
    for name in entities:
        if env.object_states_dict[name].object_state_type == "site":
            add(f"size/{name}", 3)
    for name in bodies:
        for joint in _articulated_joints(env, name):
            for kind, width in (("part", 6), ("handle", 3), ("axis", 3), ("anchor", 3), ("ranges", 8)):
                add(f"{kind}/{name}/{joint}", width)
    return PrivilegedLayout(slices, goals, entities, tuple(env.objects_dict))


_RANGE_KEYS = ("default_open_ranges", "default_close_ranges", "default_turnon_ranges", "default_turnoff_ranges")


def _subtree_geoms(model, root: int) -> np.ndarray:
    """Collision geoms (contype or conaffinity set) of body `root` and all its descendants."""
    inside = np.zeros(model.nbody, dtype=bool)
    inside[root] = True
    for body in range(root + 1, model.nbody):  # MuJoCo orders parents before children
        inside[body] = inside[model.body_parentid[body]]
    collides = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
    return np.flatnonzero(inside[model.geom_bodyid] & collides)


def _world_boxes(data, model, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World centers [G, 3] and half extents [G, 3] of the geoms' local bounding boxes."""
    mats = data.geom_xmat[geoms].reshape(-1, 3, 3)
    centers = data.geom_xpos[geoms] + np.einsum("gij,gj->gi", mats, model.geom_aabb[geoms, :3])
    halves = np.einsum("gij,gj->gi", np.abs(mats), model.geom_aabb[geoms, 3:])
    return centers, halves


def _geometry_cache(env, layout: PrivilegedLayout) -> dict:
    """Geom index sets and static facts per model build (``env.reset()`` rebuilds the model)."""
    cache = getattr(env, "_tgrpo_geometry_cache", None)
    if cache is not None and cache["model"] is env.sim.model._model and cache["layout"] is layout:
        return cache
    import mujoco

    model = env.sim.model._model
    # Static boxes come from the model's default configuration (qpos0), never from the current state: the cache
    # must not depend on which episode a worker happened to run first.
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    cache = {"model": model, "layout": layout, "geoms": {}, "box": {}, "size": {}, "joints": {}}
    for key in layout.slices:
        kind, _, rest = key.partition("/")
        if kind == "aabb":
            body = env.obj_body_id[rest]
            geoms = _subtree_geoms(model, body)
            cache["geoms"][rest] = geoms
            if len(geoms):
                centers, halves = _world_boxes(data, model, geoms)
                rot = data.xmat[body].reshape(3, 3)
                # corners of each world box expressed in the body frame (a conservative body-frame box)
                local_c = (centers - data.xpos[body]) @ rot
                local_h = halves @ np.abs(rot)
                lo, hi = (local_c - local_h).min(0), (local_c + local_h).max(0)
                cache["box"][rest] = np.concatenate([(lo + hi) / 2, (hi - lo) / 2])
            else:
                cache["box"][rest] = np.zeros(6)
        elif kind == "size":
            cache["size"][rest] = np.asarray(env.object_sites_dict[rest].size, dtype=np.float64)
        elif kind == "part":
            name, joint = rest.split("/", 1)
            jid = model.joint(joint).id
            geoms = _subtree_geoms(model, model.jnt_bodyid[jid])
            props = getattr(env.get_object(name), "object_properties", {}).get("articulation", {})
            ranges = np.full(8, np.nan)
            for i, k in enumerate(_RANGE_KEYS):
                values = props.get(k) or []
                if len(values):
                    ranges[2 * i: 2 * i + 2] = min(values), max(values)
            cache["joints"][rest] = {"id": jid, "geoms": geoms, "ranges": ranges,
                                     "slide": model.jnt_type[jid] == 2}
    env._tgrpo_geometry_cache = cache
    return cache


def _handle(data, model, info: dict, opening: np.ndarray, anchor: np.ndarray, axis: np.ndarray) -> np.ndarray:
    geoms = info["geoms"]
    if not len(geoms):
        return anchor
    centers, _ = _world_boxes(data, model, geoms)
    if info["slide"]:
        return centers[np.argmax(centers @ opening)]
    radial = centers - anchor
    radial -= np.outer(radial @ axis, axis)
    dist = np.linalg.norm(radial, axis=1)
    if dist.max() - dist.min() < 0.06:  # a knob: every geom near the axis, its center is the handle
        return centers.mean(0)
    return centers[np.argmax(dist)]


def _read_geometry(env, layout: PrivilegedLayout, put) -> None:
    cache = _geometry_cache(env, layout)
    model, data = cache["model"], env.sim.data._data
    for name, geoms in cache["geoms"].items():
        if len(geoms):
            centers, halves = _world_boxes(data, model, geoms)
            put(f"aabb/{name}", np.concatenate([(centers - halves).min(0), (centers + halves).max(0)]))
        else:
            put(f"aabb/{name}", np.concatenate([data.xpos[env.obj_body_id[name]]] * 2))
        put(f"box/{name}", cache["box"][name])
    for name, size in cache["size"].items():
        put(f"size/{name}", size)
    for key, info in cache["joints"].items():
        jid, geoms = info["id"], info["geoms"]
        axis, anchor = data.xaxis[jid].copy(), data.xanchor[jid].copy()
        if len(geoms):
            centers, halves = _world_boxes(data, model, geoms)
            put(f"part/{key}", np.concatenate([(centers - halves).min(0), (centers + halves).max(0)]))
        else:
            put(f"part/{key}", np.concatenate([anchor, anchor]))
        ranges = info["ranges"]
        # opening direction of a slide joint: towards the open range (from the closed one)
        sign = 1.0
        if np.isfinite(ranges[0]) and np.isfinite(ranges[2]):
            sign = 1.0 if np.mean(ranges[0:2]) > np.mean(ranges[2:4]) else -1.0
        put(f"handle/{key}", _handle(data, model, info, sign * axis, anchor, axis))
        put(f"axis/{key}", axis)
        put(f"anchor/{key}", anchor)
        put(f"ranges/{key}", ranges)


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
    if any(k.startswith("aabb/") for k in layout.slices):
        _read_geometry(env, layout, put)
    return out

