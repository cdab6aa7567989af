"""Walk a plan: skip finished stages, run the rest once their inputs finished, isolate failures, show one progress
line with an ETA across the whole matrix. `Walk` holds that bookkeeping for every executor; `execute` is the local
one (stages one after another in this process), `bench.reproduce.ray_executor` the cluster one."""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench.reproduce import store as store_module
from bench.reproduce.stages import run_stage
from bench.reproduce.store import RunStore, Stage, StageBusy
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


class Walk:
    """One pass over a plan, whatever runs the stages: which stages may start, which finished, failed or are blocked
    behind a failure, and the progress line. The ETA is the estimate of every stage not yet finished, run one after
    another (a cluster running stages side by side beats it)."""

    def __init__(self, plan: list[Stage], store: RunStore, progress: bool) -> None:
        self.plan, self.progress, self.outcome = plan, progress, Outcome()
        self.pending = [s for s in plan if not store.is_done(s)]
        self.outcome.skipped = [s for s in plan if s not in self.pending]
        self.finished = {s.key for s in self.outcome.skipped}
        self.bad: set[str] = set()
        self.remaining_s = sum(s.estimate_s for s in self.pending)
        self.started = time.monotonic()

    def ready(self) -> list[Stage]:
        """Stages whose inputs all finished, in plan order; a stage behind a failed input is blocked on the way."""
        ready = []
        for stage in list(self.pending):
            if any(s.key in self.bad for s in stage.inputs):
                self.pending.remove(stage)
                self.outcome.blocked.append(stage)
                self.bad.add(stage.key)
                self.remaining_s -= stage.estimate_s
            elif all(s.key in self.finished for s in stage.inputs):
                ready.append(stage)
        return ready

    def start(self, stage: Stage) -> None:
        self.pending.remove(stage)
        if self.progress:
            print(f"[{self.plan.index(stage) + 1}/{len(self.plan)}] {stage.kind} {stage.name}: elapsed "
                  f"{_duration(time.monotonic() - self.started)}, ETA {_duration(max(self.remaining_s, 0))}",
                  file=sys.stderr, flush=True)

    def end(self, stage: Stage, error: str | None) -> None:
        """Record a started stage's end: `error` None when it finished."""
        if error is None:
            self.outcome.done.append(stage)
            self.finished.add(stage.key)
        else:
            self.outcome.failed.append((stage, error))
            self.bad.add(stage.key)
        self.remaining_s -= stage.estimate_s


def run_recorded(stage: Stage, store: RunStore, runner, progress: bool, where: dict) -> str | None:
    """Run one stage in its store directory (resuming what an earlier attempt left there) and record it: the attempt
    (`where` it ran), then done with its result or failed with its error (traceback in `error.log`). Returns None
    when it finished, else the one-line error. A stage another process is running is left alone (its record
    untouched) and reported as an error here."""
    try:
        with store.claim(stage):
            return _run_claimed(stage, store, runner, progress, where)
    except StageBusy as err:
        return f"StageBusy: {err}"


def _run_claimed(stage: Stage, store: RunStore, runner, progress: bool, where: dict) -> str | None:
    attempts = store.add_attempt(stage, where)
    directory = store.begin(stage, provenance(stage=stage.kind, config=stage.config), attempts)
    t0 = time.monotonic()
    try:
        with _heartbeat(stage, store, t0):
            result = runner(stage, directory, {s.kind: store.path(s) for s in stage.inputs}, progress)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001 (a stage's failure is recorded, the independent rest goes on)
        (directory / "error.log").write_text(traceback.format_exc())
        error = f"{type(err).__name__}: {err}"
        store.fail(stage, error, time.monotonic() - t0)
        return error
    store.finish(stage, result, time.monotonic() - t0)
    return None


@contextmanager
def _heartbeat(stage: Stage, store: RunStore, t0: float) -> Iterator[None]:
    """Beat every `store.BEAT_S` seconds while the stage runs (a daemon thread), so that an attempt killed with the
    session still counts in the stage's wall clock (`RunStore.spent_before`)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(store_module.BEAT_S):
            store.beat(stage, time.monotonic() - t0)

    thread = threading.Thread(target=beat, name=f"heartbeat-{stage.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def execute(plan: list[Stage], store: RunStore, progress: bool = True, runner=run_stage, jobs: int = 1) -> Outcome:
    """Run every unfinished stage whose inputs finished, in plan order, on this machine; a failure is recorded and
    its dependents are blocked. jobs 1: one stage after another in this process; jobs > 1: up to `jobs` stages side
    by side, each in a process of its own (`runner` must then be a module-level function)."""
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    walk = Walk(plan, store, progress)
    if jobs > 1:
        return _execute_side_by_side(walk, store, runner, progress, jobs)
    where = {"executor": "local", "host": platform.node(), "pid": os.getpid()}
    while ready := walk.ready():
        walk.start(ready[0])
        walk.end(ready[0], run_recorded(ready[0], store, runner, progress, where))
    return walk.outcome


def _execute_side_by_side(walk: Walk, store: RunStore, runner, progress: bool, jobs: int) -> Outcome:
    """Up to `jobs` stage processes at once (spawned: no simulator or torch state is inherited). A stage process that
    dies without reporting (killed, out of memory) is recorded as failed; when this process is interrupted or
    terminated, the running stages are terminated with it (their env workers exit with them) and resume on a rerun."""
    import multiprocessing
    import signal
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")
    running: dict[int, tuple] = {}  # sentinel -> (stage, process, receiving end, start time)
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        while True:
            for stage in walk.ready()[: jobs - len(running)]:
                walk.start(stage)
                receive, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_run_in_process, args=(stage, store, runner, progress, send),
                                   name=f"stage-{stage.kind}-{stage.name}")
                proc.start()
                send.close()
                running[proc.sentinel] = (stage, proc, receive, time.monotonic())
            if not running:
                return walk.outcome
            for sentinel in wait(list(running)):
                stage, proc, receive, t0 = running.pop(sentinel)
                proc.join()
                try:
                    error = receive.recv()
                except EOFError:  # it died before reporting: record it (a rerun resumes it in place)
                    error = f"the stage process ended without a result (exit code {proc.exitcode})"
                    store.path(stage).mkdir(parents=True, exist_ok=True)
                    store.fail(stage, error, time.monotonic() - t0)
                walk.end(stage, error)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for _, proc, _, _ in running.values():
            proc.terminate()
            proc.join()


def _run_in_process(stage: Stage, store: RunStore, runner, progress: bool, send) -> None:
    where = {"executor": "local", "host": platform.node(), "pid": os.getpid()}
    send.send(run_recorded(stage, store, runner, progress, where))


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)  # runs the `finally` that terminates the stage processes


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
