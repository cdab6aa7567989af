"""Skills of the scripted expert: each is a small state machine over named stages.

A skill reads a `Scene` each step and returns one action. Its stage index only moves forward, except on a
detected failure (an empty grasp, a slipped handle), when it goes back to an earlier stage and counts a retry.
Stage names are the key-pose vocabulary of `tgrpo.data.keyposes`: the end-effector pose on entering each stage is
a key pose.
"""

from __future__ import annotations

import numpy as np

from tgrpo.experts.control import CLOSE, OPEN, current_yaw, rotation_error, servo, servo_pose, yaw_error
from tgrpo.experts.scene import Scene, rotvec_of, wrap_half_turn

FINGER_GAP = 0.078  # fully open finger gap (2 x 0.039 m)
MAX_RETRIES = 3


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

    def stalled(self, value: float, window: int = 4, eps: float = 0.0015) -> bool:
        """True once `value` changed less than eps over the last `window` steps."""
        self._history.append(float(value))
        h = self._history
        return len(h) > window and abs(h[-1] - h[-1 - window]) < eps

    def act(self, scene: Scene) -> np.ndarray:
        action = getattr(self, f"_{self.stage_name}")(scene)
        self.t += 1
        return action

    def describe(self) -> dict:
        return {"skill": self.name}

    def satisfied(self, scene: Scene) -> bool:
        """Nothing to do: the skill's goal literal already holds."""
        return self.literal_index is not None and scene.goal(self.literal_index)


def _rot2(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def yaw_for_finger_axis(direction: np.ndarray) -> float:
    """Yaw whose finger closing axis (sin yaw, -cos yaw) is parallel to the horizontal `direction`."""
    return wrap_half_turn(float(np.arctan2(direction[0], -direction[1])))


def obstacle_tops(scene: Scene, exclude: tuple[str, ...]) -> float:
    """Highest top of the movable objects other than `exclude`."""
    tops = [scene.aabb(o)[1][2] for o in scene.layout.movable if o not in exclude]
    return max(tops) if tops else -np.inf


def table_height(scene: Scene) -> float:
    """Lowest bottom of the movable objects: the supporting surface (floor or table)."""
    return min(scene.aabb(o)[0][2] for o in scene.layout.movable)


HAND_HALF_LENGTH = 0.105  # the Panda hand spans about +-10 cm along the finger axis
HAND_HALF_WIDTH = 0.035
PALM_ABOVE_EEF = 0.04  # the palm's underside sits about 4 cm above the grip site


GRASP_SPAN = 0.072  # widest extent the open fingers (7.8 cm) take with some margin


def box_span_limit(short_half: float, long_half: float) -> float:
    """Largest turn (rad) off a box's short axis at which the fingers still span it: along a finger axis turned by
    a, a box is 2 (s cos a + l sin a) wide. (The former limit arccos(2 s / span) left out the long side: the
    butter, 4 x 7.6 cm, was taken at 0.99 rad, 8.5 cm across, and the fingers came down on its corners, LIBERO-10
    task 1.)"""
    angles = np.linspace(0.0, np.pi / 2, 181)
    fits = 2 * (short_half * np.cos(angles) + long_half * np.sin(angles)) <= GRASP_SPAN
    if fits.all():
        return float(np.pi / 2)
    first_misfit = int(np.argmin(fits))  # every turn up to the limit must fit, not just the limit itself
    return float(angles[first_misfit - 1]) if first_misfit > 0 else 0.0


def hand_clearance(scene: Scene, xy: np.ndarray, yaw: float, eef_z: float, exclude: tuple[str, ...]) -> float:
    """Horizontal clearance between the hand (a segment along the finger axis at `xy`) and the objects tall enough
    to reach the palm when the grip site is at `eef_z`."""
    axis = np.array([np.sin(yaw), -np.cos(yaw)])
    best = 1.0
    bodies = [k[5:] for k in scene.layout.slices if k.startswith("aabb/")]
    for o in bodies:
        if o in exclude:
            continue
        lo, hi = scene.aabb(o)
        if hi[2] < eef_z + PALM_ABOVE_EEF:
            continue
        # distance from the segment to the box, sampled along the segment
        for s in np.linspace(-HAND_HALF_LENGTH, HAND_HALF_LENGTH, 9):
            p = xy + s * axis
            d = np.linalg.norm(np.maximum(0.0, np.maximum(lo[:2] - p, p - hi[:2])))
            best = min(best, d - HAND_HALF_WIDTH)
    return best


def choose_yaw(scene: Scene, xy: np.ndarray, base: float, eef_z: float, exclude: tuple[str, ...],
               deltas: np.ndarray) -> float:
    """Yaw near `base` (offsets `deltas`) whose hand keeps clear of neighbours; the smallest offset that clears."""
    scored = []
    for d in deltas:
        clearance = hand_clearance(scene, xy, base + d, eef_z, exclude)
        scored.append((min(clearance, 0.01) - 0.01 * abs(d), base + d))
    return wrap_half_turn(max(scored)[1])


ESCAPE_RISE = 0.015  # the grasped object is lifted this far before it slides out from under an overhang
ESCAPE_MAX = 0.12


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
        if np.linalg.norm(err[:2]) < 0.012 and abs(err[2]) < 0.03 and yaw_error(scene, self.plan["yaw"]) < 0.12 or self.t > 80:
            self.next()
        return servo(scene, target, self.plan["yaw"], OPEN)

    def _descend(self, scene: Scene) -> np.ndarray:
        plan = self.grasp_plan(scene)
        self.plan["xy"] = plan["xy"]
        target = np.array([*self.plan["xy"], self.plan["z"]])
        err = target - scene.eef
        speed = 1.0 if err[2] < -0.05 else 0.6
        if (abs(err[2]) < 0.006 and np.linalg.norm(err[:2]) < 0.01) or (self.t > 6 and self.stalled(scene.eef[2])) or self.t > 60:
            self.next()
        return servo(scene, target, self.plan["yaw"], OPEN, speed=speed)

    def _grasp(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        if self.t >= 8 and (self.stalled(scene.opening, window=2, eps=0.0005) or self.t > 14):
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
            if np.linalg.norm(goal - scene.eef[:2]) < 0.01 or self.t > 60:
                self.escape, self.hold_xy = np.zeros(2), scene.eef[:2].copy()
            return servo(scene, np.array([*goal, self.grasp_eef_z + ESCAPE_RISE]), self.plan["yaw"], CLOSE)
        target = np.array([*self.hold_xy, self.carry_z])
        if scene.eef[2] > self.carry_z - 0.02:
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
        if np.linalg.norm(err[:2]) < 0.012 or self.t > 120:
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
        if (abs(err[2]) < 0.008 and np.linalg.norm(err[:2]) < 0.01) or (self.t > 8 and self.stalled(scene.eef[2])) or self.t > 80:
            self.next()
        return servo(scene, target, self.plan["yaw"], CLOSE, speed=speed)

    def _release(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        if self.t >= 6 and (scene.opening > 0.06 or self.t > 12):
            self.next()
        return servo(scene, self.hold, self.plan["yaw"], OPEN)

    def _retreat(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold + np.array([0.0, 0.0, 0.08])
        if scene.eef[2] > target[2] - 0.02 or self.t > 25:
            self.next()
        return servo(scene, target, self.plan["yaw"], OPEN)


# ---------------------------------------------------------------------------------------------------------------
# articulated fixtures
# ---------------------------------------------------------------------------------------------------------------


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


def slide_opening_dir(scene: Scene, key: str) -> np.ndarray:
    """World direction the part of slide joint `key` ('<entity>/<joint>') moves when opening."""
    r = scene.get(f"ranges/{key}")
    sign = 1.0 if np.nanmean(r[0:2]) > np.nanmean(r[2:4]) else -1.0
    return sign * scene.get(f"axis/{key}")


def horizontal_unit(v: np.ndarray) -> np.ndarray:
    return np.array([v[0], v[1], 0.0]) / max(np.linalg.norm(v[:2]), 1e-6)


def region_box(scene: Scene, site: str) -> tuple[np.ndarray, np.ndarray]:
    """World center and half extents of a region as LIBERO's containment check sees it (|R| size)."""
    return scene.pos(site), np.abs(scene.mat(site) @ scene.size(site))


def facing(direction: np.ndarray, current: np.ndarray, fingers: str = "vertical") -> np.ndarray:
    """Gripper rotation pointing horizontally along `direction`, the fingers closing vertically (around a drawer
    handle's bar) or horizontally (`fingers="horizontal"`: the hand's thin side up and down, a flat pusher); the
    sign of the closing axis chosen nearest the current orientation `current`."""
    z = np.array([direction[0], direction[1], 0.0])
    z /= np.linalg.norm(z)
    closing = np.array([0.0, 0.0, 1.0]) if fingers == "vertical" else np.array([-z[1], z[0], 0.0])
    best = None
    for sign in (1.0, -1.0):
        y = sign * closing
        rot = np.column_stack([np.cross(y, z), y, z])
        err = np.linalg.norm(rotvec_of(rot @ current.T))
        if best is None or err < best[0]:
            best = (err, rot)
    return best[1]


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
        if (not far and np.linalg.norm(err) < 0.012 and rotation_error(scene, self.rot) < 0.12) or self.t > 100:
            self.next()
        return servo_pose(scene, target, self.rot, OPEN)

    def _insert(self, scene: Scene) -> np.ndarray:
        h, o = self._setup(scene)
        target = h + 0.005 * o
        if np.linalg.norm(target - scene.eef) < 0.008 or (self.t > 6 and self.stalled(float(scene.eef @ o))) \
                or self.t > 40:
            self.next()
        return servo_pose(scene, target, self.rot, OPEN, speed=0.6)

    def _grasp(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        if self.t >= 10:
            self.next()
        return servo_pose(scene, self.hold, self.rot, CLOSE)

    def _pull(self, scene: Scene) -> np.ndarray:
        h, o = self._setup(scene)
        if self.t == 0:
            self.start = scene.eef.copy()
        if self.reached(scene):
            self.next()
        elif np.linalg.norm(h - scene.eef) > 0.045 or self.t > 60:  # slipped off the handle
            self.rot = None
            self.retry("approach")
            return servo(scene, scene.eef + 0.03 * o, 0.0, OPEN, hold_orientation=False)
        target = scene.eef + o * 0.04
        target[2] = self.start[2]
        return servo_pose(scene, target, self.rot, CLOSE, speed=0.7)

    def _release(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        if self.t >= 8:
            self.next()
        return servo_pose(scene, self.hold, self.rot, OPEN)

    def _retreat(self, scene: Scene) -> np.ndarray:
        _h, o = self._setup(scene)
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold + 0.06 * o + np.array([0.0, 0.0, 0.05])
        if np.linalg.norm(target - scene.eef) < 0.02 or self.t > 20:
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
        if np.linalg.norm(target - scene.eef) < 0.012 or self.t > 80:
            self.next()
        return servo(scene, target, yaw, CLOSE)

    def _descend(self, scene: Scene) -> np.ndarray:
        point, _o, yaw = self._hook(scene)
        if abs(point[2] - scene.eef[2]) < 0.006 or (self.t > 6 and self.stalled(scene.eef[2])) or self.t > 40:
            self.next()
        return servo(scene, point, yaw, CLOSE, speed=0.6)

    def _pull(self, scene: Scene) -> np.ndarray:
        point, o, yaw = self._hook(scene)
        if self.reached(scene) or (self.t > 8 and self.stalled(self.q(scene))) or self.t > 40:
            self.next()
        target = scene.eef + 0.04 * o
        target[2] = point[2]
        return servo(scene, target, yaw, CLOSE, speed=0.5)

    def _rise(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold + np.array([0.0, 0.0, 0.1])
        if scene.eef[2] > target[2] - 0.02 or self.t > 25:
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
        if (np.linalg.norm(target - scene.eef) < 0.015 and rotation_error(scene, rot) < 0.15) or self.t > 80:
            self.next()
        return servo_pose(scene, target, rot, CLOSE)

    def _descend(self, scene: Scene) -> np.ndarray:
        h, o, rot = self._setup(scene)
        target = h + self.standoff * o
        if abs(target[2] - scene.eef[2]) < 0.008 or (self.t > 6 and self.stalled(scene.eef[2])) or self.t > 50:
            self.next()
        return servo_pose(scene, target, rot, CLOSE)

    def _push(self, scene: Scene) -> np.ndarray:
        h, o, rot = self._setup(scene)
        if self.t == 0:
            self.z = scene.eef[2]
        if self.reached(scene) or self.t > 90:
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
        if np.linalg.norm(target - scene.eef) < 0.02 or self.t > 25:
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
        if (np.linalg.norm(target - scene.eef) < 0.015 and yaw_error(scene, yaw) < 0.15) or self.t > 90:
            self.next()
        return servo(scene, target, yaw, CLOSE)

    def _descend(self, scene: Scene) -> np.ndarray:
        p, yaw = self._point(scene)
        if abs(p[2] - scene.eef[2]) < 0.01 or (self.t > 6 and self.stalled(scene.eef[2])) or self.t > 50:
            self.next()
        return servo(scene, p, yaw, CLOSE)

    def _push(self, scene: Scene) -> np.ndarray:
        anchor, u, t, radius, _part = self._geometry(scene)
        _, yaw = self._point(scene)
        if self.t == 0:
            self.z = scene.eef[2]
        if self.reached(scene) or self.t > 90:
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
        if np.linalg.norm(target - scene.eef) < 0.02 or self.t > 20:
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
        near = np.linalg.norm(err[:2]) < 0.01 and abs(err[2]) < 0.02 and yaw_error(scene, self.yaw) < 0.08
        # near the robot's base the arm settles about 1.5 cm short of the hover point: go on once it stops
        if near or (self.t > 15 and self.stalled(float(np.linalg.norm(err)), eps=0.001)) or self.t > 80:
            self.next()
        return servo(scene, target, self.yaw, OPEN)

    def _descend(self, scene: Scene) -> np.ndarray:
        target = self._grip_point(scene)
        if abs(target[2] - scene.eef[2]) < 0.005 or (self.t > 6 and self.stalled(scene.eef[2])) or self.t > 50:
            self.next()
        return servo(scene, target, self.yaw, OPEN, speed=0.6)

    def _grasp(self, scene: Scene) -> np.ndarray:
        if self.t >= 10:
            self.next()
        return servo(scene, self._grip_point(scene), self.yaw, CLOSE)

    def _turn(self, scene: Scene) -> np.ndarray:
        r = self.ranges(scene)
        goal_q = r[4] + self.MARGIN if self.goal == "turnon" else r[7] - self.MARGIN
        if self.t == 0:
            self.q0, self.yaw0 = self.q(scene), current_yaw(scene)
        if self._dir() * (self.q(scene) - goal_q) >= 0 or self.t > 60:
            self.next()
        # lead the wrist towards the yaw that turns the knob to goal_q, a bounded step ahead of where it is
        final = self.yaw0 + (goal_q - self.q0) + self._dir() * 0.15
        yaw = current_yaw(scene) + np.clip(final - current_yaw(scene), -0.35, 0.35)
        return servo(scene, self._grip_point(scene), yaw, CLOSE)

    def _release(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold, self.yaw = scene.eef.copy(), current_yaw(scene)
        if self.t >= 6 and (scene.opening > 0.05 or self.t > 12):
            self.next()
        return servo(scene, self.hold, self.yaw, OPEN)

    def _retreat(self, scene: Scene) -> np.ndarray:
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold + np.array([0.0, 0.0, 0.08])
        if np.linalg.norm(target - scene.eef) < 0.02 or self.t > 20:
            self.next()
        return servo(scene, target, self.yaw, OPEN)


HOOK_OFFSET = 0.052  # an open finger's center from the grip site, along the finger axis
ROBOT_BASE_XY = np.array([-0.66, 0.0])  # where LIBERO mounts the Panda (the same in all four suites)
LOW_REACH = 0.77  # horizontal reach from the base with the hand at table height (worked at 0.76, stalled at 0.82)


def _boxes_2d(scene: Scene, exclude: tuple[str, ...], z_lo: float, z_hi: float) -> np.ndarray:
    """[K, 4] xy boxes (min x, min y, max x, max y) of the bodies reaching into the height band [z_lo, z_hi]."""
    boxes = []
    for key in scene.layout.slices:
        if key.startswith("aabb/") and key[5:] not in exclude:
            lo, hi = scene.aabb(key[5:])
            if hi[2] > z_lo and lo[2] < z_hi:
                boxes.append([lo[0], lo[1], hi[0], hi[1]])
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _clearance(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Distance [...] from each xy point [..., 2] to the nearest box (inf without boxes)."""
    if not len(boxes):
        return np.full(points.shape[:-1], np.inf)
    p = points[..., None, :]
    gap = np.maximum(0.0, np.maximum(boxes[:, :2] - p, p - boxes[:, 2:]))
    return np.linalg.norm(gap, axis=-1).min(-1)


class Push(Skill):
    """Slide a flat object with a hole in it (a plate) along the table into a region.

    One open finger goes down into the plate's hollow centre and drags it, in one or two straight legs chosen to
    keep the plate and the hand clear of the other bodies and within the arm's reach at table height; the hand may
    turn between legs (the finger comes out and goes back in). Pushing the rim from outside needed the hand behind
    the plate, where the cabinet stood (goal task 5, 0/2).
    """

    name = "push"
    stages = ("approach", "descend", "push", "regrip", "push_on", "retreat")  # regrip, push_on: the second leg

    def __init__(self, obj: str, target: str, literal_index: int | None = None):
        super().__init__(literal_index)
        self.obj, self.target = obj, target
        self.legs = None  # [(finger axis direction, where the object's origin goes)], planned at the first approach

    def describe(self) -> dict:
        return {"skill": self.name, "object": self.obj, "target": self.target}

    def _plan_legs(self, scene: Scene) -> list[tuple[np.ndarray, np.ndarray]]:
        """Most clearance (counted up to 1.5 cm), then the shortest path (a via point counts 3 cm for the turn of the
        hand), over via points on a 2.5 cm grid and goal points in the region. On each leg the finger axis points
        along the motion, so that the inner finger's pad face leads: pushed with its side or back, the tapered
        finger rode over the rim (goal task 5)."""
        lo, hi = scene.aabb(self.obj)
        p = scene.pos(self.obj)[:2]
        radius = 0.5 * max(hi[0] - lo[0], hi[1] - lo[1])
        center, half = scene.pos(self.target)[:2], np.abs(scene.mat(self.target) @ scene.size(self.target))[:2]
        inner = np.maximum(half - 0.012, 0.0)
        goals = np.array([center + inner * np.array([i, j]) for i in (-1, 0, 1) for j in (-1, 0, 1)])
        span_lo, span_hi = np.minimum(p, center) - 0.1, np.maximum(p, center) + 0.1
        gx, gy = np.meshgrid(np.arange(span_lo[0], span_hi[0], 0.025), np.arange(span_lo[1], span_hi[1], 0.025))
        vias = np.concatenate([p[None], np.stack([gx.ravel(), gy.ravel()], -1)])  # via 0: none
        plate_boxes = _boxes_2d(scene, (self.obj,), lo[2] + 0.003, hi[2])
        hand_boxes = _boxes_2d(scene, (self.obj,), self._hook_z(scene) + PALM_ABOVE_EEF - 0.01, np.inf)
        t = np.linspace(0.0, 1.0, 12)[:, None]
        along = np.linspace(-0.05, 0.15, 5)[:, None]  # the hand along the finger axis, from the plate's center

        def leg(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            """Clearance [...], length [...] and finger axis [..., 2] of straight legs start [..., 2] -> end."""
            delta = end - start
            length = np.linalg.norm(delta, axis=-1)
            d = delta / np.maximum(length, 1e-9)[..., None]
            path = start[..., None, :] + t * delta[..., None, :]  # [..., S, 2]
            hand = path[..., None, :] + along * d[..., None, None, :]  # [..., S, 5, 2]
            reach = LOW_REACH - np.linalg.norm(path + HOOK_OFFSET * d[..., None, :] - ROBOT_BASE_XY, axis=-1)
            c = np.minimum(_clearance(path, plate_boxes) - radius,
                           _clearance(hand, hand_boxes).min(-1) - HAND_HALF_WIDTH)
            return np.minimum(c, reach).min(-1), length, d

        c1, l1, d1 = leg(np.broadcast_to(p, vias.shape), vias)  # [V]
        c2, l2, d2 = leg(np.broadcast_to(vias[:, None], (len(vias), len(goals), 2)), np.broadcast_to(goals, (len(vias), len(goals), 2)))
        clear = np.minimum(c1[:, None], c2)
        clear[0] = c2[0]
        score = 10.0 * np.minimum(clear, 0.015) - l1[:, None] - l2 - 0.03 * (np.arange(len(vias)) > 0)[:, None]
        v, g = np.unravel_index(np.argmax(score), score.shape)
        if v == 0:
            return [(d2[0, g], goals[g])]
        return [(d1[v], vias[v]), (d2[v, g], goals[g])]

    def _hook_z(self, scene: Scene) -> float:
        """Grip site height that presses the open fingertips (1.1 cm below the grip site) on the plate's floor, below
        the rim's top: pushed at the rim alone, the 11 g plate tipped over its leading edge and the finger slipped
        out (goal task 5)."""
        lo, hi = scene.aabb(self.obj)
        return float(lo[2] + 0.4 * (hi[2] - lo[2]) + 0.007)

    def _hook(self, scene: Scene) -> tuple[np.ndarray, float]:
        d, _ = self.legs[0]
        xy = scene.pos(self.obj)[:2] + HOOK_OFFSET * d
        return np.array([*xy, self._hook_z(scene)]), yaw_for_finger_axis(d)

    def _approach(self, scene: Scene) -> np.ndarray:
        if self.legs is None:
            self.legs = self._plan_legs(scene)
        hook, yaw = self._hook(scene)
        target = hook + np.array([0.0, 0.0, 0.07])
        if scene.eef[2] < hook[2] + 0.03:  # the finger is still down in the plate (a retry): straight up first
            target[:2] = scene.eef[:2]
        err = target - scene.eef
        if (np.linalg.norm(err[:2]) < 0.008 and abs(err[2]) < 0.02 and yaw_error(scene, yaw) < 0.1) or self.t > 80:
            self.next()
        return servo(scene, target, yaw, OPEN)

    def _descend(self, scene: Scene) -> np.ndarray:
        hook, yaw = self._hook(scene)
        if abs(hook[2] - scene.eef[2]) < 0.004 or (self.t > 6 and self.stalled(scene.eef[2])) or self.t > 50:
            self.next()
        return servo(scene, hook, yaw, OPEN, speed=0.6)

    def _push(self, scene: Scene) -> np.ndarray:
        d, goal = self.legs[0]
        _, yaw = self._hook(scene)
        p = scene.pos(self.obj)[:2]
        if np.linalg.norm(scene.eef[:2] - HOOK_OFFSET * d - p) > 0.045:  # the finger left the hollow
            self.legs = None
            self.retry("approach")
            return servo(scene, scene.eef + np.array([0.0, 0.0, 0.04]), yaw, OPEN)
        if len(self.legs) > 1 and np.linalg.norm(goal - p) < 0.015:
            self.legs.pop(0)
            end = self.legs[0][1]  # the next leg starts where the plate stopped, up to 1.5 cm off the via point:
            self.legs[0] = ((end - p) / np.linalg.norm(end - p), end)  # the finger axis along the way it goes
            self.goto("regrip")  # turn the hand to the next leg
        elif len(self.legs) == 1 and np.linalg.norm(goal - p) < 0.006 or self.t > 150:
            self.goto("retreat")
        step = goal - p  # at most 2 cm ahead: kp * 2 cm = the 0.5 speed, so servo's per-axis clip keeps the direction
        step *= min(1.0, 0.02 / max(np.linalg.norm(step), 1e-6))
        target = np.array([*(scene.eef[:2] + step), self._hook_z(scene)])
        return servo(scene, target, yaw, OPEN, speed=0.5)

    def _regrip(self, scene: Scene) -> np.ndarray:
        """Finger out of the hollow, hand turned to the next leg, finger back in."""
        hook, yaw = self._hook(scene)
        if self.t == 0:
            self.lowering = False
        above = hook + np.array([0.0, 0.0, 0.07])
        if scene.eef[2] < hook[2] + 0.03 and not self.lowering:
            above[:2] = scene.eef[:2]  # straight up first
        elif np.linalg.norm((above - scene.eef)[:2]) < 0.008 and yaw_error(scene, yaw) < 0.1:
            self.lowering = True
        if not self.lowering:
            return servo(scene, above, yaw, OPEN)
        if abs(hook[2] - scene.eef[2]) < 0.004 or self.stalled(scene.eef[2]) or self.t > 120:
            self.next()
        return servo(scene, hook, yaw, OPEN, speed=0.6)

    def _push_on(self, scene: Scene) -> np.ndarray:
        return self._push(scene)

    def _retreat(self, scene: Scene) -> np.ndarray:
        _, yaw = self._hook(scene)
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold + np.array([0.0, 0.0, 0.08])
        if np.linalg.norm(target - scene.eef) < 0.02 or self.t > 20:
            self.next()
        return servo(scene, target, yaw, OPEN)
