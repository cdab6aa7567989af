"""The reproduction's report: per task, the SFT policy and every (method, seed) after RL, with Wilson 95% intervals,
from the stages' own result files (each row names the stage directory it came from)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.reproduce.settings import label
from bench.reproduce.store import RunStore, Stage
from bench.results import wilson_interval


def report_rows(plan: list[Stage], store: RunStore) -> list[dict]:
    rows = []
    for stage in plan:
        if stage.kind not in ("eval", "rl") or not store.is_done(stage):
            continue
        summary_file = store.path(stage) / ("eval" if stage.kind == "eval" else "run/eval") / "summary.json"
        if not summary_file.exists():
            continue
        method = "sft" if stage.kind == "eval" else stage.config["method"]
        for task in json.loads(summary_file.read_text())["tasks"]:
            low, high = wilson_interval(task["successes"], task["episodes"])
            rows.append({"suite": task["suite"], "task": task["task_id"], "method": method,
                         "setting": label(stage.config.get("settings", {}))[1:] or "default",
                         "seed": stage.config.get("seed", 0), "successes": task["successes"],
                         "episodes": task["episodes"], "rate": task["success_rate"], "wilson95": [low, high],
                         "stage": stage.dir_name})
    return sorted(rows, key=lambda r: (r["task"], r["method"] != "sft", r["method"], r["setting"], r["seed"]))


# The training metrics each finished RL stage is summarised by (means over its iterations; a method that does not log
# one, e.g. the preference methods' clip fraction, gets None): whether the clip acted, how far the policy moved.
TRAINING_METRICS = ("loss/clip_frac", "loss/kl_mean", "loss/ratio_max")
WINDOW = 10  # iterations averaged at the start and the end of the training success rate


def training_rows(plan: list[Stage], store: RunStore) -> list[dict]:
    """Per finished RL stage: iterations, the rollouts' success rate over the first and the last `WINDOW` iterations,
    and the mean of each of `TRAINING_METRICS` over all iterations, from the run's own `metrics.jsonl`."""
    from bench.learning_curves import load_run

    rows = []
    for stage in plan:
        if stage.kind != "rl" or not store.is_done(stage):
            continue
        _, metrics = load_run(store.path(stage) / "run")
        success = [m["rollout/success_rate"] for m in metrics if "rollout/success_rate" in m]
        row = {"task": stage.config["task"], "method": stage.config["method"],
               "setting": label(stage.config.get("settings", {}))[1:] or "default", "seed": stage.config["seed"],
               "iterations": len(metrics),
               "train_success_first": _mean(success[:WINDOW]), "train_success_last": _mean(success[-WINDOW:])}
        for name in TRAINING_METRICS:
            row[name] = _mean([m[name] for m in metrics if m.get(name) is not None])
        rows.append(row)
    return sorted(rows, key=lambda r: (r["task"], r["method"], r["setting"], r["seed"]))


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def unfinished(plan: list[Stage], store: RunStore) -> list[str]:
    """The directories of the plan's evaluation and RL stages that have no finished record (yet): their rows are
    missing from the report."""
    return [s.dir_name for s in plan if s.kind in ("eval", "rl") and not store.is_done(s)]


def stage_time(plan: list[Stage], store: RunStore) -> dict[str, float]:
    """Hours of wall clock per stage kind over the plan's finished stages, every attempt counted (a killed one up to
    its last heartbeat, `RunStore.spent_before`; records written before heartbeats count their last attempt only):
    what this part of a reproduction cost."""
    hours: dict[str, float] = {}
    for stage in plan:
        if store.is_done(stage):
            record = store.record(stage)
            seconds = record["wall_s"] + record.get("earlier_wall_s", 0.0)
            hours[stage.kind] = hours.get(stage.kind, 0.0) + seconds / 3600
    return {kind: round(h, 2) for kind, h in hours.items()}


def write_report(plan: list[Stage], store: RunStore, out: Path, block: dict) -> str:
    """report.md and report.json (rows with the provenance block, and the stages whose rows are still missing)
    under `out`; returns the markdown."""
    from tabulate import tabulate

    rows, missing = report_rows(plan, store), unfinished(plan, store)
    table = tabulate([[r["task"], r["method"], r["setting"], r["seed"], f"{r['successes']}/{r['episodes']}",
                       f"{100 * r['rate']:.1f}", f"[{100 * r['wilson95'][0]:.1f}, {100 * r['wilson95'][1]:.1f}]",
                       f"`{r['stage']}`"] for r in rows],
                     headers=["task", "method", "setting", "seed", "successes", "success %", "Wilson 95% CI", "stage"],
                     tablefmt="github")
    training = training_rows(plan, store)
    if training:
        fmt = lambda v: "-" if v is None else f"{v:.3f}"
        table += "\n\nTraining (means over each run's iterations; success over the first and last " \
                 f"{WINDOW} iterations' rollouts: under the group stop rule a group ends at its first success, so " \
                 "a group that succeeds counts about 1 of its N):\n\n" + tabulate(
                     [[r["task"], r["method"], r["setting"], r["seed"], r["iterations"],
                       f"{fmt(r['train_success_first'])} -> {fmt(r['train_success_last'])}",
                       *(fmt(r[name]) for name in TRAINING_METRICS)] for r in training],
                     headers=["task", "method", "setting", "seed", "iterations", "train success",
                              *TRAINING_METRICS], tablefmt="github")
    spend = stage_time(plan, store)
    table += ("\n\nWall clock of the finished stages, every attempt (on the machine of the provenance block; an "
              "interrupted attempt up to its last heartbeat, none before the heartbeat existed): "
              + ", ".join(f"{kind} {h:.2f} h" for kind, h in spend.items()) + f"; {sum(spend.values()):.2f} h in all")
    if missing:
        table += (f"\n\nUnfinished: {len(missing)} of {sum(s.kind in ('eval', 'rl') for s in plan)} evaluation and RL "
                  f"stages have no rows yet (rerun the same command to finish them): "
                  + ", ".join(f"`{name}`" for name in missing))
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(table + "\n")
    (out / "report.json").write_text(json.dumps({"provenance": block, "rows": rows, "unfinished": missing,
                                                 "training": training, "stage_hours": spend}, indent=2))
    return table


def plot_learning_curves(plan: list[Stage], store: RunStore, out: Path, window: int = 10) -> list[Path]:
    """One PNG per task: `rollout/success_rate` (trailing mean of `window`) of every finished RL stage."""
    from bench.learning_curves import plot

    runs: dict[int, list[Path]] = {}
    for stage in plan:
        if stage.kind == "rl" and store.is_done(stage):
            runs.setdefault(stage.config["task"], []).append(store.path(stage) / "run")
    written = []
    for task, dirs in sorted(runs.items()):
        path = out / f"learning_curves_task{task}.png"
        plot(dirs, "rollout/success_rate", window, path)
        written.append(path)
    return written


def compare_specs(plan: list[Stage], store: RunStore) -> list[str]:
    """`tgrpo-bench compare` inputs for the finished evaluations: the SFT evaluation and every RL run."""
    specs = []
    for stage in plan:
        if not store.is_done(stage):
            continue
        if stage.kind == "eval":
            specs.append(f"sft={store.path(stage) / 'eval'}")
        elif stage.kind == "rl":
            specs.append(str(store.path(stage) / "run"))
    return specs
