"""The stage specification: its JSON Schema (versioned), defaults, and the checks a schema cannot express.

A spec is plain JSON (never code): ordered sub-plans of ordered stages, each stage a predicate from a fixed
vocabulary over the task's named entities, a stage reward and the key pose f2 shapes towards. ``check_spec``
returns the normalised spec (every default filled in, metadata from the task's facts) or raises ``SpecError``
with a message naming the offending stage and field.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import lru_cache
from pathlib import Path

from tgrpo.rewards.facts import TaskFacts

SCHEMA_VERSION = 1
SPECS_DIR = Path(__file__).resolve().parent / "specs"
SCHEMA_PATH = SPECS_DIR / f"schema-v{SCHEMA_VERSION}.json"

LITERAL_TYPES = ("in", "on", "open", "close", "turnon", "turnoff")
RELATION_TYPES = ("in", "on")
ARTICULATION_TYPES = ("open", "close", "turnon", "turnoff")

# Defaults of the optional predicate parameters (metres; finger gap in metres). Chosen from the Panda gripper and
# LIBERO object sizes measured here (docs/rewards.md, "predicates"): the gripper's finger gap is 0.078 wide open
# and 0.001 closed on nothing (0.003 squeezed against a knob); a bowl rim held measures 0.004-0.007, a soup can 0.063.
PREDICATE_DEFAULTS: dict[str, dict] = {
    "near": {"part": "box", "offset": [0.0, 0.0, 0.0], "dist": 0.03},
    "grasped": {"dist": 0.02, "min_opening": 0.002, "max_opening": 0.07},
    "lifted": {"height": 0.05},
    "above": {"xy_tol": 0.05, "min_dz": 0.0},
    "in": {},
    "on": {},
    "open": {},
    "close": {},
    "turnon": {},
    "turnoff": {},
}
KEY_POSE_DEFAULTS = {"part": "center", "at": "current", "offset": [0.0, 0.0, 0.0], "joint_target": None}


class SpecError(ValueError):
    """A stage spec that does not parse, does not match the schema, or names what the task does not have."""


@lru_cache(maxsize=1)
def load_schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def schema_text() -> str:
    """The schema as compact JSON (what the LLM prompt carries)."""
    return json.dumps(load_schema(), separators=(",", ":"), sort_keys=True)


def spec_hash(spec: dict) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of what the reward reads: the spec without its
    `source` label, so a new rules version or a re-asked LLM that yields the same stages keeps its validation
    record and key poses."""
    content = {k: v for k, v in spec.items() if k != "source"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _schema_errors(doc) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    out = []
    for err in errors[:5]:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        message = err.message
        if err.context:  # oneOf: report the branch that got furthest
            best = max(err.context, key=lambda e: len(e.absolute_path))
            message = f"{best.message} (at {'/'.join(str(p) for p in best.absolute_path) or where})"
        out.append(f"{where}: {message}")
    return out


def stages_of(spec: dict) -> list[dict]:
    """Every stage of a spec in order (sub-plans flattened)."""
    return [stage for plan in spec["subplans"] for stage in plan["stages"]]


def literal_of(pred: dict) -> tuple[str, ...] | None:
    """The LIBERO literal a predicate states exactly (None for geometric predicates and partial progress)."""
    if pred["type"] in RELATION_TYPES:
        return (pred["type"], pred["entity"], pred["target"])
    if pred["type"] in ARTICULATION_TYPES and pred.get("progress") is None:
        return (pred["type"], pred["entity"])
    return None


def _normalise_predicate(pred: dict) -> dict:
    out = copy.deepcopy(PREDICATE_DEFAULTS[pred["type"]])
    out.update(copy.deepcopy(pred))
    out["type"] = out["type"].lower()
    return out


def _normalise_key_pose(pose: dict | None) -> dict | None:
    if pose is None:
        return None
    out = copy.deepcopy(KEY_POSE_DEFAULTS)
    out.update(copy.deepcopy(pose))
    return out


def _check_entities(spec: dict, facts: TaskFacts) -> list[str]:
    problems = []
    known = ", ".join(facts.entities)

    def need(name: str, where: str, kinds: tuple[str, ...] = ("object", "fixture", "region")) -> None:
        kind = facts.kind(name)
        if kind is None:
            problems.append(f"{where}: unknown entity {name!r}; the task's entities are: {known}")
        elif kind not in kinds:
            problems.append(f"{where}: {name!r} is a {kind}, expected a {' or '.join(kinds)}")

    for stage in stages_of(spec):
        for i, pred in enumerate([stage["predicate"], *stage.get("also", [])]):
            where = f"stage {stage['name']!r} {'predicate' if i == 0 else f'also[{i - 1}]'} ({pred['type']})"
            t = pred["type"]
            if t in ("grasped", "lifted", "above", "in", "on"):
                need(pred["entity"], where, ("object",))
            else:
                need(pred["entity"], where)
            if "target" in pred:
                need(pred["target"], where)
                if pred["target"] == pred["entity"]:
                    problems.append(f"{where}: entity and target are both {pred['entity']!r}")
            if t in ARTICULATION_TYPES and facts.kind(pred["entity"]) is not None:
                art = facts.articulation(pred["entity"])
                allowed = ("drawer", "door") if t in ("open", "close") else ("knob",)
                if art not in allowed:
                    problems.append(f"{where}: {pred['entity']!r} has no {t} (it is not a "
                                    f"{' or '.join(allowed)})")
            if t == "near" and pred["part"] == "handle" and facts.articulation(pred["entity"]) is None:
                problems.append(f"{where}: part 'handle' needs a drawer region, door or knob, "
                                f"{pred['entity']!r} is none")
            if t == "grasped" and pred["min_opening"] >= pred["max_opening"]:
                problems.append(f"{where}: min_opening must be below max_opening")
        pose = stage.get("key_pose")
        if pose is not None:
            where = f"stage {stage['name']!r} key_pose"
            need(pose["entity"], where)
            if (pose["part"] == "handle" or pose["joint_target"]) and facts.kind(pose["entity"]) is not None \
                    and facts.articulation(pose["entity"]) is None:
                problems.append(f"{where}: part 'handle' / joint_target need a drawer region, door or knob, "
                                f"{pose['entity']!r} is none")
    return problems


def check_spec(doc, facts: TaskFacts, source: dict | None = None) -> dict:
    """Validate a spec document against the schema and the task; return it normalised.

    `doc` is the parsed JSON (a dict). The result carries suite, task, instruction, the task's entities and goal
    literals (overwritten from `facts`: a spec cannot redefine the task), and `source` when given.
    """
    if not isinstance(doc, dict):
        raise SpecError(f"a spec must be a JSON object, got {type(doc).__name__}")
    errors = _schema_errors(doc)
    if errors:
        raise SpecError(f"spec does not match schema v{SCHEMA_VERSION}: {'; '.join(errors)}")
    spec = copy.deepcopy(doc)
    for plan in spec["subplans"]:
        for stage in plan["stages"]:
            stage["predicate"] = _normalise_predicate(stage["predicate"])
            stage["also"] = [_normalise_predicate(p) for p in stage.get("also", [])]
            stage["key_pose"] = _normalise_key_pose(stage.get("key_pose"))
            stage.setdefault("description", "")
            stage.setdefault("latch", False)
        plan.setdefault("goal_literal", None)

    problems = _check_entities(spec, facts)
    stages = stages_of(spec)
    names = [s["name"] for s in stages]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"stage names must be unique, repeated: {', '.join(dupes)}")
    rewards = [s["reward"] for s in stages]
    for a, b, sa in zip(rewards, rewards[1:], stages[1:], strict=False):  # pairs of neighbours
        if not b > a:
            problems.append(f"stage rewards must increase strictly along the spec: {sa['name']!r} has {b} "
                            f"after {a}")
    n_goals = len(facts.goal_literals)
    for plan in spec["subplans"]:
        if plan["goal_literal"] is not None and plan["goal_literal"] >= n_goals:
            problems.append(f"sub-plan {plan['name']!r}: goal_literal {plan['goal_literal']} out of range "
                            f"(the task has {n_goals})")
    last = stages[-1]
    stated = {literal_of(p) for p in [last["predicate"], *last["also"]]}
    missing = [lit for lit in facts.goal_literals if tuple(x.lower() if i == 0 else x for i, x in enumerate(lit))
               not in stated]
    if missing:
        problems.append(f"the last stage {last['name']!r} must state every goal literal (as its predicate or in "
                        f"'also'); missing: {', '.join(' '.join(m) for m in missing)}")
    if problems:
        raise SpecError("; ".join(problems))

    spec["schema_version"] = SCHEMA_VERSION
    spec["suite"] = facts.suite
    spec["task_id"] = facts.task_id
    spec["task_name"] = facts.name
    spec["instruction"] = facts.instruction
    spec["entities"] = facts.to_dict()
    spec["goal_literals"] = [list(g) for g in facts.goal_literals]
    if source is not None:
        spec["source"] = source
    spec.setdefault("source", {"kind": "unknown"})
    return spec


def parse_spec_text(text: str) -> dict:
    """The JSON object in an answer: the whole text, or the one fenced ```json block in it. Nothing is evaluated."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError("the answer is empty")
    body = text.strip()
    if "```" in body:
        parts = body.split("```")
        blocks = [parts[i] for i in range(1, len(parts), 2)]
        if len(blocks) != 1:
            raise SpecError(f"expected exactly one fenced JSON block in the answer, found {len(blocks)}")
        body = blocks[0]
        body = body.removeprefix("json")
        body = body.strip()
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as err:
        raise SpecError(f"the answer is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") \
            from None
    if not isinstance(doc, dict):
        raise SpecError(f"the answer must be one JSON object, got {type(doc).__name__}")
    return doc
