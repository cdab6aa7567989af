"""Pairs RL runs with the SFT evaluations they started from and builds `tgrpo-bench report`'s rows (bench.rl_report
says what a row holds and what makes a pair comparable). Kept apart from bench.rl_report because bench.compare
imports that module and this one imports bench.compare."""

from __future__ import annotations

import json
from pathlib import Path

from bench.compare import CompareError, Result, _eval_rows, check_versions
from bench.expected import Reference
from bench.rl_report import Evaluation, ReportError, commit, comparable, training_summary, verdict


def load_evaluation(directory: Path) -> Evaluation:
    """One-task evaluation directory -> successes over its episodes (errors count as failures) and its rows, each
    with a provenance block (`bench.compare` checks the directory is finished)."""
    directory = Path(directory)
    try:
        run, rows = _eval_rows(directory)
    except CompareError as err:
        raise ReportError(str(err)) from err
    if len(run["task_ids"]) != 1:
        raise ReportError(f"{directory}: evaluates tasks {run['task_ids']}; a before/after row needs one task")
    return Evaluation(sum(bool(r["success"]) for r in rows), len(rows), run, tuple(rows))


def version_mismatches(base_dir: Path, before: Evaluation, run_dir: Path, after: Evaluation) -> list[str]:
    """bench.compare.check_versions over both sides' rows: one line per difference in protocol or simulator
    packages (empty: they agree)."""
    sides = [Result(path, method, None, (), {}, ev.rows) for path, method, ev in
             ((base_dir, "sft", before), (run_dir, "rl", after))]
    return check_versions(sides, Reference("none", (), {}))


def build_rows(run_dirs: list[Path], baseline_dirs: list[Path], allow_mismatch: bool = False) -> list[dict]:
    """One row per run, sorted by (suite, task, method, run directory). ReportError for a pair that differs in
    protocol or simulator versions unless `allow_mismatch` (then the row lists the differences)."""
    baselines: dict[tuple[str, int], tuple[Path, Evaluation]] = {}
    for directory in baseline_dirs:
        ev = load_evaluation(directory)
        key = (ev.run["suite"], ev.run["task_ids"][0])
        if key in baselines:
            raise ReportError(f"two baselines for {key[0]} task {key[1]}: {baselines[key][0]} and {directory}")
        baselines[key] = (Path(directory), ev)
    rows = []
    for run_dir in map(Path, run_dirs):
        config_file = run_dir / "config.json"
        if not config_file.exists():
            raise ReportError(f"{run_dir}: no config.json (not an RL run directory)")
        config = json.loads(config_file.read_text())
        after = load_evaluation(run_dir / "eval")
        key = (after.run["suite"], after.run["task_ids"][0])
        if key not in baselines:
            raise ReportError(f"{run_dir}: no baseline evaluation of {key[0]} task {key[1]} among --baseline")
        base_dir, before = baselines[key]
        diffs = comparable(before.run, after.run)
        if diffs:
            raise ReportError(f"{run_dir} vs {base_dir}: evaluations differ in {', '.join(diffs)}")
        mismatches = version_mismatches(base_dir, before, run_dir, after)
        if mismatches and not allow_mismatch:
            raise ReportError(f"evaluations differ in protocol or simulator versions ({mismatches[0]}); "
                              "pass --allow-mismatch to pair them anyway")
        rows.append({"suite": key[0], "task": key[1], "method": config["method"], "run": str(run_dir),
                     "seed": config.get("seed"), "lr": config.get("lr"), "temperature": config.get("temperature"),
                     "baseline": str(base_dir),
                     "before": [before.successes, before.episodes], "after": [after.successes, after.episodes],
                     "before_cell": before.cell(), "after_cell": after.cell(),
                     "change_points": 100 * (after.rate - before.rate), "verdict": verdict(before, after),
                     "commit_before": commit(before.rows), "commit_after": commit(after.rows),
                     "version_mismatches": mismatches,
                     **training_summary(run_dir)})
    return sorted(rows, key=lambda r: (r["suite"], r["task"], r["method"], r["run"]))
