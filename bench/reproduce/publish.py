"""Publish a finished reproduction report into the repository: its report directory (report.md / report.json,
learning curves, compare/) and the rows behind it, i.e. every reported stage's evaluation episodes (each with its
provenance block) and, for RL stages, the run's config and metrics, without checkpoints. `COMMAND.md` names the
command that made the report and the one that re-derives its comparison from the published rows alone.

    python -m bench.reproduce.publish --store /path/to/store --report libero_object-small \\
        --to docs/results/small/object_t1_6_8 --command "make reproduce SUITE=object PROFILE=small TASKS=1,6,8"

Stages go to `<to>/../stages/<kind>/<name>-<key>/`, shared by every report published beside it (a stage two reports
use is stored once); `recorded cells` (compare/ours_rows.json) are copied to `--ours` when given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from bench.reproduce.store import RunStore

REPORT_FILES = ("report.md", "report.json")
EVAL_FILES = ("episodes.jsonl", "run.json", "summary.json")
RUN_FILES = ("config.json", "metrics.jsonl", "provenance.json")


class PublishError(ValueError):
    """A report or stage that cannot be published: one line for the user."""


def publish(store: RunStore, report: str, to: Path, command: str, ours: Path | None = None) -> list[str]:
    """Copy report `report` of `store` to `to` and its stages' rows to `to.parent / "stages"`; returns the `compare`
    specs of the published stages (relative to the working directory: run it from the repository root)."""
    source = store.root / report
    if not (source / "report.json").is_file():
        raise PublishError(f"{source} holds no report.json: run the reproduction (or REPORT_ONLY=1) first")
    stages_root = to.parent / "stages"
    rows = json.loads((source / "report.json").read_text())["rows"]
    specs = []
    for stage_dir in sorted({row["stage"] for row in rows}):
        specs.append(_publish_stage(store.root / stage_dir, stages_root / stage_dir))
    if to.exists():
        shutil.rmtree(to)
    to.mkdir(parents=True)
    for name in REPORT_FILES:
        shutil.copy2(source / name, to / name)
    for png in sorted(source.glob("*.png")):
        shutil.copy2(png, to / png.name)
    if (source / "compare").is_dir():
        shutil.copytree(source / "compare", to / "compare")
    if ours is not None:
        if not (source / "compare" / "ours_rows.json").is_file():
            raise PublishError(f"{source / 'compare'} holds no ours_rows.json to record")
        ours.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / "compare" / "ours_rows.json", ours)
    profile = json.loads((source / "report.json").read_text())["provenance"].get("profile") or "small"
    (to / "COMMAND.md").write_text(
        f"Made by (from a clean checkout, with the run store given as `STORE=`):\n\n```bash\n{command}\n```\n\n"
        f"Re-derived from the rows published in `{os.path.relpath(stages_root, to)}/` alone (the comparison in "
        f"`compare/`):\n\n```bash\ntgrpo-bench compare --profile {profile} --out /tmp/compare \\\n    "
        + " \\\n    ".join(specs) + "\n```\n")
    return specs


def _publish_stage(src: Path, dst: Path) -> str:
    """Copy one stage's record and rows; the `compare` spec of what was copied."""
    if not (src / "stage.json").is_file():
        raise PublishError(f"{src}: the report names a stage the store does not hold")
    record = json.loads((src / "stage.json").read_text())
    if record.get("status") != "done":
        raise PublishError(f"{src}: stage not finished (status {record.get('status')!r})")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "stage.json", dst / "stage.json")
    if record["kind"] == "eval":
        _copy(src / "eval", dst / "eval", EVAL_FILES)
        return f"sft={os.path.relpath(dst / 'eval')}"
    _copy(src / "run", dst / "run", RUN_FILES, required=("config.json", "metrics.jsonl"))
    _copy(src / "run" / "eval", dst / "run" / "eval", EVAL_FILES)
    return os.path.relpath(dst / "run")


def _copy(src: Path, dst: Path, names: tuple[str, ...], required: tuple[str, ...] | None = None) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
        elif required is None or name in required:
            raise PublishError(f"{src / name} is missing: the stage's rows are incomplete")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("results/reproduce"))
    parser.add_argument("--report", required=True, help="report directory name in the store, e.g. libero_10-small")
    parser.add_argument("--to", type=Path, required=True, help="where the report goes, e.g. docs/results/small/long")
    parser.add_argument("--command", required=True, help="the command that made the report, written to COMMAND.md")
    parser.add_argument("--ours", type=Path, default=None,
                        help="also record compare/ours_rows.json here, e.g. expected_results/ours/libero_10_small.json")
    args = parser.parse_args(argv)
    try:
        specs = publish(RunStore(args.store), args.report, args.to, args.command, args.ours)
    except (PublishError, OSError) as err:
        print(f"publish: {err}", file=sys.stderr)
        return 2
    print(f"published {args.report} to {args.to} with {len(specs)} stages' rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
