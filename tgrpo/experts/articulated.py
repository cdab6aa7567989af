"""Skills on one articulated joint with LIBERO's open/close/turn ranges: drawers (open by the handle, pull fully
open, push shut), hinged doors (pushed along their arc) and knobs (grasped and twisted)."""

from __future__ import annotations

import numpy as np

from tgrpo.experts.control import CLOSE, OPEN, current_yaw, rotation_error, servo, servo_pose, yaw_error
from tgrpo.experts.geometry import facing, horizontal_unit, region_box, slide_opening_dir, yaw_for_finger_axis
from tgrpo.experts.scene import Scene, wrap_half_turn
from tgrpo.experts.skill import RELEASE_MAX_STEPS, RELEASE_MIN_STEPS, WAYPOINT_TOL, Skill

# Stage exits (`Skill.stage_done`): `*_TOL` in metres (`*_YAW_TOL`, `*_ROT_TOL` in radians); `*_STEPS`: the most
# steps a stage runs before it ends anyway.
CLOSE_STEPS = 10  # steps the fingers get to close on a handle or a knob's bar
RETREAT_STEPS = 20  # steps a retreat from a drawer handle, a door or a knob gets to reach its waypoint
# OpenDrawer
DRAWER_APPROACH_TOL = 0.012  # m: the hand is in front of the handle
DRAWER_APPROACH_ROT_TOL = 0.12  # rad: and turned horizontal
DRAWER_APPROACH_STEPS = 100
DRAWER_INSERT_TOL = 0.008  # m: the fingers are around the handle's bar
DRAWER_INSERT_STEPS = 40
HANDLE_SLIP = 0.045  # m: the grip site this far from the handle while pulling means the fingers slipped off
DRAWER_PULL_STEPS = 60  # a pull that has not opened the drawer by then counts as slipped
DRAWER_RELEASE_STEPS = 8
# PullDrawerFully
HOOK_APPROACH_TOL = 0.012  # m: the fingertips are above the front wall
HOOK_APPROACH_STEPS = 80
HOOK_DESCEND_TOL = 0.006  # m: at the hook height behind the front wall
HOOK_DESCEND_STEPS = 40
HOOK_PULL_STALL_AFTER = 8  # steps before a stalled joint (the drawer at its end stop) ends the pull
HOOK_PULL_STEPS = 40
HOOK_RISE_STEPS = 25
# CloseDrawer
SHUT_APPROACH_TOL = 0.015  # m: above the point in front of the handle
SHUT_APPROACH_ROT_TOL = 0.15  # rad: and pitched towards the push
SHUT_APPROACH_STEPS = 80
SHUT_DESCEND_TOL = 0.008  # m: at the handle's height
SHUT_DESCEND_STEPS = 50
SHUT_PUSH_STEPS = 90
SHUT_RETREAT_STEPS = 25
# HingeDoor
DOOR_APPROACH_TOL = 0.015  # m: above the push point
DOOR_APPROACH_YAW_TOL = 0.15  # rad
DOOR_APPROACH_STEPS = 90
DOOR_DESCEND_TOL = 0.01  # m: at the door's mid height
DOOR_DESCEND_STEPS = 50
DOOR_PUSH_STEPS = 90
# TurnKnob
KNOB_APPROACH_XY_TOL = 0.01  # m: above the knob's axis
KNOB_APPROACH_Z_TOL = 0.02  # m: at the hover height
KNOB_APPROACH_YAW_TOL = 0.08  # rad: the fingers across the bar
KNOB_APPROACH_STALL_AFTER = 15  # steps before a stalled approach (near the robot's base) ends it
KNOB_APPROACH_STALL_EPS = 0.001  # m of remaining distance
KNOB_APPROACH_STEPS = 80
KNOB_DESCEND_TOL = 0.005  # m: the pads on the bar
KNOB_DESCEND_STEPS = 50
KNOB_TURN_STEPS = 60
KNOB_RELEASE_GAP = 0.05  # m: finger gap at which the bar counts as let go


class JointSkill(Skill):
    """Base of skills on one articulated joint '<entity>/<joint>' with LIBERO's ranges."""

    goal = "open"  # open | close | turnon | turnoff

    def __init__(self, entity: str, joint: str, literal_index: int | None = None):
        super().__init__(literal_index)
        self.entity, self.joint_name = entity, joint
        self.key = f"{entity}/{joint}"

    def describe(self) -> dict:
        return {"skill": self.name, "object": self.entity, "joint": self.joint_name, "goal": self.goal}

    def q(self, scene: Scene) -> float:
        return scene.joint(self.entity, self.joint_name)

    def ranges(self, scene: Scene) -> np.ndarray:
        return scene.get(f"ranges/{self.key}")

    def reached(self, scene: Scene) -> bool:
        """LIBERO's own test for the goal on this joint (Open/Close/TurnOn/TurnOff)."""
        q, r = self.q(scene), self.ranges(scene)
        opening_up = np.nanmean(r[0:2]) > np.nanmean(r[2:4]) if np.isfinite(r[0]) else True
        if self.goal == "open":
            return q > r[0] if opening_up else q < r[1]
        if self.goal == "close":
            return q < r[3] if opening_up else q > r[2]
        if self.goal == "turnon":
            return q >= r[4]
        return q < r[7]

    def satisfied(self, scene: Scene) -> bool:
        return self.reached(scene)

    def opening_dir(self, scene: Scene) -> np.ndarray:
        """World direction a slide joint's part moves when opening."""
        return slide_opening_dir(scene, self.key)


class OpenDrawer(JointSkill):
    """Grasp the drawer handle from the front, gripper horizontal with the fingers closing vertically around the
    bar, and pull. (From above the hand would hit the drawer or handle above; see docs/expert.md.)"""

    name = "open_drawer"
    goal = "open"
    stages = ("approach", "insert", "grasp", "pull", "release", "retreat")

    def _setup(self, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        o = horizontal_unit(self.opening_dir(scene))
        if getattr(self, "rot", None) is None:
            self.rot = facing(-o, scene.eef_mat)
        return scene.get(f"handle/{self.key}"), o

    def _approach(self, scene: Scene) -> np.ndarray:
        h, o = self._setup(scene)
        target = h + 0.11 * o
        far = np.linalg.norm(target[:2] - scene.eef[:2]) > 0.08
        if far:  # travel at a safe height, then come down in front of the handle
            target = np.array([target[0], target[1], max(target[2], scene.eef[2])])
        err = target - scene.eef
        if self.stage_done(not far and np.linalg.norm(err) < DRAWER_APPROACH_TOL
                           and rotation_error(scene, self.rot) < DRAWER_APPROACH_ROT_TOL, limit=DRAWER_APPROACH_STEPS):
            self.next()
        return servo_pose(scene, target, self.rot, OPEN)

    def _insert(self, scene: Scene) -> np.ndarray:
        h, o = self._setup(scene)
        target = h + 0.005 * o
        if self.stage_done(np.linalg.norm(target - scene.eef) < DRAWER_INSERT_TOL, limit=DRAWER_INSERT_STEPS,
                           stall=float(scene.eef @ o)):
            self.next()
        return servo_pose(scene, target, self.rot, OPEN, speed=0.6)

    def _grasp(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        if self.stage_done(self.t >= CLOSE_STEPS):
            self.next()
        return servo_pose(scene, self.hold, self.rot, CLOSE)

    def _pull(self, scene: Scene) -> np.ndarray:
        h, o = self._setup(scene)
        if self.t == 0:
            self.start = scene.eef.copy()
        if self.reached(scene):
            self.next()
        elif np.linalg.norm(h - scene.eef) > HANDLE_SLIP or self.t > DRAWER_PULL_STEPS:  # slipped off the handle
            self.rot = None
            self.retry("approach")
            return servo(scene, scene.eef + 0.03 * o, 0.0, OPEN, hold_orientation=False)
        target = scene.eef + o * 0.04
        target[2] = self.start[2]
        return servo_pose(scene, target, self.rot, CLOSE, speed=0.7)

    def _release(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        if self.stage_done(self.t >= DRAWER_RELEASE_STEPS):
            self.next()
        return servo_pose(scene, self.hold, self.rot, OPEN)

    def _retreat(self, scene: Scene) -> np.ndarray:
        _h, o = self._setup(scene)
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold + 0.06 * o + np.array([0.0, 0.0, 0.05])
        if self.stage_done(np.linalg.norm(target - scene.eef) < WAYPOINT_TOL, limit=RETREAT_STEPS):
            self.next()
        return servo_pose(scene, target, self.rot, OPEN)


class PullDrawerFully(JointSkill):
    """Pull an open drawer to the end of its range, for room under an overhang (see the planner's `place_function`):
    the closed fingertips, pointing down, hook behind the drawer's front wall from above and pull. `OpenDrawer`'s
    horizontal handle grasp cannot reach a low drawer (LIBERO-10 task 3's bottom drawer: the arm stays above the
    cabinet's top, measured), and it is not needed once the drawer is open."""

    name = "pull_drawer"
    goal = "open"
    stages = ("approach", "descend", "pull", "rise")
    limit_margin = 0.003  # "fully open": within 3 mm of the open range's far end
    hook_depth = 0.025  # fingertips this far below the front wall's top
    hook_inset = 0.015  # and this far behind its inner face

    def __init__(self, entity: str, joint: str, site: str, literal_index: int | None = None):
        super().__init__(entity, joint, literal_index)
        self.site = site

    def reached(self, scene: Scene) -> bool:
        q, r = self.q(scene), self.ranges(scene)
        if np.nanmean(r[0:2]) > np.nanmean(r[2:4]):
            return q > r[1] - self.limit_margin
        return q < r[0] + self.limit_margin

    def _hook(self, scene: Scene) -> tuple[np.ndarray, np.ndarray, float]:
        """(fingertip point behind the front wall, opening direction, yaw with the fingers along the wall)."""
        o = horizontal_unit(self.opening_dir(scene))
        center, half = region_box(scene, self.site)
        point = center + (abs(half[:2] @ o[:2]) - self.hook_inset) * o
        point[2] = center[2] + half[2] - self.hook_depth
        return point, o, yaw_for_finger_axis(np.array([-o[1], o[0]]))

    def _approach(self, scene: Scene) -> np.ndarray:
        point, _o, yaw = self._hook(scene)
        target = point + np.array([0.0, 0.0, 0.08])
        if self.stage_done(np.linalg.norm(target - scene.eef) < HOOK_APPROACH_TOL, limit=HOOK_APPROACH_STEPS):
            self.next()
        return servo(scene, target, yaw, CLOSE)

    def _descend(self, scene: Scene) -> np.ndarray:
        point, _o, yaw = self._hook(scene)
        if self.stage_done(abs(point[2] - scene.eef[2]) < HOOK_DESCEND_TOL, limit=HOOK_DESCEND_STEPS,
                           stall=scene.eef[2]):
            self.next()
        return servo(scene, point, yaw, CLOSE, speed=0.6)

    def _pull(self, scene: Scene) -> np.ndarray:
        point, o, yaw = self._hook(scene)
        if self.stage_done(self.reached(scene), limit=HOOK_PULL_STEPS, stall=self.q(scene),
                           stall_after=HOOK_PULL_STALL_AFTER):
            self.next()
        target = scene.eef + 0.04 * o
        target[2] = point[2]
        return servo(scene, target, yaw, CLOSE, speed=0.5)

    def _rise(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold + np.array([0.0, 0.0, 0.1])
        if self.stage_done(scene.eef[2] > target[2] - WAYPOINT_TOL, limit=HOOK_RISE_STEPS):
            self.next()
        return servo(scene, target, current_yaw(scene), OPEN)


class CloseDrawer(JointSkill):
    """Push the drawer shut at its handle with the closed gripper, the hand pitched towards the push.

    Pitched by `pitch` (0.6 rad) from pointing down, the wrist and forearm trail the fingertips and stay in front
    of the cabinet's face: pointing straight down, the forearm ran into the cabinet's top front edge 3 cm before a
    bottom drawer closed (LIBERO-10 task 3, measured); horizontal, the wrist hit the wine rack in front of it.
    """

    name = "close_drawer"
    goal = "close"
    stages = ("approach", "descend", "push", "retreat")
    pitch = 0.6
    standoff = 0.05  # start the push this far in front of the handle

    def _setup(self, scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(handle, opening direction, the gripper rotation: approach axis pitched from down towards -o, fingers
        closing along the handle)."""
        o = horizontal_unit(self.opening_dir(scene))
        side = np.array([-o[1], o[0], 0.0])
        z = np.cos(self.pitch) * np.array([0.0, 0.0, -1.0]) - np.sin(self.pitch) * o
        y = side if side @ scene.eef_mat[:, 1] >= 0 else -side
        return scene.get(f"handle/{self.key}"), o, np.column_stack([np.cross(y, z), y, z])

    def _approach(self, scene: Scene) -> np.ndarray:
        h, o, rot = self._setup(scene)
        target = h + self.standoff * o + np.array([0.0, 0.0, 0.08])
        if self.stage_done(np.linalg.norm(target - scene.eef) < SHUT_APPROACH_TOL
                           and rotation_error(scene, rot) < SHUT_APPROACH_ROT_TOL, limit=SHUT_APPROACH_STEPS):
            self.next()
        return servo_pose(scene, target, rot, CLOSE)

    def _descend(self, scene: Scene) -> np.ndarray:
        h, o, rot = self._setup(scene)
        target = h + self.standoff * o
        if self.stage_done(abs(target[2] - scene.eef[2]) < SHUT_DESCEND_TOL, limit=SHUT_DESCEND_STEPS,
                           stall=scene.eef[2]):
            self.next()
        return servo_pose(scene, target, rot, CLOSE)

    def _push(self, scene: Scene) -> np.ndarray:
        h, o, rot = self._setup(scene)
        if self.t == 0:
            self.z = scene.eef[2]
        if self.stage_done(self.reached(scene), limit=SHUT_PUSH_STEPS):
            self.next()
        target = scene.eef - 0.05 * o
        target[2] = self.z
        # stay on the handle's line across the pull direction
        side = np.array([-o[1], o[0], 0.0])
        target += side * float((h - scene.eef) @ side)
        return servo_pose(scene, target, rot, CLOSE)

    def _retreat(self, scene: Scene) -> np.ndarray:
        _h, o, rot = self._setup(scene)
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold + self.standoff * o + np.array([0.0, 0.0, 0.06])
        if self.stage_done(np.linalg.norm(target - scene.eef) < WAYPOINT_TOL, limit=SHUT_RETREAT_STEPS):
            self.next()
        return servo_pose(scene, target, rot, CLOSE)


PUSH_RADIUS = 0.9  # where a door is pushed, as a fraction of the hinge-to-handle distance


class HingeDoor(JointSkill):
    """Swing a hinged door (the microwave's) towards `goal` by pushing its face along the arc, near its handle
    (PUSH_RADIUS of the way out: at 0.75 the hand stayed 6 cm from the handle, outside the reward spec's 5 cm
    "gripper at the handle" stage, LIBERO-10 task 9)."""

    name = "close_door"
    goal = "close"
    stages = ("approach", "descend", "push", "retreat")

    def _geometry(self, scene: Scene):
        anchor = scene.get(f"anchor/{self.key}")
        axis = scene.get(f"axis/{self.key}")
        handle = scene.get(f"handle/{self.key}")
        r = handle - anchor
        r[2] = 0.0
        radius = np.linalg.norm(r)
        u = r / max(radius, 1e-6)
        # direction the door face moves when the goal's side is reached (q increases towards close here)
        r_range = self.ranges(scene)
        closing_up = np.nanmean(r_range[2:4]) > np.nanmean(r_range[0:2])
        sign = 1.0 if (closing_up == (self.goal == "close")) else -1.0
        t = sign * np.cross(axis, u)
        t[2] = 0.0
        t /= max(np.linalg.norm(t), 1e-6)
        part = scene.get(f"part/{self.key}")
        return anchor, u, t, radius, part

    def _point(self, scene: Scene) -> tuple[np.ndarray, float]:
        anchor, u, t, radius, part = self._geometry(scene)
        p = anchor + u * (PUSH_RADIUS * radius) - t * 0.035
        p[2] = 0.5 * (part[2] + part[5])
        return p, yaw_for_finger_axis(u[:2])

    def _approach(self, scene: Scene) -> np.ndarray:
        p, yaw = self._point(scene)
        part = self._geometry(scene)[4]
        target = np.array([p[0], p[1], part[5] + 0.05])
        if self.stage_done(np.linalg.norm(target - scene.eef) < DOOR_APPROACH_TOL
                           and yaw_error(scene, yaw) < DOOR_APPROACH_YAW_TOL, limit=DOOR_APPROACH_STEPS):
            self.next()
        return servo(scene, target, yaw, CLOSE)

    def _descend(self, scene: Scene) -> np.ndarray:
        p, yaw = self._point(scene)
        if self.stage_done(abs(p[2] - scene.eef[2]) < DOOR_DESCEND_TOL, limit=DOOR_DESCEND_STEPS, stall=scene.eef[2]):
            self.next()
        return servo(scene, p, yaw, CLOSE)

    def _push(self, scene: Scene) -> np.ndarray:
        anchor, u, t, radius, _part = self._geometry(scene)
        _, yaw = self._point(scene)
        if self.t == 0:
            self.z = scene.eef[2]
        if self.stage_done(self.reached(scene), limit=DOOR_PUSH_STEPS):
            self.next()
        # keep the end effector at PUSH_RADIUS of the handle radius, just behind the face, and move along the arc
        rel = scene.eef - anchor
        rel[2] = 0.0
        target = anchor + u * (PUSH_RADIUS * radius) + t * 0.03
        target[2] = self.z
        return servo(scene, target, yaw, CLOSE)

    def _retreat(self, scene: Scene) -> np.ndarray:
        _, _u, t, _, _ = self._geometry(scene)
        _, yaw = self._point(scene)
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold - t * 0.05 + np.array([0.0, 0.0, 0.02])
        if self.stage_done(np.linalg.norm(target - scene.eef) < WAYPOINT_TOL, limit=RETREAT_STEPS):
            self.next()
        return servo(scene, target, yaw, CLOSE)


class TurnKnob(JointSkill):
    """Grasp a knob's grip bar across its width, fingers straddling the knob axis, and twist the wrist.

    The bar lies along the fixture's x axis turned by the knob angle q. Sweeping closed fingertips round the axis
    lost the bar (goal task 7: about 0.35 of the 0.5 rad needed, the hand slid off its end); a grasp keeps the bar
    between the pads, and the wrist's yaw turns it. The knob has no spring: it stays where it is left.
    """

    name = "turn_knob"
    goal = "turnon"
    stages = ("approach", "descend", "grasp", "turn", "release", "retreat")
    MARGIN = 0.3  # rad past LIBERO's threshold, so that the knob stays inside the range once released

    def _dir(self) -> float:
        return 1.0 if self.goal == "turnon" else -1.0

    def _bar_yaw(self, scene: Scene) -> float:
        """Gripper yaw whose fingers close across the bar (the yaw of the bar's direction), nearest the current one."""
        fixture = scene.mat(self.entity)
        bar = float(np.arctan2(fixture[1, 0], fixture[0, 0])) + self.q(scene)
        return current_yaw(scene) + wrap_half_turn(bar - current_yaw(scene))

    def _grip_point(self, scene: Scene) -> np.ndarray:
        part = scene.get(f"part/{self.key}")
        p = scene.get(f"anchor/{self.key}").copy()
        p[2] = part[5] - 0.018  # the pads on the bar's upper half, the fingertips above the knob's base ring
        return p

    def _approach(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.yaw = self._bar_yaw(scene)
        target = self._grip_point(scene) + np.array([0.0, 0.0, 0.06])
        err = target - scene.eef
        near = (np.linalg.norm(err[:2]) < KNOB_APPROACH_XY_TOL and abs(err[2]) < KNOB_APPROACH_Z_TOL
                and yaw_error(scene, self.yaw) < KNOB_APPROACH_YAW_TOL)
        # near the robot's base the arm settles about 1.5 cm short of the hover point: go on once it stops
        if self.stage_done(near, limit=KNOB_APPROACH_STEPS, stall=float(np.linalg.norm(err)),
                           stall_after=KNOB_APPROACH_STALL_AFTER, eps=KNOB_APPROACH_STALL_EPS):
            self.next()
        return servo(scene, target, self.yaw, OPEN)

    def _descend(self, scene: Scene) -> np.ndarray:
        target = self._grip_point(scene)
        if self.stage_done(abs(target[2] - scene.eef[2]) < KNOB_DESCEND_TOL, limit=KNOB_DESCEND_STEPS,
                           stall=scene.eef[2]):
            self.next()
        return servo(scene, target, self.yaw, OPEN, speed=0.6)

    def _grasp(self, scene: Scene) -> np.ndarray:
        if self.stage_done(self.t >= CLOSE_STEPS):
            self.next()
        return servo(scene, self._grip_point(scene), self.yaw, CLOSE)

    def _turn(self, scene: Scene) -> np.ndarray:
        r = self.ranges(scene)
        goal_q = r[4] + self.MARGIN if self.goal == "turnon" else r[7] - self.MARGIN
        if self.t == 0:
            self.q0, self.yaw0 = self.q(scene), current_yaw(scene)
        if self.stage_done(self._dir() * (self.q(scene) - goal_q) >= 0, limit=KNOB_TURN_STEPS):
            self.next()
        # lead the wrist towards the yaw that turns the knob to goal_q, a bounded step ahead of where it is
        final = self.yaw0 + (goal_q - self.q0) + self._dir() * 0.15
        yaw = current_yaw(scene) + np.clip(final - current_yaw(scene), -0.35, 0.35)
        return servo(scene, self._grip_point(scene), yaw, CLOSE)

    def _release(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold, self.yaw = scene.eef.copy(), current_yaw(scene)
        if self.stage_done(self.t >= RELEASE_MIN_STEPS and scene.opening > KNOB_RELEASE_GAP, limit=RELEASE_MAX_STEPS):
            self.next()
        return servo(scene, self.hold, self.yaw, OPEN)

    def _retreat(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold + np.array([0.0, 0.0, 0.08])
        if self.stage_done(np.linalg.norm(target - scene.eef) < WAYPOINT_TOL, limit=RETREAT_STEPS):
            self.next()
        return servo(scene, target, self.yaw, OPEN)
