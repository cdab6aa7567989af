"""The RL tasks of a suite by a rule fixed before any RL run (`--tasks auto[:N]`, the small profile's default): the
N tasks whose SFT success on the official states is nearest 50 % (most room to move either way; ties: lower task
id), from the suite's finished SFT evaluation stages. `make reproduce` resolves the rule itself; this prints it:

    python -m bench.reproduce.pick_tasks --store results/reproduce --suite long --profile small --count 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.reproduce.plan import TaskRule, build_plan
from bench.reproduce.store import RunStore, Stage
from tgrpo.envs.protocol import TASKS_PER_SUITE


class Unfinished(ValueError):
    """The rule cannot be applied yet: some SFT evaluation it reads has not finished."""


def sft_rates(store: RunStore, suite: str, profile: str, **plan_kwargs) -> dict[int, float]:
    """Task id -> SFT success rate over every task of the suite; `Unfinished` naming the tasks whose evaluation has
    not finished. `plan_kwargs`: what else shapes the evaluation stages (`build_plan`'s `checkpoint`,
    `eval_episodes`)."""
    stages = [s for s in build_plan(suite, profile, ("sft",), tuple(range(TASKS_PER_SUITE)), **plan_kwargs)
              if s.kind == "eval"]
    missing = [s.config["tasks"][0] for s in stages if not store.is_done(s)]
    if missing:
        raise Unfinished(f"SFT evaluation of {suite} ({profile}) not finished for tasks {missing}: run "
                         f"`make reproduce SUITE={suite} PROFILE={profile} METHODS=sft` first")
    rates = {}
    for stage in stages:
        for task in json.loads((store.path(stage) / "eval" / "summary.json").read_text())["tasks"]:
            rates[task["task_id"]] = task["success_rate"]
    return rates


def resolve(store: RunStore, suite: str, profile: str, rule: TaskRule, **plan_kwargs) -> tuple[int, ...]:
    """The RL tasks `rule` picks from the suite's finished SFT evaluations (`Unfinished` while any is not)."""
    return tuple(nearest_half(sft_rates(store, suite, profile, **plan_kwargs), rule.count))


def plan_by_rule(store: RunStore, suite: str, profile: str, rule: TaskRule, methods: tuple[str, ...] | None,
                 seeds: tuple[int, ...] | None, settings: tuple[dict, ...], **plan_kwargs
                 ) -> tuple[list[Stage], tuple[int, ...] | None]:
    """(plan, picked tasks) under `rule`: once the SFT evaluations it reads have finished, the whole plan (the SFT
    evaluations of every task, the RL stages on the picked tasks); before, the SFT part alone and None."""
    try:
        picked = resolve(store, suite, profile, rule, **plan_kwargs)
    except Unfinished:
        return build_plan(suite, profile, ("sft",), rule, **plan_kwargs), None
    return build_plan(suite, profile, methods, picked, seeds, settings, sft_tasks=tuple(range(TASKS_PER_SUITE)),
                      **plan_kwargs), picked


def nearest_half(rates: dict[int, float], count: int) -> list[int]:
    """The `count` task ids with the rate nearest 0.5, ties to the lower id, in increasing id order."""
    return sorted(sorted(rates, key=lambda t: (round(abs(rates[t] - 0.5), 9), t))[:count])  # 19/50, 31/50 tie


def main(argv: list[str] | None = None) -> int:
    from tgrpo.envs.protocol import resolve_suite

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("results/reproduce"))
    parser.add_argument("--suite", required=True)
    parser.add_argument("--profile", default="small")
    parser.add_argument("--count", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        tasks = resolve(RunStore(args.store), resolve_suite(args.suite), args.profile, TaskRule(args.count))
    except ValueError as err:
        print(f"pick_tasks: {err}", file=sys.stderr)
        return 2
    print(",".join(map(str, tasks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
