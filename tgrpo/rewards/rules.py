"""Rule-based stage specs from a task's BDDL goal literals: the offline default for all 40 tasks.

Each goal literal that is not already true in the BDDL initial state becomes one sub-plan:

- ``in``/``on`` X Y (pick and place): reach X, grasp X, lift X (lifted by 5 cm while grasped, then latched while
  grasped: carrying it down to a lower target keeps the stage), carry X above Y, then the literal itself; "push"
  instructions: reach X (latched once reached: a push in two legs lifts the finger out to turn the hand, and a
  slipped finger is lifted out to start again, with the object no further from its goal), X horizontally near Y,
  then the literal; ``in`` a region of a fixture with a door (the
  microwave, closed above: X cannot be above it and go down into it): reach X, grasp X, lift X, X at the opening
  (horizontally near Y at any height), then the literal;
- ``open``/``close`` of a drawer region or door, ``turnon``/``turnoff`` of a knob: reach its handle, the joint
  moved part of the way, then the literal.

Order: a literal that closes a container comes after the literals that put something into it; putting something
into a closed drawer gets a preparatory "open" sub-plan first. The stages of later sub-plans also require the goal
literals of earlier ones to still hold, and the last stage states every goal literal (literals already true at
the start, e.g. a stove that is on, are only held there). Stage rewards are k / K for the k-th of K stages.
Key poses are the fallback ones: a point of the entity the stage is about plus a stage-specific offset
(demonstration key poses replace them, keyposes.py).
"""

from __future__ import annotations

from tgrpo.rewards.facts import TaskFacts
from tgrpo.rewards.schema import SCHEMA_VERSION, check_spec

RULES_VERSION = 3  # 2: the enclosure clause (in a region of a fixture with a door); 3: a push's reach is latched
LIFT_HEIGHT = 0.05  # m: the object is held at least this far above where it started
LIFT_KEY_HEIGHT = 0.15  # m: lift key pose above the object's start center
CARRY_KEY_HEIGHT = 0.12  # m: carry key pose above the target's top
PLACE_KEY_HEIGHT = 0.05  # m: place key pose above the target's top
CARRY_XY_TOL = 0.08  # m: "above" = centers within this horizontally (a plate, the basket are 12-14 cm wide)
CARRY_MIN_DZ = {"on": -0.05, "in": -0.15}  # m: bottom of X at most this far below the top of Y (objects whose
# origin is high above their bottom, bottles, are deep in a container before LIBERO's In, which reads the origin)
PUSH_XY_TOL = 0.08  # m
OPENING_XY_TOL = 0.12  # m: "at the opening" of a 24 x 17 cm heating region: the mug's origin 9 cm from its centre
# when slid in as far as the hand stays outside (measured, LIBERO-10 task 9), before it is pushed in
HANDLE_DIST = 0.05  # m: "reach the handle"
PARTIAL_PROGRESS = 0.3  # fraction of the way to LIBERO's open/close/turn-on threshold


def _key(entity: str, part: str = "center", at: str = "current", offset=(0.0, 0.0, 0.0), joint_target=None):
    return {"entity": entity, "part": part, "at": at, "offset": [float(x) for x in offset],
            "joint_target": joint_target}


def _literal_pred(lit: tuple[str, ...]) -> dict:
    if lit[0] in ("in", "on"):
        return {"type": lit[0], "entity": lit[1], "target": lit[2]}
    return {"type": lit[0], "entity": lit[1]}


def _pick_place(facts: TaskFacts, lit, holds) -> tuple[str, list[dict]]:
    kind, obj, target = lit
    relation = "in" if kind == "in" else "on"
    also = list(holds)
    if facts.instruction.lower().startswith("push"):
        return f"push {obj} {relation} {target}", [
            {"name": f"reach_{obj}", "description": f"gripper at the {obj} (then latched: the hand leaves a "
             f"pushed object to turn between legs)",
             "predicate": {"type": "near", "entity": obj, "part": "box", "dist": 0.03}, "also": also,
             "latch": True, "key_pose": _key(obj, "center")},
            {"name": f"push_{obj}", "description": f"{obj} pushed close to {target} horizontally",
             "predicate": {"type": "above", "entity": obj, "target": target, "xy_tol": PUSH_XY_TOL,
                           "min_dz": -0.3}, "also": also,
             "key_pose": _key(target, "origin", offset=(0.0, 0.0, 0.03))},
            {"name": f"place_{obj}", "description": f"{kind} {obj} {target} (LIBERO)",
             "predicate": _literal_pred(lit), "also": also,
             "key_pose": _key(target, "origin", offset=(0.0, 0.0, 0.03))},
        ]
    return f"put {obj} {relation} {target}", [
        {"name": f"reach_{obj}", "description": f"gripper at the {obj}",
         "predicate": {"type": "near", "entity": obj, "part": "box", "dist": 0.03}, "also": also,
         "key_pose": _key(obj, "center")},
        {"name": f"grasp_{obj}", "description": f"{obj} between the closed fingers",
         "predicate": {"type": "grasped", "entity": obj}, "also": also,
         "key_pose": _key(obj, "center")},
        {"name": f"lift_{obj}", "description": f"{obj} lifted {LIFT_HEIGHT} m, then held (latched while grasped)",
         "predicate": {"type": "lifted", "entity": obj, "height": LIFT_HEIGHT},
         "also": [{"type": "grasped", "entity": obj}, *also], "latch": True,
         "key_pose": _key(obj, "center", at="start", offset=(0.0, 0.0, LIFT_KEY_HEIGHT))},
        _carry_or_opening(facts, relation, obj, target, also),
        {"name": f"place_{obj}", "description": f"{kind} {obj} {target} (LIBERO)",
         "predicate": _literal_pred(lit), "also": also,
         "key_pose": _key(target, "top", offset=(0.0, 0.0, PLACE_KEY_HEIGHT))},
    ]


def _carry_or_opening(facts: TaskFacts, relation: str, obj: str, target: str, also: list[dict]) -> dict:
    """The stage before the literal: X above Y, or X at the opening of an enclosure with a door."""
    if relation == "in" and facts.articulation(facts.region_parents.get(target, "")) == "door":
        return {"name": f"at_opening_{obj}", "description": f"{obj} at the opening of {target}",
                "predicate": {"type": "above", "entity": obj, "target": target, "xy_tol": OPENING_XY_TOL,
                              "min_dz": -0.3}, "also": also,
                "key_pose": _key(target, "origin")}
    return {"name": f"carry_{obj}", "description": f"{obj} above {target}",
            "predicate": {"type": "above", "entity": obj, "target": target, "xy_tol": CARRY_XY_TOL,
                          "min_dz": CARRY_MIN_DZ[relation]}, "also": also,
            "key_pose": _key(target, "top", offset=(0.0, 0.0, CARRY_KEY_HEIGHT))}


def _articulate(lit, holds, goal: bool) -> tuple[str, list[dict]]:
    kind, entity = lit[0], lit[1]
    verb = {"open": "open", "close": "close", "turnon": "turn on", "turnoff": "turn off"}[kind]
    also = list(holds)
    final = _literal_pred(lit)
    return f"{verb} {entity}", [
        {"name": f"reach_handle_{entity}", "description": f"gripper at the handle of {entity}",
         "predicate": {"type": "near", "entity": entity, "part": "handle", "dist": HANDLE_DIST}, "also": also,
         "key_pose": _key(entity, "handle")},
        {"name": f"{kind}_partly_{entity}", "description": f"{entity} moved {PARTIAL_PROGRESS:.0%} of the way",
         "predicate": {"type": kind, "entity": entity, "progress": PARTIAL_PROGRESS}, "also": also,
         "key_pose": _key(entity, "handle", joint_target=kind)},
        {"name": f"{kind}_{entity}", "description": f"{kind} {entity} ({'LIBERO' if goal else 'joint range'})",
         "predicate": final, "also": also,
         "key_pose": _key(entity, "handle", joint_target=kind)},
    ]


def _order(facts: TaskFacts, literals: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Closing a container comes after putting things into it; otherwise BDDL order."""
    def container_of(lit):
        if lit[0] != "in":
            return None
        return facts.region_parents.get(lit[2], lit[2]), lit[2]

    fills = [container_of(lit) for lit in literals]
    first, last = [], []
    for lit in literals:
        closes = lit[0] == "close" and any(c is not None and lit[1] in c for c in fills)
        (last if closes else first).append(lit)
    return first + last


def rules_spec(facts: TaskFacts) -> dict:
    """The rule-based stage spec of one task, normalised and checked."""
    init = {tuple(x for x in lit) for lit in facts.init_literals}
    goals = [tuple(g) for g in facts.goal_literals]
    todo = _order(facts, [g for g in goals if g not in init])
    subplans: list[dict] = []
    for lit in todo:
        if lit[0] == "in" and facts.articulation(lit[2]) == "drawer" and ("open", lit[2]) not in init \
                and ("open", lit[2]) not in goals:
            name, stages = _articulate(("open", lit[2]), [], goal=False)
            subplans.append({"name": name, "goal_literal": None, "stages": stages})
        done_goals = [sp["goal_literal"] for sp in subplans if sp["goal_literal"] is not None]
        holds = [_literal_pred(goals[i]) for i in done_goals]
        if lit[0] in ("in", "on"):
            name, stages = _pick_place(facts, lit, holds)
        else:
            name, stages = _articulate(lit, holds, goal=True)
        subplans.append({"name": name, "goal_literal": goals.index(lit), "stages": stages})
    if not subplans:  # every goal literal already true at the start: one stage stating them
        subplans.append({"name": "keep the goal", "goal_literal": 0, "stages": [
            {"name": "goal", "predicate": _literal_pred(goals[0]), "also": [], "key_pose": None}]})
    last = subplans[-1]["stages"][-1]
    stated = [last["predicate"], *last["also"]]
    for g in goals:
        pred = _literal_pred(g)
        if pred not in stated:
            last["also"].append(pred)
    stages = [s for sp in subplans for s in sp["stages"]]
    for k, stage in enumerate(stages, start=1):
        stage["reward"] = round(k / len(stages), 6)
    doc = {"schema_version": SCHEMA_VERSION, "subplans": subplans}
    source = {"kind": "rules", "generator": f"tgrpo.rewards.rules v{RULES_VERSION}"}
    return check_spec(doc, facts, source=source)
