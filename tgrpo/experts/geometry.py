"""Hand and scene geometry the skills share: grasp yaws, the hand's clearance from its neighbours, supporting
surfaces, region boxes, the directions of articulated parts. Pure functions of a `Scene`."""

from __future__ import annotations

import numpy as np

from tgrpo.experts.scene import Scene, rotvec_of, wrap_half_turn

HAND_HALF_LENGTH = 0.105  # the Panda hand spans about +-10 cm along the finger axis
HAND_HALF_WIDTH = 0.035  # m: the hand's half width across the finger axis
PALM_ABOVE_EEF = 0.04  # the palm's underside sits about 4 cm above the grip site
GRASP_SPAN = 0.072  # widest extent the open fingers (7.8 cm) take with some margin


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
