"""Stage predicates and key-pose points, compiled against a task's privileged layout into vectorised numpy.

Everything here reads only the privileged array ``P`` shaped [..., T, D] (time on the second-to-last axis, so
"at the episode start" is ``P[..., :1, :]``). Names resolve once at compile time; unknown names fail then.

Truth sources:
- a predicate that states a goal literal of the task exactly reads ``goal/<i>``: LIBERO's own truth value;
- Open/Close/TurnOn/TurnOff of other entities compare the joint with LIBERO's articulation ranges
  (``ranges/...`` slice, or the same numbers from LIBERO's asset classes when the layout has no such slice);
- In/On of other pairs, near, grasped, lifted and above are geometric approximations (docs/rewards.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tgrpo.rewards.facts import ARTICULATED_CATEGORIES, DRAWER_LEVELS

Array = np.ndarray
PredicateFn = Callable[[Array], Array]  # P [..., T, D] -> bool [..., T]
PointFn = Callable[[Array], Array]  # P [..., T, D] -> float [..., T, 3]

# LIBERO's articulated_objects.py ranges (open lo, hi, close lo, hi, turn-on lo, hi, turn-off lo, hi), used only
# when the layout carries no ``ranges/`` slice.
_NAN = float("nan")
FALLBACK_RANGES: dict[str, tuple[float, ...]] = {
    "drawers_negative": (-0.16, -0.14, 0.0, 0.005, _NAN, _NAN, _NAN, _NAN),  # wooden/white/yellow cabinet
    "short_cabinet": (0.10, 0.16, -0.005, 0.0, _NAN, _NAN, _NAN, _NAN),
    "microwave": (-2.094, -1.3, -0.005, 0.0, _NAN, _NAN, _NAN, _NAN),
    "short_fridge": (2.0, 2.7, -0.005, 0.0, _NAN, _NAN, _NAN, _NAN),
    "stove": (_NAN, _NAN, _NAN, _NAN, 0.5, 2.1, -0.005, 0.0),
}


class CompileError(ValueError):
    """A spec names something the task's privileged layout does not have."""


def category_of(name: str) -> str:
    """LIBERO instance name -> category (``wooden_cabinet_1`` -> ``wooden_cabinet``)."""
    return re.sub(r"_\d+$", "", name)


def _fallback_ranges(fixture: str) -> np.ndarray:
    cat = category_of(fixture)
    if cat in ("wooden_cabinet", "white_cabinet", "yellow_cabinet"):
        key = "drawers_negative"
    elif cat in ("flat_stove", "yellow_stove"):
        key = "stove"
    elif cat in FALLBACK_RANGES:
        key = cat
    else:
        raise CompileError(f"no articulation ranges known for {fixture!r}")
    return np.asarray(FALLBACK_RANGES[key], dtype=np.float64)


def quat_to_mat(q: Array) -> Array:
    """Rotation matrices [..., 3, 3] from quaternions [..., 4] (xyzw)."""
    x, y, z, w = (q[..., i] for i in range(4))
    n = np.sqrt(x * x + y * y + z * z + w * w)
    n = np.where(n > 0, n, 1.0)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


@dataclass(frozen=True)
class Joint:
    """An articulated joint of the layout and how its value reads."""

    slice: tuple[int, int]
    fixture: str
    joint: str
    ranges_slice: tuple[int, int] | None
    fallback: np.ndarray | None
    slide: bool
    handle: tuple[int, int] | None
    axis: tuple[int, int] | None
    anchor: tuple[int, int] | None


class Geometry:
    """Named quantities of one layout, evaluated on privileged arrays [..., T, D]."""

    def __init__(self, layout):
        self.layout = layout
        self.slices: dict[str, tuple[int, int]] = dict(layout.slices)
        self.goal_index = {tuple(x.lower() if i == 0 else x for i, x in enumerate(g)): k
                           for k, g in enumerate(layout.goal_literals)}

    # -- raw slices -------------------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return name in self.slices

    def sl(self, name: str) -> tuple[int, int]:
        if name not in self.slices:
            raise CompileError(f"the privileged layout has no slice {name!r}")
        return self.slices[name]

    def entity(self, name: str) -> tuple[int, int]:
        if f"pose/{name}" not in self.slices:
            known = ", ".join(k[5:] for k in self.slices if k.startswith("pose/"))
            raise CompileError(f"unknown entity {name!r}; the layout has: {known}")
        return self.slices[f"pose/{name}"]

    @staticmethod
    def take(P: Array, s: tuple[int, int]) -> Array:
        return P[..., s[0]:s[1]]

    def is_region(self, name: str) -> bool:
        return f"size/{name}" in self.slices or (f"aabb/{name}" not in self.slices and self._looks_like_region(name))

    @staticmethod
    def _looks_like_region(name: str) -> bool:
        return name.endswith(("_region", "_side")) or "_region_" in name

    # -- boxes and points -------------------------------------------------------------------------------------
    def box_fn(self, name: str) -> Callable[[Array], tuple[Array, Array]] | None:
        """World box (lo, hi) [..., T, 3] of an object/fixture (aabb) or region (site box); None if unknown."""
        pose = self.entity(name)
        if f"aabb/{name}" in self.slices:
            s = self.slices[f"aabb/{name}"]
            return lambda P: (P[..., s[0]:s[0] + 3], P[..., s[0] + 3:s[1]])
        if f"size/{name}" in self.slices:
            z = self.slices[f"size/{name}"]

            def region_box(P):
                pos = P[..., pose[0]:pose[0] + 3]
                half = np.abs(np.einsum("...ij,...j->...i", quat_to_mat(P[..., pose[0] + 3:pose[1]]),
                                        P[..., z[0]:z[1]]))
                return pos - half, pos + half
            return region_box
        return None

    def point_fn(self, name: str, part: str) -> PointFn:
        pose = self.entity(name)

        def origin(P):
            return P[..., pose[0]:pose[0] + 3]
        if part == "origin":
            return origin
        if part == "handle":
            joint = self.joint_of(name)
            if joint.handle is not None:
                h = joint.handle
                return lambda P: P[..., h[0]:h[1]]
            return origin
        box = self.box_fn(name)
        if box is None:
            return origin
        if part == "center":
            if f"aabb/{name}" not in self.slices:
                return origin  # a region's center is its site position
            return lambda P: 0.5 * (box(P)[0] + box(P)[1])
        if part == "top":
            def top(P):
                lo, hi = box(P)
                c = 0.5 * (lo + hi)
                return np.concatenate([c[..., :2], hi[..., 2:3]], axis=-1)
            return top
        raise CompileError(f"unknown part {part!r}")

    def bottom_fn(self, name: str) -> Callable[[Array], Array]:
        box = self.box_fn(name)
        pose = self.entity(name)
        if box is None or f"aabb/{name}" not in self.slices:
            return lambda P: P[..., pose[0] + 2]
        return lambda P: box(P)[0][..., 2]

    # -- articulation -----------------------------------------------------------------------------------------
    def joint_of(self, name: str) -> Joint:
        """The joint that Open/Close/TurnOn/TurnOff of `name` (a drawer region or an articulated fixture) reads."""
        self.entity(name)
        joints = [k for k in self.slices if k.startswith("joint/")]
        owner, candidates = None, []
        direct = [k for k in joints if k.split("/")[1] == name]
        if direct:
            owner, candidates = name, direct
        else:
            for k in joints:
                fixture = k.split("/")[1]
                if name.startswith(fixture + "_") and (owner is None or len(fixture) > len(owner)):
                    owner = fixture
            if owner is not None:
                level = name[len(owner) + 1:].removesuffix("_region")
                candidates = [k for k in joints if k.split("/")[1] == owner and
                              (k.split("/")[2] == f"{owner}_{level}_level" or
                               (level in DRAWER_LEVELS and f"_{level}" in k.split("/")[2]))]
        if owner is None or len(candidates) != 1:
            raise CompileError(f"{name!r} has no single articulated joint in the layout "
                               f"(found {candidates or 'none'})")
        key = candidates[0]
        _, fixture, joint = key.split("/", 2)
        rest = f"{fixture}/{joint}"
        kind = ARTICULATED_CATEGORIES.get(category_of(fixture))
        ranges = self.slices.get(f"ranges/{rest}")
        return Joint(
            slice=self.slices[key], fixture=fixture, joint=joint, ranges_slice=ranges,
            fallback=None if ranges is not None else _fallback_ranges(fixture),
            slide=(kind == "drawers"),
            handle=self.slices.get(f"handle/{rest}"), axis=self.slices.get(f"axis/{rest}"),
            anchor=self.slices.get(f"anchor/{rest}"),
        )

    @staticmethod
    def ranges(joint: Joint, P: Array) -> Array:
        if joint.ranges_slice is not None:
            return P[..., joint.ranges_slice[0]:joint.ranges_slice[1]]
        return np.broadcast_to(joint.fallback, P.shape[:-1] + (8,))


def articulation_truth(kind: str, q: Array, r: Array) -> tuple[Array, Array]:
    """(LIBERO's truth value, the threshold value) of Open/Close/TurnOn/TurnOff for joint values q and ranges r.

    Open/Close follow LIBERO's asset classes: where the open range lies below the close range (cabinets,
    microwave) open means q < max(open) and closed q > min(close); otherwise the reverse. TurnOn means
    q >= min(turn-on) and TurnOff q < max(turn-off).
    """
    open_lo, open_hi, close_lo, close_hi = r[..., 0], r[..., 1], r[..., 2], r[..., 3]
    negative = (open_lo + open_hi) < (close_lo + close_hi)
    with np.errstate(invalid="ignore"):
        if kind == "open":
            thr = np.where(negative, open_hi, open_lo)
            return np.where(negative, q < thr, q > thr), thr
        if kind == "close":
            thr = np.where(negative, close_lo, close_hi)
            return np.where(negative, q > thr, q < thr), thr
        if kind == "turnon":
            thr = r[..., 4]
            return q >= thr, thr
        if kind == "turnoff":
            thr = r[..., 7]
            return q < thr, thr
    raise CompileError(f"unknown articulation {kind!r}")


def joint_target_value(kind: str, r: Array) -> Array:
    """Middle of LIBERO's range for `kind` (the joint value a key pose's handle is moved to)."""
    idx = {"open": 0, "close": 2, "turnon": 4, "turnoff": 6}[kind]
    return 0.5 * (r[..., idx] + r[..., idx + 1])


def _rotate(v: Array, axis: Array, angle: Array) -> Array:
    """Rodrigues rotation of vectors v [..., 3] about unit axes [..., 3] by angles [...]."""
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    return v * c + np.cross(axis, v) * s + axis * np.sum(axis * v, -1, keepdims=True) * (1 - c)


def _at_start(P: Array) -> Array:
    return P[..., :1, :]


def compile_predicate(geo: Geometry, pred: dict) -> PredicateFn:
    """A normalised predicate dict -> function P [..., T, D] -> bool [..., T]."""
    t = pred["type"]
    literal = None
    if t in ("in", "on"):
        literal = (t, pred["entity"], pred["target"])
    elif t in ("open", "close", "turnon", "turnoff") and pred.get("progress") is None:
        literal = (t, pred["entity"])
    if literal is not None and literal in geo.goal_index:
        s = geo.sl(f"goal/{geo.goal_index[literal]}")
        return lambda P: P[..., s[0]] > 0.5

    eef = geo.sl("eef_pos")
    opening = geo.sl("gripper_opening")

    def eef_pos(P):
        return P[..., eef[0]:eef[1]]

    if t == "near":
        if pred["part"] == "box":
            box = geo.box_fn(pred["entity"])
            if box is not None:
                def near_box(P):
                    lo, hi = box(P)
                    p = eef_pos(P)
                    gap = np.maximum(np.maximum(lo - p, p - hi), 0.0)
                    return np.sqrt(np.sum(gap * gap, -1)) <= pred["dist"]
                return near_box
            point = geo.point_fn(pred["entity"], "origin")
        else:
            point = geo.point_fn(pred["entity"], pred["part"])
        offset = np.asarray(pred["offset"], dtype=np.float64)
        return lambda P: np.linalg.norm(eef_pos(P) - point(P) - offset, axis=-1) <= pred["dist"]

    if t == "grasped":
        box = geo.box_fn(pred["entity"])
        if box is None:  # no bounding box in the layout: distance to the origin, widened by 5 cm
            origin = geo.point_fn(pred["entity"], "origin")

            def close_to(P):
                return np.linalg.norm(eef_pos(P) - origin(P), axis=-1) <= pred["dist"] + 0.05
        else:
            def close_to(P):
                lo, hi = box(P)
                p = eef_pos(P)
                gap = np.maximum(np.maximum(lo - p, p - hi), 0.0)
                return np.sqrt(np.sum(gap * gap, -1)) <= pred["dist"]

        def grasped(P):
            g = P[..., opening[0]]
            return close_to(P) & (g > pred["min_opening"]) & (g < pred["max_opening"])
        return grasped

    if t == "lifted":
        s = geo.entity(pred["entity"])
        z = s[0] + 2
        return lambda P: P[..., z] - _at_start(P)[..., z] >= pred["height"]

    if t == "above":
        center = geo.point_fn(pred["entity"], "center")
        bottom = geo.bottom_fn(pred["entity"])
        target_center = geo.point_fn(pred["target"], "center")
        target_top = geo.point_fn(pred["target"], "top")

        def above(P):
            dxy = center(P)[..., :2] - target_center(P)[..., :2]
            return (np.linalg.norm(dxy, axis=-1) <= pred["xy_tol"]) & \
                (bottom(P) - target_top(P)[..., 2] >= pred["min_dz"])
        return above

    if t == "in":
        center = geo.point_fn(pred["entity"], "center")
        box = geo.box_fn(pred["target"])
        if box is None:
            target = geo.point_fn(pred["target"], "origin")
            return lambda P: (np.linalg.norm(center(P)[..., :2] - target(P)[..., :2], axis=-1) < 0.05) & \
                (np.abs(center(P)[..., 2] - target(P)[..., 2]) < 0.1)
        region = geo.is_region(pred["target"])

        def inside(P):
            lo, hi = box(P)
            if region:  # LIBERO's SiteObject.in_box: 1 cm extra below
                lo = lo - np.array([0.0, 0.0, 0.01])
            p = geo.point_fn(pred["entity"], "origin")(P) if region else center(P)
            return np.all((p > lo) & (p < hi), axis=-1)
        return inside

    if t == "on":
        origin = geo.point_fn(pred["entity"], "origin")
        target_pose = geo.entity(pred["target"])
        if f"size/{pred['target']}" in geo.slices:
            size = geo.sl(f"size/{pred['target']}")

            def on_region(P):  # LIBERO's SiteObject.under (its rotation convention), contact not checked
                mat = quat_to_mat(P[..., target_pose[0] + 3:target_pose[1]])
                delta = np.einsum("...ij,...j->...i", mat, origin(P) - P[..., target_pose[0]:target_pose[0] + 3])
                half = P[..., size[0]:size[1]]
                return (delta[..., 2] > half[..., 2] - 0.005) & (delta[..., 2] < half[..., 2] + 0.10) & \
                    np.all(np.abs(delta[..., :2]) < half[..., :2], axis=-1)
            return on_region
        target_origin = geo.point_fn(pred["target"], "origin")
        bottom = geo.bottom_fn(pred["entity"])
        target_top = geo.point_fn(pred["target"], "top")

        def on_object(P):  # LIBERO's ObjectState.check_ontop with contact approximated by heights
            a, b = origin(P), target_origin(P)
            return (b[..., 2] <= a[..., 2]) & (np.linalg.norm(a[..., :2] - b[..., :2], axis=-1) < 0.03) & \
                (bottom(P) - target_top(P)[..., 2] <= 0.01)
        return on_object

    if t in ("open", "close", "turnon", "turnoff"):
        joint = geo.joint_of(pred["entity"])
        progress = pred.get("progress")
        js = joint.slice

        def articulation(P):
            q = P[..., js[0]]
            truth, thr = articulation_truth(t, q, Geometry.ranges(joint, P))
            if progress is None:
                return truth
            q0 = _at_start(P)[..., js[0]]
            span = thr - q0
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = np.where(np.abs(span) > 1e-9, (q - q0) / np.where(span == 0, 1.0, span), 1.0)
            return truth | (frac >= progress)
        return articulation

    raise CompileError(f"unknown predicate type {t!r}")


def compile_key_pose(geo: Geometry, pose: dict | None) -> PointFn | None:
    """A normalised key pose -> function P [..., T, D] -> key position [..., T, 3] (None: no shaping)."""
    if pose is None:
        return None
    point = geo.point_fn(pose["entity"], pose["part"])
    offset = np.asarray(pose["offset"], dtype=np.float64)
    target = pose.get("joint_target")
    if target:
        joint = geo.joint_of(pose["entity"])
        if pose["part"] != "handle":
            point_handle = geo.point_fn(pose["entity"], "handle")
        else:
            point_handle = point
        js = joint.slice

        def moved(P):
            h = point_handle(P)
            if joint.axis is None or joint.anchor is None:
                return h  # no axis in the layout: the handle where it is
            q = P[..., js[0]]
            dq = np.nan_to_num(joint_target_value(target, Geometry.ranges(joint, P)) - q)
            axis = P[..., joint.axis[0]:joint.axis[1]]
            if joint.slide:
                return h + axis * dq[..., None]
            anchor = P[..., joint.anchor[0]:joint.anchor[1]]
            return anchor + _rotate(h - anchor, axis, dq)
        base = moved
    else:
        base = point
    if pose["at"] == "start":
        return lambda P: np.broadcast_to(base(_at_start(P)), P.shape[:-1] + (3,)) + offset
    return lambda P: base(P) + offset
