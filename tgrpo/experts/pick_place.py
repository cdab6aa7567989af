"""Pick-and-place: grasp an object from above (across a box's short side, or a wide object's rim) and put it in or
on a target, sliding it out from under an overhang first when one reaches over it."""

from __future__ import annotations

import numpy as np

from tgrpo.experts.control import CLOSE, OPEN, servo, yaw_error
from tgrpo.experts.geometry import (
    box_span_limit,
    choose_yaw,
    hand_clearance,
    obstacle_tops,
    table_height,
    yaw_for_finger_axis,
)
from tgrpo.experts.scene import Scene
from tgrpo.experts.skill import RELEASE_MAX_STEPS, RELEASE_MIN_STEPS, WAYPOINT_TOL, Skill

ESCAPE_RISE = 0.015  # the grasped object is lifted this far before it slides out from under an overhang
ESCAPE_MAX = 0.12  # m: the longest slide out from under an overhang that is tried
ESCAPE_TOL = 0.01  # m: the slide out is done this close to its end point
ESCAPE_STEPS = 60  # steps after which the slide out ends wherever the hand is

# Stage exits (`Skill.stage_done`): `*_TOL` in metres (`*_YAW_TOL`, `*_ROT_TOL` in radians); `*_STEPS`: the most
# steps a stage runs before it ends anyway.
APPROACH_XY_TOL = 0.012  # m: the hand is over the grasp point
APPROACH_Z_TOL = 0.03  # m: and at the hover height
APPROACH_YAW_TOL = 0.12  # rad: and turned to the grasp yaw
APPROACH_STEPS = 80
DESCEND_Z_TOL = 0.006  # m: at the grasp height
DESCEND_XY_TOL = 0.01  # m: over the grasp point
DESCEND_STEPS = 60
GRASP_STALL_AFTER = 7  # steps the fingers close before a stalled gap may end the grasp
GRASP_STALL_WINDOW = 2  # steps over which the finger gap must stop changing
GRASP_STALL_EPS = 0.0005  # m of finger gap
GRASP_STEPS = 14
TRANSPORT_XY_TOL = 0.012  # m: the object is over its place point
TRANSPORT_STEPS = 120
LOWER_Z_TOL = 0.008  # m: at the release height
LOWER_XY_TOL = 0.01  # m: over the place point
LOWER_STALL_AFTER = 8  # steps before a stalled descent (the object resting on something) ends the lowering
LOWER_STEPS = 80
RELEASE_GAP = 0.06  # m: finger gap at which the object counts as let go
RETREAT_RISE = 0.08  # m: how far the hand rises after the release
RETREAT_STEPS = 25


def _footprints_overlap(lo_a, hi_a, lo_b, hi_b, margin: float) -> bool:
    return bool(np.all(lo_a[:2] - margin < hi_b[:2]) and np.all(lo_b[:2] - margin < hi_a[:2]))


def escape_offset(scene: Scene, obj: str, margin: float = 0.012) -> np.ndarray:
    """Smallest horizontal move [2] that takes `obj`, standing on the table, out from under the fixtures that reach
    over it (an open drawer above a bowl: lifting straight up would hit it) without running into another body;
    zero when nothing overhangs or no move up to ESCAPE_MAX clears. Among moves of one length, the one closest to
    -x (towards the robot, away from the workspace's far edge) wins."""
    lo, hi = scene.aabb(obj)
    if lo[2] > table_height(scene) + 0.02:
        return np.zeros(2)
    others = [b[5:] for b in scene.layout.slices if b.startswith("aabb/") and b[5:] != obj]
    over = [b for b in others if b not in scene.layout.movable and scene.aabb(b)[1][2] > hi[2] + 0.03
            and _footprints_overlap(lo, hi, *scene.aabb(b), 0.0)]
    if not over:
        return np.zeros(2)
    over_boxes = [scene.aabb(b) for b in over]
    way_boxes = [scene.aabb(b) for b in others if b not in over and scene.aabb(b)[1][2] > lo[2] + ESCAPE_RISE]
    angles = sorted(np.arange(16) * np.pi / 8, key=lambda a: abs(np.angle(np.exp(1j * (a - np.pi)))))
    for radius in np.arange(0.01, ESCAPE_MAX + 1e-9, 0.01):
        for angle in angles:
            d = radius * np.array([np.cos(angle), np.sin(angle), 0.0])
            if not any(_footprints_overlap(lo + d, hi + d, *box, margin) for box in over_boxes) and \
                    not any(_footprints_overlap(lo + d, hi + d, *box, 0.005) for box in way_boxes):
                return d[:2]
    return np.zeros(2)


class PickPlace(Skill):
    """Grasp `obj` and put it in or on `target` (an object, or a region site).

    place: dict with 'xy' (where the object's body origin must end up), 'surface' (z of the supporting surface),
    'clear' (z every carried object must clear on the way), computed by the planner each step via `place_fn`.
    """

    name = "pick_place"
    stages = ("approach", "descend", "grasp", "lift", "transport", "lower", "release", "retreat")

    def __init__(self, obj: str, target: str, place_fn, literal_index: int | None = None):
        super().__init__(literal_index)
        self.obj = obj
        self.target = target
        self.place_fn = place_fn
        self.plan = None
        self.yaw = None  # chosen at the start of each approach, then kept
        self.rim_dir = None
        self.failed_rims: list[np.ndarray] = []  # rim directions whose grasp came up empty
        self.offset = np.zeros(3)  # object origin minus end effector, measured after grasping
        self.grasp_eef_z = 0.0
        self.obj_z0 = 0.0
        self.carry_z = 0.0
        self.hold_xy = None
        self.escape = np.zeros(2)  # horizontal move out from under an overhang before lifting

    def describe(self) -> dict:
        return {"skill": self.name, "object": self.obj, "target": self.target}

    # -- grasp planning ------------------------------------------------------------------------------------------
    def grasp_plan(self, scene: Scene) -> dict:
        lo, hi = scene.aabb(self.obj)
        center = (lo + hi) / 2
        height = hi[2] - lo[2]
        (short_dir, short_half), (_long_dir, long_half) = scene.horizontal_axes(self.obj)
        if 2 * short_half <= 0.068:
            z = lo[2] + max(min(0.5 * height, 0.025), height - 0.04)
            if long_half - short_half < 0.006:  # round: any yaw, prefer the start orientation
                deltas = np.linspace(-1.2, 1.2, 13)
                base = 0.0
            else:  # a box: turn off the short axis only as far as the fingers still span it
                base = yaw_for_finger_axis(short_dir)
                limit = box_span_limit(short_half, long_half)
                deltas = np.linspace(-limit, limit, 9)
            yaw = self.yaw if self.yaw is not None else choose_yaw(scene, center[:2], base, z, (self.obj,), deltas)
            return {"xy": center[:2], "z": z, "yaw": yaw, "rim": False}
        # too wide for the fingers (bowls, mugs): grasp the rim, one finger inside
        radius = 0.5 * min(hi[0] - lo[0], hi[1] - lo[1])
        if self.yaw is not None and self.rim_dir is not None:
            point = center[:2] + self.rim_dir * (radius - 0.012)
            return {"xy": point, "z": hi[2] - 0.022, "yaw": self.yaw, "rim": True}
        best = None
        z = hi[2] - 0.022
        for angle in np.arange(8) * np.pi / 4:
            direction = np.array([np.cos(angle), np.sin(angle)])
            point = center[:2] + direction * (radius - 0.012)
            yaw = yaw_for_finger_axis(direction)
            score = min(hand_clearance(scene, point, yaw, z, (self.obj,)), 0.03)
            score -= 0.01 * abs(yaw) / (np.pi / 2)  # prefer little rotation
            score -= 0.02 * (direction[0] > 0.5)  # the far side is at the edge of the workspace
            if any(direction @ f > 0.7 for f in self.failed_rims):  # do not repeat a rim grasp that slipped
                score -= 0.05
            if best is None or score > best[0]:
                best = (score, point, direction)
        _, point, direction = best
        self.rim_dir = direction
        return {"xy": point, "z": hi[2] - 0.022, "yaw": yaw_for_finger_axis(direction), "rim": True}

    # -- stages --------------------------------------------------------------------------------------------------
    def _approach(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.yaw, self.rim_dir = None, None
        self.plan = self.grasp_plan(scene)
        self.yaw = self.plan["yaw"]
        _lo, hi = scene.aabb(self.obj)
        hover = max(hi[2] + 0.06, self.plan["z"] + 0.08)
        target = np.array([*self.plan["xy"], max(hover, min(scene.eef[2], hover + 0.1))])
        if self.t == 0:
            self.obj_z0 = scene.pos(self.obj)[2]
        err = target - scene.eef
        if self.stage_done(np.linalg.norm(err[:2]) < APPROACH_XY_TOL and abs(err[2]) < APPROACH_Z_TOL
                           and yaw_error(scene, self.plan["yaw"]) < APPROACH_YAW_TOL, limit=APPROACH_STEPS):
            self.next()
        return servo(scene, target, self.plan["yaw"], OPEN)

    def _descend(self, scene: Scene) -> np.ndarray:
        plan = self.grasp_plan(scene)
        self.plan["xy"] = plan["xy"]
        target = np.array([*self.plan["xy"], self.plan["z"]])
        err = target - scene.eef
        speed = 1.0 if err[2] < -0.05 else 0.6
        if self.stage_done(abs(err[2]) < DESCEND_Z_TOL and np.linalg.norm(err[:2]) < DESCEND_XY_TOL,
                           limit=DESCEND_STEPS, stall=scene.eef[2]):
            self.next()
        return servo(scene, target, self.plan["yaw"], OPEN, speed=speed)

    def _grasp(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        if self.stage_done(False, limit=GRASP_STEPS, stall=scene.opening, stall_after=GRASP_STALL_AFTER,
                           window=GRASP_STALL_WINDOW, eps=GRASP_STALL_EPS):
            self.offset = scene.pos(self.obj) - scene.eef
            self.grasp_eef_z = scene.eef[2]
            self.next()
        return servo(scene, self.hold, self.plan["yaw"], CLOSE)

    def _carry_height(self, scene: Scene) -> float:
        place = self.place_fn(scene)
        lo, _ = scene.aabb(self.obj)
        below = scene.eef[2] - lo[2]  # how far the held object hangs below the end effector
        clear = max(place["clear"], obstacle_tops(scene, (self.obj,)))
        return float(min(clear + 0.03 + below, table_height(scene) + 0.45))

    def _lift(self, scene: Scene) -> np.ndarray:
        """Straight up to the carry height; an object under an overhang first slides out at a low height."""
        if self.t == 0:
            self.carry_z = max(self._carry_height(scene), self.grasp_eef_z + 0.06)
            self.hold_xy = scene.eef[:2].copy()
            self.escape = escape_offset(scene, self.obj)
        risen = scene.eef[2] - self.grasp_eef_z
        if risen > 0.04 and scene.pos(self.obj)[2] - self.obj_z0 < 0.5 * risen:
            return self._lost(scene)
        if scene.opening < 0.002:  # fingers closed on nothing
            return self._lost(scene)
        if np.any(self.escape):
            goal = self.hold_xy + self.escape
            if self.stage_done(np.linalg.norm(goal - scene.eef[:2]) < ESCAPE_TOL, limit=ESCAPE_STEPS):
                self.escape, self.hold_xy = np.zeros(2), scene.eef[:2].copy()
            return servo(scene, np.array([*goal, self.grasp_eef_z + ESCAPE_RISE]), self.plan["yaw"], CLOSE)
        target = np.array([*self.hold_xy, self.carry_z])
        if self.stage_done(scene.eef[2] > self.carry_z - WAYPOINT_TOL):
            self.next()
        return servo(scene, target, self.plan["yaw"], CLOSE)

    def _lost(self, scene: Scene) -> np.ndarray:
        if self.rim_dir is not None:
            self.failed_rims.append(self.rim_dir)
        self.retry("approach")
        return servo(scene, scene.eef + np.array([0, 0, 0.03]), self.plan["yaw"], OPEN)

    def _transport(self, scene: Scene) -> np.ndarray:
        place = self.place_fn(scene)
        if scene.opening < 0.002 or scene.pos(self.obj)[2] < self.obj_z0 + 0.01:
            return self._lost(scene)
        self.offset[:2] = scene.pos(self.obj)[:2] - scene.eef[:2]
        target = np.array([*(place["xy"] - self.offset[:2]), self.carry_z])
        err = target - scene.eef
        if self.stage_done(np.linalg.norm(err[:2]) < TRANSPORT_XY_TOL, limit=TRANSPORT_STEPS):
            self.next()
        return servo(scene, target, self.plan["yaw"], CLOSE)

    def _lower(self, scene: Scene) -> np.ndarray:
        place = self.place_fn(scene)
        lo, _ = scene.aabb(self.obj)
        below = scene.eef[2] - lo[2]
        release_z = place["surface"] + place.get("drop", 0.01) + below
        self.offset[:2] = scene.pos(self.obj)[:2] - scene.eef[:2]
        target = np.array([*(place["xy"] - self.offset[:2]), release_z])
        err = target - scene.eef
        speed = 1.0 if err[2] < -0.06 else 0.5
        if self.stage_done(abs(err[2]) < LOWER_Z_TOL and np.linalg.norm(err[:2]) < LOWER_XY_TOL, limit=LOWER_STEPS,
                           stall=scene.eef[2], stall_after=LOWER_STALL_AFTER):
            self.next()
        return servo(scene, target, self.plan["yaw"], CLOSE, speed=speed)

    def _release(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        if self.stage_done(self.t >= RELEASE_MIN_STEPS and scene.opening > RELEASE_GAP, limit=RELEASE_MAX_STEPS):
            self.next()
        return servo(scene, self.hold, self.plan["yaw"], OPEN)

    def _retreat(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold + np.array([0.0, 0.0, RETREAT_RISE])
        if self.stage_done(scene.eef[2] > target[2] - WAYPOINT_TOL, limit=RETREAT_STEPS):
            self.next()
        return servo(scene, target, self.plan["yaw"], OPEN)
