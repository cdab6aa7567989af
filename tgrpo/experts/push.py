"""Pushing a flat object with a hollow (a plate) along the table into a region, one open finger in the hollow."""

from __future__ import annotations

import numpy as np

from tgrpo.experts.control import OPEN, servo, yaw_error
from tgrpo.experts.geometry import HAND_HALF_WIDTH, PALM_ABOVE_EEF, yaw_for_finger_axis
from tgrpo.experts.scene import Scene
from tgrpo.experts.skill import WAYPOINT_TOL, Skill

HOOK_OFFSET = 0.052  # an open finger's center from the grip site, along the finger axis
ROBOT_BASE_XY = np.array([-0.66, 0.0])  # where LIBERO mounts the Panda (the same in all four suites)
LOW_REACH = 0.77  # horizontal reach from the base with the hand at table height (worked at 0.76, stalled at 0.82)

# Stage exits (`Skill.stage_done`): `*_TOL` in metres (`*_YAW_TOL`, `*_ROT_TOL` in radians); `*_STEPS`: the most
# steps a stage runs before it ends anyway.
APPROACH_XY_TOL = 0.008  # m: the finger is above the hollow
APPROACH_Z_TOL = 0.02  # m: at the hover height
APPROACH_YAW_TOL = 0.1  # rad: the finger axis along the leg
APPROACH_STEPS = 80
HOLLOW_SLIP = 0.045  # m: the finger this far from the plate's centre while pushing has left the hollow
HOOK_Z_TOL = 0.004  # m: the fingertips on the plate's floor (descend, regrip)
DESCEND_STEPS = 50
REGRIP_STEPS = 120  # the regrip lifts, turns and lowers the hand: it gets more steps than a descent
VIA_TOL = 0.015  # m: the plate is at the first leg's via point (it stops up to this far off it)
GOAL_TOL = 0.006  # m: the plate is at its goal point
PUSH_STEPS = 150
RETREAT_STEPS = 20


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
        pairs = (len(vias), len(goals), 2)
        c2, l2, d2 = leg(np.broadcast_to(vias[:, None], pairs), np.broadcast_to(goals, pairs))
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
        if self.stage_done(np.linalg.norm(err[:2]) < APPROACH_XY_TOL and abs(err[2]) < APPROACH_Z_TOL
                           and yaw_error(scene, yaw) < APPROACH_YAW_TOL, limit=APPROACH_STEPS):
            self.next()
        return servo(scene, target, yaw, OPEN)

    def _descend(self, scene: Scene) -> np.ndarray:
        hook, yaw = self._hook(scene)
        if self.stage_done(abs(hook[2] - scene.eef[2]) < HOOK_Z_TOL, limit=DESCEND_STEPS, stall=scene.eef[2]):
            self.next()
        return servo(scene, hook, yaw, OPEN, speed=0.6)

    def _push(self, scene: Scene) -> np.ndarray:
        d, goal = self.legs[0]
        _, yaw = self._hook(scene)
        p = scene.pos(self.obj)[:2]
        if np.linalg.norm(scene.eef[:2] - HOOK_OFFSET * d - p) > HOLLOW_SLIP:
            self.legs = None
            self.retry("approach")
            return servo(scene, scene.eef + np.array([0.0, 0.0, 0.04]), yaw, OPEN)
        if len(self.legs) > 1 and np.linalg.norm(goal - p) < VIA_TOL:
            self.legs.pop(0)
            end = self.legs[0][1]  # the next leg starts where the plate stopped, up to 1.5 cm off the via point:
            self.legs[0] = ((end - p) / np.linalg.norm(end - p), end)  # the finger axis along the way it goes
            self.goto("regrip")  # turn the hand to the next leg
        elif self.stage_done(len(self.legs) == 1 and np.linalg.norm(goal - p) < GOAL_TOL, limit=PUSH_STEPS):
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
        elif np.linalg.norm((above - scene.eef)[:2]) < APPROACH_XY_TOL and yaw_error(scene, yaw) < APPROACH_YAW_TOL:
            self.lowering = True
        if not self.lowering:
            return servo(scene, above, yaw, OPEN)
        if self.stage_done(abs(hook[2] - scene.eef[2]) < HOOK_Z_TOL, limit=REGRIP_STEPS, stall=scene.eef[2],
                           stall_after=-1):  # lowering starts mid-stage: a stall counts from its first step
            self.next()
        return servo(scene, hook, yaw, OPEN, speed=0.6)

    def _push_on(self, scene: Scene) -> np.ndarray:
        return self._push(scene)

    def _retreat(self, scene: Scene) -> np.ndarray:
        _, yaw = self._hook(scene)
        if self.t == 0:
            self.hold = scene.eef.copy()
        target = self.hold + np.array([0.0, 0.0, 0.08])
        if self.stage_done(np.linalg.norm(target - scene.eef) < WAYPOINT_TOL, limit=RETREAT_STEPS):
            self.next()
        return servo(scene, target, yaw, OPEN)
