"""Walk a plan: skip finished stages, run the rest in order, isolate failures, show one progress line with an ETA
across the whole matrix, and write the report."""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field

from bench.reproduce.stages import run_stage
from bench.reproduce.store import RunStore, Stage
from tgrpo.provenance import provenance


@dataclass
class Outcome:
    done: list[Stage] = field(default_factory=list)
    skipped: list[Stage] = field(default_factory=list)  # finished in an earlier run
    failed: list[tuple[Stage, str]] = field(default_factory=list)
    blocked: list[Stage] = field(default_factory=list)  # an input failed

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


def describe_plan(plan: list[Stage], store: RunStore) -> str:
    """The `--dry-run` table: each stage, whether it is cached, its estimated time and its directory."""
    from tabulate import tabulate

    rows, todo_s = [], 0.0
    for stage in plan:
        cached = store.is_done(stage)
        todo_s += 0 if cached else stage.estimate_s
        rows.append([stage.kind, stage.name, "cached" if cached else "to run",
                     "-" if cached else _duration(stage.estimate_s), stage.dir_name])
    table = tabulate(rows, headers=["stage", "name", "state", "estimate", "directory"], tablefmt="github")
    return f"{table}\n\n{len(plan)} stages; to run: about {_duration(todo_s)} on a 2-core CPU (estimate)"


def execute(plan: list[Stage], store: RunStore, progress: bool = True, runner=run_stage) -> Outcome:
    """Run every unfinished stage whose inputs finished; a failure is recorded and its dependents are blocked."""
    outcome = Outcome()
    remaining_s = sum(0 if store.is_done(s) else s.estimate_s for s in plan)
    started = time.monotonic()
    bad: set[str] = set()
    for index, stage in enumerate(plan, 1):
        if store.is_done(stage):
            outcome.skipped.append(stage)
            continue
        if any(s.key in bad for s in stage.inputs):
            outcome.blocked.append(stage)
            bad.add(stage.key)
            remaining_s -= stage.estimate_s
            continue
        if progress:
            elapsed = time.monotonic() - started
            print(f"[{index}/{len(plan)}] {stage.kind} {stage.name}: elapsed {_duration(elapsed)}, "
                  f"ETA {_duration(max(remaining_s, 0))}", file=sys.stderr, flush=True)
        directory = store.begin(stage, provenance(stage=stage.kind, config=stage.config))
        t0 = time.monotonic()
        try:
            result = runner(stage, directory, {s.kind: store.path(s) for s in stage.inputs}, progress)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # noqa: BLE001 (a stage's failure is recorded, the independent rest goes on)
            (directory / "error.log").write_text(traceback.format_exc())
            store.fail(stage, f"{type(err).__name__}: {err}", time.monotonic() - t0)
            outcome.failed.append((stage, f"{type(err).__name__}: {err}"))
            bad.add(stage.key)
        else:
            store.finish(stage, result, time.monotonic() - t0)
            outcome.done.append(stage)
        remaining_s -= stage.estimate_s
    return outcome


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
