"""The RL tasks of a suite by a rule fixed before any RL run: the `count` tasks whose SFT success on the official
states is nearest 50 % (most room to move either way; ties: lower task id), from the SFT evaluation stages of
`make reproduce SUITE=... METHODS=sft`.

    python -m bench.reproduce.pick_tasks --store results/reproduce --suite long --profile small --count 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.reproduce.plan import build_plan
from bench.reproduce.store import RunStore


def sft_rates(store: RunStore, suite: str, profile: str) -> dict[int, float]:
    """Task id -> SFT success rate; ValueError naming the tasks whose evaluation has not finished."""
    stages = [s for s in build_plan(suite, profile, ("sft",)) if s.kind == "eval"]
    missing = [s.config["tasks"][0] for s in stages if not store.is_done(s)]
    if missing:
        raise ValueError(f"SFT evaluation of {suite} ({profile}) not finished for tasks {missing}: run "
                         f"`make reproduce SUITE={suite} PROFILE={profile} METHODS=sft` first")
    rates = {}
    for stage in stages:
        for task in json.loads((store.path(stage) / "eval" / "summary.json").read_text())["tasks"]:
            rates[task["task_id"]] = task["success_rate"]
    return rates


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
        rates = sft_rates(RunStore(args.store), resolve_suite(args.suite), args.profile)
    except ValueError as err:
        print(f"pick_tasks: {err}", file=sys.stderr)
        return 2
    print(",".join(str(t) for t in nearest_half(rates, args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
