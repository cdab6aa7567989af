"""Putting a mug into an enclosure closed above (the microwave of LIBERO-10 task 9), through its door.

A top-down grasp cannot work there: the heating region is a box 14.4 cm high under the microwave's top, the mug is
10.5 cm tall and 9.3 cm wide (wider than the open fingers), and a hand above the mug would have to pass through the
top. So the mug is carried by its handle, whose collision geometry is one flat bar sticking out of the body
(`HANDLES`, measured from the asset): the hand pinches the bar from above, lowers the mug to just above the
enclosure's floor in front of the opening and slides it in only as far as keeps the hand (about 3.5 cm either side
of the grip across the bar) in front of the opening, which puts the mug's centre of mass over the floor. Then the
hand turns horizontal, points into the enclosure with the fingers closed and pushes the mug's body, below the
handle, until its origin lies deep enough inside that the handle clears the closing door.

Geometry is read from the region box (LIBERO's containment box of the heating region): the opening is its face
towards the door's hinge; the floor is a little above its bottom.
"""

from __future__ import annotations

import numpy as np

from tgrpo.experts.control import CLOSE, OPEN, rotation_error, servo, servo_pose, yaw_error
from tgrpo.experts.geometry import HAND_HALF_WIDTH, facing, obstacle_tops, table_height, yaw_for_finger_axis
from tgrpo.experts.scene import Scene
from tgrpo.experts.skill import RELEASE_MAX_STEPS, RELEASE_MIN_STEPS, WAYPOINT_TOL, Skill

# Handle bar centre in the object's body frame (m), from the collision geoms of LIBERO's mug assets: the bar is
# 4.3 cm long radially, 1.75 cm wide, 0.8 cm thick, 8 cm above the bottom (`white_yellow_mug_1_g3`).
HANDLES = {"white_yellow_mug": np.array([0.0464, 0.0, 0.0796])}

HAND_FRONT_MARGIN = 0.019  # the hand stays this far (plus its half width) in front of the region's opening face
FLOOR_CLEARANCE = 0.03  # the mug's bottom above the region box's bottom while it slides in (the floor is ~0.8 cm up)
PUSH_HEIGHT = 0.03  # the pushing fingers above the mug's bottom: under the handle bar (7.6 cm up), over the floor
DEPTH_FRACTION = 0.15  # the pushed mug's origin ends this fraction of the half depth short of the region's centre

# Stage exits (`Skill.stage_done`): `*_TOL` in metres (`*_YAW_TOL`, `*_ROT_TOL` in radians); `*_STEPS`: the most
# steps a stage runs before it ends anyway.
APPROACH_TOL = 0.012  # m: the hand is above the handle bar
APPROACH_YAW_TOL = 0.1  # rad: the fingers across the bar
APPROACH_STEPS = 80
DESCEND_Z_TOL = 0.004  # m: the pads at the bar's height
DESCEND_XY_TOL = 0.006  # m: over the bar
DESCEND_STEPS = 50
GRASP_STALL_AFTER = 7  # steps the fingers close before a stalled gap may end the grasp
GRASP_STALL_WINDOW = 2  # steps over which the finger gap must stop changing
GRASP_STALL_EPS = 0.0005  # m of finger gap
GRASP_STEPS = 14
HOLD_CHECK_AFTER = 12  # steps into the lift before a mug that did not come along counts as lost
TRANSPORT_XY_TOL = 0.012  # m: in front of the opening
TRANSPORT_STEPS = 120
INSERT_Z_TOL = 0.01  # m: at the sliding height (the slide starts there)
INSERT_XY_TOL = 0.006  # m: the grip at its slide end point
INSERT_STEPS = 90
LOWER_STALL_AFTER = 4  # steps before a stalled descent (the mug on the floor) ends the lowering
LOWER_STALL_EPS = 0.001  # m
LOWER_STEPS = 30
RELEASE_GAP = 0.03  # m: finger gap at which the handle counts as let go
RETREAT_TOL = 0.015  # m: the hand back out of the opening
RETREAT_STEPS = 40
TURN_TOL = 0.012  # m: the turned hand in front of the mug's near side
TURN_STEPS = 90
PUSH_STEPS = 80
BACK_TOL = 0.015  # m: the hand back from the pushed mug
BACK_STEPS = 30


def handle_of(obj: str) -> np.ndarray | None:
    """Body-frame handle bar centre of `obj` ('<class>_<k>'), or None for objects without a known handle."""
    return HANDLES.get(obj.rsplit("_", 1)[0])


def closed_door_direction(scene: Scene, door: str) -> np.ndarray:
    """Horizontal unit vector from a vertical hinge along the door panel as it lies when closed (joint at 0):
    the current hinge-to-handle direction turned back by the joint angle."""
    r = (scene.get(f"handle/{door}") - scene.get(f"anchor/{door}"))[:2]
    entity, joint = door.split("/", 1)
    angle = -scene.joint(entity, joint) * np.sign(scene.get(f"axis/{door}")[2])
    c, s = np.cos(angle), np.sin(angle)
    v = np.array([c * r[0] - s * r[1], s * r[0] + c * r[1]])
    return v / np.linalg.norm(v)


class InsertThroughDoor(Skill):
    """Carry `obj` by its handle into `region` (inside an enclosure whose door is open) and push it in."""

    name = "insert"
    stages = ("approach", "descend", "grasp", "lift", "transport", "insert", "lower", "release", "retreat", "turn",
              "push", "back")

    def __init__(self, obj: str, region: str, door: str, literal_index: int | None = None):
        super().__init__(literal_index)
        self.obj, self.region, self.door = obj, region, door  # door: '<entity>/<hinge joint>'
        self.rot = None
        self.carry_z = 0.0
        self.obj_z0 = 0.0

    def describe(self) -> dict:
        return {"skill": self.name, "object": self.obj, "target": self.region}

    # -- geometry -----------------------------------------------------------------------------------------------
    def frame(self, scene: Scene) -> dict:
        """Inward direction n, lateral direction, the region's centre/half extents and opening face along n."""
        center, half = scene.pos(self.region), np.abs(scene.mat(self.region) @ scene.size(self.region))
        anchor = scene.get(f"anchor/{self.door}")
        closed = closed_door_direction(scene, self.door)
        axis = int(np.argmin(np.abs(closed)))  # the closed door lies along the opening face: its normal axis
        n = np.zeros(2)
        n[axis] = -np.sign(anchor[axis] - center[axis])
        return {"n": n, "side": np.array([-n[1], n[0]]), "center": center, "half": half,
                "face": float(center[:2] @ n - half[axis]), "depth": float(half[axis])}

    def handle(self, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        """World handle bar centre and the horizontal unit direction from the object's origin to it."""
        offset = scene.mat(self.obj) @ handle_of(self.obj)
        radial = offset[:2] / np.linalg.norm(offset[:2])
        return scene.pos(self.obj) + offset, radial

    def grasp_yaw(self, scene: Scene) -> float:
        _, radial = self.handle(scene)
        return yaw_for_finger_axis(np.array([-radial[1], radial[0]]))  # fingers across the bar

    def hang(self, scene: Scene) -> float:
        """How far the object's bottom hangs below the grip site."""
        return float(scene.eef[2] - scene.aabb(self.obj)[0][2])

    def slide_grip(self, scene: Scene) -> np.ndarray:
        """Grip xy where the slide stops: the hand just in front of the opening, the object centred laterally."""
        f = self.frame(scene)
        grip_n = f["face"] - HAND_HALF_WIDTH - HAND_FRONT_MARGIN
        lateral = float(f["center"][:2] @ f["side"])
        return grip_n * f["n"] + lateral * f["side"]

    # -- stages -------------------------------------------------------------------------------------------------
    def _approach(self, scene: Scene) -> np.ndarray:
        h, _ = self.handle(scene)
        yaw = self.grasp_yaw(scene)
        target = h + np.array([0.0, 0.0, 0.08])
        if self.t == 0:
            self.obj_z0 = scene.pos(self.obj)[2]
        if self.stage_done(np.linalg.norm(target - scene.eef) < APPROACH_TOL
                           and yaw_error(scene, yaw) < APPROACH_YAW_TOL, limit=APPROACH_STEPS):
            self.next()
        return servo(scene, target, yaw, OPEN)

    def _descend(self, scene: Scene) -> np.ndarray:
        h, _ = self.handle(scene)
        over = np.linalg.norm((h - scene.eef)[:2]) < DESCEND_XY_TOL
        if self.stage_done(abs(h[2] - scene.eef[2]) < DESCEND_Z_TOL and over, limit=DESCEND_STEPS, stall=scene.eef[2]):
            self.next()
        return servo(scene, h, self.grasp_yaw(scene), OPEN, speed=0.6)

    def _grasp(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold, self.yaw = scene.eef.copy(), self.grasp_yaw(scene)
        if self.stage_done(False, limit=GRASP_STEPS, stall=scene.opening, stall_after=GRASP_STALL_AFTER,
                           window=GRASP_STALL_WINDOW, eps=GRASP_STALL_EPS):
            self.next()
        return servo(scene, self.hold, self.yaw, CLOSE)

    def _lost(self, scene: Scene) -> np.ndarray:
        self.retry("approach")
        return servo(scene, scene.eef + np.array([0.0, 0.0, 0.03]), self.yaw, OPEN)

    def _holding(self, scene: Scene) -> bool:
        return scene.opening > 0.002 and scene.pos(self.obj)[2] > self.obj_z0 + 0.01

    def _lift(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            clear = max(obstacle_tops(scene, (self.obj,)), table_height(scene))
            self.carry_z = clear + 0.03 + self.hang(scene)
        if self.t > HOLD_CHECK_AFTER and not self._holding(scene):
            return self._lost(scene)
        if self.stage_done(scene.eef[2] > self.carry_z - WAYPOINT_TOL):
            self.next()
        return servo(scene, np.array([*self.hold[:2], self.carry_z]), self.yaw, CLOSE)

    def _pre_insert(self, scene: Scene) -> np.ndarray:
        """Grip xy in front of the opening with the object's far side 2.5 cm short of the face."""
        f = self.frame(scene)
        reach = float((scene.aabb(self.obj)[1][:2] - scene.eef[:2]) @ f["n"])  # far side ahead of the grip
        reach = max(reach, float((scene.aabb(self.obj)[0][:2] - scene.eef[:2]) @ f["n"]))
        slide = self.slide_grip(scene)
        grip_n = min(float(slide @ f["n"]), f["face"] - 0.025 - reach)
        return slide + (grip_n - float(slide @ f["n"])) * f["n"]

    def _transport(self, scene: Scene) -> np.ndarray:
        if not self._holding(scene):
            return self._lost(scene)
        target = np.array([*self._pre_insert(scene), self.carry_z])
        if self.stage_done(np.linalg.norm((target - scene.eef)[:2]) < TRANSPORT_XY_TOL, limit=TRANSPORT_STEPS):
            self.next()
        return servo(scene, target, self.yaw, CLOSE)

    def _insert_z(self, scene: Scene) -> float:
        f = self.frame(scene)
        return float(f["center"][2] - f["half"][2] + FLOOR_CLEARANCE + self.hang(scene))

    def _insert(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.start_xy = self._pre_insert(scene)
        z = self._insert_z(scene)
        low = abs(scene.eef[2] - z) < INSERT_Z_TOL
        target = np.array([*(self.slide_grip(scene) if low else self.start_xy), z])
        if self.stage_done(low and np.linalg.norm((target - scene.eef)[:2]) < INSERT_XY_TOL, limit=INSERT_STEPS):
            self.next()
        return servo(scene, target, self.yaw, CLOSE, speed=0.6 if low else 1.0)

    def _lower(self, scene: Scene) -> np.ndarray:
        target = np.array([*self.slide_grip(scene), scene.eef[2] - 0.03])
        if self.stage_done(False, limit=LOWER_STEPS, stall=scene.eef[2], stall_after=LOWER_STALL_AFTER,
                           eps=LOWER_STALL_EPS):
            self.next()
        return servo(scene, target, self.yaw, CLOSE, speed=0.3)

    def _release(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        if self.stage_done(self.t >= RELEASE_MIN_STEPS and scene.opening > RELEASE_GAP, limit=RELEASE_MAX_STEPS):
            self.next()
        return servo(scene, self.hold, self.yaw, OPEN)

    def _retreat(self, scene: Scene) -> np.ndarray:
        """Straight up clear of the handle, then back from the opening, the fingers open until the turn."""
        f = self.frame(scene)
        up = self.hold + np.array([0.0, 0.0, 0.05])
        target = up if scene.eef[2] < up[2] - 0.01 else np.array([*(up[:2] - 0.08 * f["n"]), up[2]])
        if self.stage_done(np.linalg.norm(np.array([*(up[:2] - 0.08 * f["n"]), up[2]]) - scene.eef) < RETREAT_TOL,
                           limit=RETREAT_STEPS):
            self.next()
        return servo(scene, target, self.yaw, OPEN)  # closing here caught the handle bar (LIBERO-10 task 9, state 10)

    def _push_point(self, scene: Scene) -> tuple[np.ndarray, dict]:
        """The object's nearest point along n (its handle's end) at its lateral centre, PUSH_HEIGHT up."""
        f = self.frame(scene)
        lo, hi = scene.aabb(self.obj)
        near = min(float(lo[:2] @ f["n"]), float(hi[:2] @ f["n"]))  # the handle's end: the body is further in
        lateral = float(scene.pos(self.obj)[:2] @ f["side"])
        return np.array([*(near * f["n"] + lateral * f["side"]), lo[2] + PUSH_HEIGHT]), f

    def _turn(self, scene: Scene) -> np.ndarray:
        """Turn the hand horizontal in free space, then come down in front of the object's near side."""
        p, f = self._push_point(scene)
        if self.t == 0:
            self.rot = facing(f["n"], scene.eef_mat, fingers="horizontal")
            self.hold = scene.eef.copy()
        start = p - np.array([*(0.10 * f["n"]), 0.0])
        if rotation_error(scene, self.rot) > 0.25:
            return servo_pose(scene, self.hold, self.rot, CLOSE)
        above = np.array([*start[:2], max(start[2], scene.eef[2])])
        target = start if np.linalg.norm((above - scene.eef)[:2]) < 0.015 else above
        if self.stage_done(np.linalg.norm(start - scene.eef) < TURN_TOL, limit=TURN_STEPS):
            self.next()
        return servo_pose(scene, target, self.rot, CLOSE)

    def _push(self, scene: Scene) -> np.ndarray:
        p, f = self._push_point(scene)
        goal_n = float(f["center"][:2] @ f["n"]) - DEPTH_FRACTION * f["depth"]
        if self.stage_done(float(scene.pos(self.obj)[:2] @ f["n"]) >= goal_n, limit=PUSH_STEPS):
            self.next()
        if self.t == 0:
            self.z = p[2]
        along = float(scene.eef[:2] @ f["n"]) + 0.03  # advance steadily: the body's face is behind the handle
        target = np.array([*(along * f["n"] + float(p[:2] @ f["side"]) * f["side"]), self.z])
        return servo_pose(scene, target, self.rot, CLOSE, speed=0.5)

    def _back(self, scene: Scene) -> np.ndarray:
        f = self.frame(scene)
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold - np.array([*(0.10 * f["n"]), 0.0])
        if self.stage_done(np.linalg.norm(target - scene.eef) < BACK_TOL, limit=BACK_STEPS):
            self.next()
        return servo_pose(scene, target, self.rot, CLOSE)
