"""Per-task success table of the scripted expert from `tgrpo-bench eval --policy expert` directories.

`python -m bench.expert_table results/expert_spatial_50 ... --json docs/results/expert_50.json` prints one markdown
row per task (successes over the episodes run, Wilson 95 % interval, mean and longest successful episode, the
suite's step limit) and writes the same rows with each directory's provenance (git sha, dirty flag, package
versions, machine) to the JSON file. An episode that errored counts as a failure. A directory whose episodes
disagree on the commit they ran, or ran from a dirty tree, is refused: the table must name one clean commit.
A task found in several directories is taken from the last one given (a task re-run after an expert fix), and
each row names the directory it came from.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.results import wilson_interval
from tgrpo.jsonl import read_rows

TARGET = 0.9  # the demonstrations issue's per-task success target


class TableError(ValueError):
    """An evaluation directory is missing, unfinished or of mixed provenance."""


def task_rows(directory: Path) -> tuple[list[dict], dict]:
    """(rows, provenance) of one evaluation directory: a row per task, in task order."""
    directory = Path(directory)
    run_file, episodes_file = directory / "run.json", directory / "episodes.jsonl"
    if not run_file.exists() or not episodes_file.exists():
        raise TableError(f"{directory}: no evaluation (expected run.json and episodes.jsonl)")
    run = json.loads(run_file.read_text())
    episodes = read_rows(episodes_file, required=("task_id", "task_name", "episode", "success", "steps", "error",
                                                  "provenance"))
    shas = {(e["provenance"]["git_sha"], e["provenance"]["git_dirty"]) for e in episodes}
    if len(shas) != 1:
        raise TableError(f"{directory}: episodes ran at {sorted(map(str, shas))}; one clean commit expected")
    (sha, dirty), = shas
    if dirty is not False:
        raise TableError(f"{directory}: episodes ran from a dirty tree at {sha}")
    limit = run["protocol"]["max_policy_steps"][run["suite"]]
    rows = []
    for task_id in run["task_ids"]:
        mine = [e for e in episodes if e["task_id"] == task_id]
        if len(mine) != len(run["episode_ids"]):
            raise TableError(f"{directory}: task {task_id} has {len(mine)} of {len(run['episode_ids'])} episodes")
        won = [e for e in mine if e["success"] and e["error"] is None]
        lo, hi = wilson_interval(len(won), len(mine))
        rows.append({
            "suite": run["suite"], "task_id": task_id, "task": mine[0]["task_name"], "episodes": len(mine),
            "successes": len(won), "success_rate": len(won) / len(mine), "wilson95": [lo, hi],
            "mean_steps": sum(e["steps"] for e in mine) / len(mine),
            "max_success_steps": max((e["steps"] for e in won), default=None), "limit": limit,
            "errors": sum(e["error"] is not None for e in mine),
            "failed_episodes": [e["episode"] for e in mine if e not in won],
        })
    first = episodes[0]["provenance"]
    provenance = {"git_sha": sha, "git_dirty": dirty, "python": first.get("python"), "packages": first["packages"],
                  "machine": first["machine"], "protocol": run["protocol"], "episode_ids": run["episode_ids"],
                  "seeds": run["seeds"], "directory": str(directory)}
    return rows, provenance


def markdown(rows: list[dict]) -> str:
    lines = ["| task | name | success | Wilson 95 % | mean steps | longest success | limit | failed episodes |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["wilson95"]
        mark = "" if r["success_rate"] >= TARGET else " **(< 90 %)**"
        failed = ", ".join(map(str, r["failed_episodes"])) or "-"
        lines.append(f"| {r['suite']}/{r['task_id']} | {r['task']} | {r['successes']}/{r['episodes']}{mark} | "
                     f"[{100 * lo:.1f}, {100 * hi:.1f}] | {r['mean_steps']:.0f} | {r['max_success_steps'] or '-'} | "
                     f"{r['limit']} | {failed} |")
    passed = sum(r["success_rate"] >= TARGET for r in rows)
    lines.append(f"\n{passed} of {len(rows)} tasks at or above {100 * TARGET:.0f} %; "
                 f"{sum(r['successes'] for r in rows)}/{sum(r['episodes'] for r in rows)} episodes in all.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.expert_table", description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="tgrpo-bench eval --policy expert output directories")
    ap.add_argument("--json", type=Path, help="also write the rows and their provenance here")
    args = ap.parse_args(argv)
    try:
        loaded = [task_rows(d) for d in args.dirs]
    except TableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    latest = {}
    for (rs, provenance) in loaded:
        for r in rs:
            latest[(r["suite"], r["task_id"])] = {**r, "directory": provenance["directory"]}
    rows = [latest[k] for k in sorted(latest)]
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "runs": [p for _, p in loaded]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
