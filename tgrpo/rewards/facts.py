"""Static facts of a LIBERO task that stage specifications are written against, read from its BDDL file.

No simulator is built: the BDDL file is parsed with LIBERO's own parser. The entity names are the ones the
task's privileged layout uses (``pose/<entity>``): LIBERO's object-state table holds every object, every
fixture except the workspace the scene stands on (``main_table``, ``floor``, ``kitchen_table``, ...) and every
region whose parent exists in the scene (``tests/tgrpo/rewards/test_rewards_libero.py`` checks this against
real envs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Workspace fixture categories: LIBERO's problem classes load them as the arena (not as fixtures), so they have no
# object state (`problems/libero_*_manipulation.py`, `if fixture_category == "<workspace>": continue`).
ARENA_CATEGORIES = ("table", "floor", "kitchen_table", "living_room_table", "study_table", "coffee_table",
                    "countertop")

# Articulated fixture categories of the 40 benchmark tasks and what moves (LIBERO's articulated_objects.py):
# cabinets have one slide joint per drawer level, each drawer's region site moves with it (`<name>_<level>_region`
# -> joint `<name>_<level>_level`); a microwave has one door hinge; a stove one knob hinge.
ARTICULATED_CATEGORIES: dict[str, str] = {
    "wooden_cabinet": "drawers",
    "white_cabinet": "drawers",
    "yellow_cabinet": "drawers",
    "short_cabinet": "drawers",
    "microwave": "door",
    "short_fridge": "door",
    "flat_stove": "knob",
    "yellow_stove": "knob",
}
DRAWER_LEVELS = ("top", "middle", "bottom")


@dataclass(frozen=True)
class TaskFacts:
    """What a stage spec of one task may name, and what it must achieve."""

    suite: str
    task_id: int
    name: str
    instruction: str
    objects: tuple[str, ...]
    fixtures: tuple[str, ...]
    regions: tuple[str, ...]
    goal_literals: tuple[tuple[str, ...], ...]
    init_literals: tuple[tuple[str, ...], ...] = ()
    categories: dict[str, str] = field(default_factory=dict)  # object/fixture name -> BDDL category
    region_parents: dict[str, str] = field(default_factory=dict)  # region -> the object/fixture it belongs to

    @property
    def key(self) -> str:
        return f"{self.suite}/{self.task_id}"

    @property
    def entities(self) -> tuple[str, ...]:
        return self.objects + self.fixtures + self.regions

    def kind(self, entity: str) -> str | None:
        """'object', 'fixture', 'region' or None for a name the task does not have."""
        if entity in self.objects:
            return "object"
        if entity in self.fixtures:
            return "fixture"
        if entity in self.regions:
            return "region"
        return None

    def articulation(self, entity: str) -> str | None:
        """'drawer', 'door' or 'knob' when Open/Close/TurnOn/TurnOff applies to the entity, else None."""
        if entity in self.regions:
            parent = self.region_parents.get(entity, "")
            if ARTICULATED_CATEGORIES.get(self.categories.get(parent, "")) == "drawers":
                level = entity[len(parent) + 1:].removesuffix("_region")
                return "drawer" if level in DRAWER_LEVELS else None
            return None
        kind = ARTICULATED_CATEGORIES.get(self.categories.get(entity, ""))
        return {"door": "door", "knob": "knob"}.get(kind or "")

    def to_dict(self) -> dict:
        return {
            "objects": list(self.objects),
            "fixtures": list(self.fixtures),
            "regions": list(self.regions),
        }


def facts_from_problem(suite: str, task_id: int, name: str, instruction: str, problem: dict) -> TaskFacts:
    """TaskFacts from a parsed BDDL problem (LIBERO's ``robosuite_parse_problem`` output)."""
    categories: dict[str, str] = {}
    objects: list[str] = []
    for category, names in problem["objects"].items():
        for n in names:
            objects.append(n)
            categories[n] = category
    fixtures: list[str] = []
    arena: set[str] = set()
    for category, names in problem["fixtures"].items():
        for n in names:
            categories[n] = category
            if category in ARENA_CATEGORIES:
                arena.add(n)
            else:
                fixtures.append(n)
    present = set(objects) | set(fixtures) | arena
    regions, parents = [], {}
    for region, info in problem["regions"].items():
        target = info.get("target")
        if target in present:
            regions.append(region)
            parents[region] = target
    return TaskFacts(
        suite=suite,
        task_id=task_id,
        name=name,
        instruction=instruction,
        objects=tuple(objects),
        fixtures=tuple(fixtures),
        regions=tuple(regions),
        goal_literals=tuple(tuple(str(x) for x in lit) for lit in problem["goal_state"]),
        init_literals=tuple(tuple(str(x) for x in lit) for lit in problem.get("initial_state", [])),
        categories=categories,
        region_parents=parents,
    )


def task_facts(suite: str, task_id: int) -> TaskFacts:
    """Facts of one benchmark task from its BDDL file (imports LIBERO, builds nothing)."""
    import libero.libero.envs  # noqa: F401  (registers LIBERO's problem classes and objects)
    from libero.libero.envs.bddl_utils import robosuite_parse_problem

    from tgrpo.envs.libero_env import task_info

    info = task_info(suite, task_id)
    if not os.path.exists(info.bddl_file):
        raise FileNotFoundError(f"BDDL file of {info.suite} task {task_id} not found: {info.bddl_file}")
    problem = robosuite_parse_problem(info.bddl_file)
    return facts_from_problem(info.suite, task_id, info.name, info.instruction, problem)
