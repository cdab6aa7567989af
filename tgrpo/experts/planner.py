"""From BDDL goal literals to a sequence of skills.

Per predicate: ``In``/``On`` with a graspable object -> pick-and-place (a plate pushed to a table region -> push);
``Open``/``Close`` of a drawer region or a door -> articulate; ``TurnOn``/``TurnOff`` -> knob. Order: opening first
(a drawer must be open before something goes in), then the knob, then placements, then closing. A placement into
a closed drawer region gets an opening skill in front of it.
"""

from __future__ import annotations

import numpy as np

from tgrpo.experts.articulated import CloseDrawer, HingeDoor, OpenDrawer, PullDrawerFully, TurnKnob
from tgrpo.experts.enclosure import InsertThroughDoor, handle_of
from tgrpo.experts.geometry import horizontal_unit, region_box, slide_opening_dir
from tgrpo.experts.pick_place import PickPlace
from tgrpo.experts.push import Push
from tgrpo.experts.scene import Scene
from tgrpo.experts.skill import Skill

PLACE_PREDICATES = ("in", "on")


def site_parent(scene: Scene, site: str) -> str | None:
    """The object or fixture a region site belongs to (LIBERO names sites '<parent>_<region>')."""
    best = None
    for name in list(scene.layout.movable) + fixtures(scene):
        if site.startswith(name + "_") and (best is None or len(name) > len(best)):
            best = name
    return best


def fixtures(scene: Scene) -> list[str]:
    return [k[5:] for k in scene.layout.slices if k.startswith("aabb/") and k[5:] not in scene.layout.movable]


def is_site(scene: Scene, name: str) -> bool:
    return scene.has(f"size/{name}")


def place_function(kind: str, obj: str, target: str, slot: tuple[int, tuple[str, ...]] = (0, ())):
    """Where `obj` goes for literal (kind, obj, target): xy of its origin, support surface, height to clear.

    slot: (i, objects) when several objects go on the same region site (LIBERO-10 task 8 puts two moka pots on
    one cook region): object i of them gets its own spot (`region_slot_offset`), so that the second is not
    lowered onto the first. Into a drawer under another part of its fixture: `drawer_spot`.
    """

    def place(scene: Scene) -> dict:
        if not is_site(scene, target):
            _lo, hi = scene.aabb(target)
            return {"xy": scene.pos(target)[:2], "surface": hi[2], "clear": hi[2]}
        center, half = region_box(scene, target)
        parent = site_parent(scene, target)
        parent_top = scene.aabb(parent)[1][2] if parent is not None else -np.inf
        if kind == "in":
            xy, surface = center[:2], center[2] - half[2]
            if parent is not None:
                drawer = _drawer_part(scene, parent, target)
                if drawer is not None:
                    surface = scene.get(f"part/{drawer}")[2] + 0.01
                    spot = drawer_spot(scene, obj, parent, drawer, center, half)
                    xy = xy if spot is None else spot
            return {"xy": xy, "surface": surface, "clear": max(parent_top, center[2] + half[2]), "drop": 0.02}
        surface = center[2] + scene.size(target)[2]
        xy = center[:2] + region_slot_offset(scene, half, *slot)
        return {"xy": xy, "surface": surface, "clear": max(surface, parent_top if parent else surface)}

    return place


def drawer_overhang(scene: Scene, parent: str, drawer: str) -> float | None:
    """How far out, along the opening direction o of drawer `drawer` ('<fixture>/<joint>'), the fixture's parts
    above it reach: max of (point . o) over their boxes (handles included). None when no part is above."""
    o = horizontal_unit(slide_opening_dir(scene, drawer))[:2]
    top = scene.get(f"part/{drawer}")[5]
    reach = None
    for joint in scene.joints_of(parent):
        key = f"{parent}/{joint}"
        if key == drawer or not scene.has(f"part/{key}"):
            continue
        box = scene.get(f"part/{key}")  # lo xyz, hi xyz
        if box[2] < top - 0.005:
            continue
        corners = np.array([[x, y] for x in (box[0], box[3]) for y in (box[1], box[4])])
        r = float((corners @ o).max())
        reach = r if reach is None else max(reach, r)
    return reach


def drawer_spot(scene: Scene, obj: str, parent: str, drawer: str, center: np.ndarray,
                half: np.ndarray) -> np.ndarray | None:
    """xy for `obj`'s origin in a drawer region (centre, half extents) under another part of its fixture, or None
    when nothing is above: along the opening direction, the object's footprint goes midway between the overhang's
    reach (an object lowered from above must stay out from under it) and the region's front edge; across, the
    region's centre. LIBERO-10 task 3: the bowl (10.7 cm) in the bottom drawer pulled fully open leaves 8 mm."""
    reach = drawer_overhang(scene, parent, drawer)
    if reach is None:
        return None
    o = horizontal_unit(slide_opening_dir(scene, drawer))[:2]
    lo, hi = scene.aabb(obj)
    w = 0.5 * float(np.abs(hi[:2] - lo[:2]) @ np.abs(o))  # the object's half extent along o
    front = float(center[:2] @ o + np.abs(half[:2]) @ np.abs(o))  # the region's outer edge
    s = 0.5 * ((reach + w) + (front - w))
    return center[:2] + (s - float(center[:2] @ o)) * o


def needs_full_opening(scene: Scene, target: str, ref: tuple[str, str]) -> bool:
    """A placement into a drawer under another part of its fixture needs all the room the drawer has."""
    parent = site_parent(scene, target)
    return parent is not None and drawer_overhang(scene, parent, "/".join(ref)) is not None


SLOT_EDGE_MARGIN = 0.02  # an object's origin stays this far inside the region's edge
SLOT_GAP = 0.02  # wanted free gap between neighbouring objects in one region


def region_slot_offset(scene: Scene, half: np.ndarray, index: int, objects: tuple[str, ...]) -> np.ndarray:
    """Offset from a region's centre of object `index` of `objects`, all placed on that region.

    The objects go in a row along the world axis (x or y) that leaves the widest gap between neighbours: spacing
    d = min(room for the origins, widest object + SLOT_GAP) along that axis, origins at (i - (n - 1) / 2) d.
    """
    n = len(objects)
    if n < 2:
        return np.zeros(2)
    extents = np.array([scene.aabb(o)[1][:2] - scene.aabb(o)[0][:2] for o in objects])  # [n, 2]
    widest = extents.max(axis=0)
    spacing = np.minimum(2 * np.maximum(half[:2] - SLOT_EDGE_MARGIN, 0) / (n - 1), widest + SLOT_GAP)
    axis = int(np.argmax(spacing - widest))
    offset = np.zeros(2)
    offset[axis] = (index - (n - 1) / 2) * spacing[axis]
    return offset


def _drawer_part(scene: Scene, parent: str, site: str) -> str | None:
    """'<fixture>/<joint>' of the drawer a region site sits in (same level name), if any."""
    level = site[len(parent) + 1:].replace("_region", "")
    for joint in scene.joints_of(parent):
        if level and level in joint:
            return f"{parent}/{joint}"
    return None


def joint_of(scene: Scene, name: str) -> tuple[str, str] | None:
    """(entity, joint) a literal's argument refers to: a drawer region site or an articulated object."""
    if is_site(scene, name):
        parent = site_parent(scene, name)
        part = _drawer_part(scene, parent, name) if parent is not None else None
        return tuple(part.split("/", 1)) if part else None
    joints = scene.joints_of(name)
    return (name, joints[0]) if joints else None


def _is_flat_and_wide(scene: Scene, obj: str) -> bool:
    lo, hi = scene.aabb(obj)
    return (hi[2] - lo[2]) < 0.03 and min(hi[0] - lo[0], hi[1] - lo[1]) > 0.08


def _joint_skill(kind: str, entity: str, joint: str, scene: Scene, literal_index: int | None) -> Skill:
    slide = _is_slide(scene, entity, joint)
    if kind in ("turnon", "turnoff"):
        skill = TurnKnob(entity, joint, literal_index)
        skill.goal = kind
        return skill
    if slide:
        return (OpenDrawer if kind == "open" else CloseDrawer)(entity, joint, literal_index)
    skill = HingeDoor(entity, joint, literal_index)
    skill.goal = kind
    skill.name = f"{kind}_door"
    return skill


def _is_slide(scene: Scene, entity: str, joint: str) -> bool:
    """A slide joint moves its part along its axis: the drawers' open range is a few centimetres."""
    r = scene.get(f"ranges/{entity}/{joint}")
    return bool(np.isfinite(r[0]) and max(abs(r[0]), abs(r[1])) < 0.5)


def _objects_per_region(scene: Scene) -> dict[str, tuple[str, ...]]:
    """Region sites that two or more `On` literals put objects on -> those objects, in literal order.

    Counted over all goal literals, satisfied or not, so that a replan keeps every object's spot.
    """
    per_region: dict[str, list[str]] = {}
    for literal in scene.layout.goal_literals:
        if literal[0].lower() == "on" and is_site(scene, literal[2]):
            per_region.setdefault(literal[2], []).append(literal[1])
    return {site: tuple(objs) for site, objs in per_region.items() if len(objs) > 1}


def _enclosure_door(scene: Scene, site: str) -> str | None:
    """'<fixture>/<joint>' of the hinged door of the fixture a region site lies in (the microwave), if any."""
    parent = site_parent(scene, site)
    if parent is None or parent in scene.layout.movable:
        return None
    for joint in scene.joints_of(parent):
        if not _is_slide(scene, parent, joint) and scene.has(f"anchor/{parent}/{joint}"):
            r = scene.get(f"ranges/{parent}/{joint}")
            if np.isfinite(r[0]):  # an open/close range: a door, not a knob
                return f"{parent}/{joint}"
    return None


def plan_task(scene: Scene) -> list[Skill]:
    """Skills for the goal literals, in execution order (the policy skips those already true)."""
    opens, knobs, places, closes = [], [], [], []
    sharing = _objects_per_region(scene)
    for i, literal in enumerate(scene.layout.goal_literals):
        kind = literal[0].lower()
        if kind in PLACE_PREDICATES:
            obj, target = literal[1], literal[2]
            if kind == "on" and is_site(scene, target) and site_parent(scene, target) is None \
                    and _is_flat_and_wide(scene, obj):
                places.append(Push(obj, target, literal_index=i))
                continue
            door = _enclosure_door(scene, target) if kind == "in" and is_site(scene, target) else None
            if door is not None and handle_of(obj) is not None:
                entity, joint = door.split("/", 1)
                opens.append(_joint_skill("open", entity, joint, scene, None))  # skipped when already open
                places.append(InsertThroughDoor(obj, target, door, literal_index=i))
                continue
            ref = joint_of(scene, target) if kind == "in" and is_site(scene, target) else None
            if ref is not None and _is_slide(scene, *ref):
                opens.append(OpenDrawer(*ref, literal_index=None))  # skipped when already open
                if needs_full_opening(scene, target, ref):
                    opens.append(PullDrawerFully(*ref, target, literal_index=None))
            objects = sharing.get(target, ()) if kind == "on" else ()
            slot = (objects.index(obj), objects) if obj in objects else (0, ())
            places.append(PickPlace(obj, target, place_function(kind, obj, target, slot), literal_index=i))
        elif kind in ("open", "close", "turnon", "turnoff"):
            ref = joint_of(scene, literal[1])
            if ref is None:
                raise NotImplementedError(f"no articulated joint found for literal {literal}")
            skill = _joint_skill(kind, *ref, scene, i)
            {"open": opens, "close": closes}.get(kind, knobs).append(skill)
        else:
            raise NotImplementedError(f"no skill for predicate {kind!r}")
    return opens + knobs + places + closes
