"""The cluster executor: every stage whose inputs finished becomes a Ray task with the stage's resource request, so
independent stages (the (method, task, seed) RL cells) run side by side wherever the cluster has room.

Each task runs the stage exactly as the local executor does (`run_recorded`: attempt, record, resume in place) in
the same run store, which must be one path that every node sees (a shared volume, docs/scale-out.md). A task whose
node or worker process dies is retried on another node (at most `MAX_NODE_RETRIES` times; each attempt's node is in
the stage record); a stage that fails for its own reasons is recorded as failed by the task and never retried.
Ray is imported only here, and only when this executor is chosen (`pip install '.[ray]'`).
"""

from __future__ import annotations

import os
import platform
import socket
import time

from bench.reproduce.execute import Outcome, Walk, run_recorded
from bench.reproduce.stages import run_stage
from bench.reproduce.store import RunStore, Stage

# Retries of a task whose node or worker process died (Ray's max_retries, system failures only): enough to ride out a
# few lost machines, bounded so that a stage that kills its worker itself (a segfault, the OOM killer) stops.
MAX_NODE_RETRIES = 3
CONNECT_TIMEOUT_S = 5.0  # TCP check of ADDRESS before ray.init, which otherwise waits minutes for a dead address
GIB = 1024 ** 3


class RayUnavailable(ValueError):
    """Ray is not installed or the cluster cannot be reached / cannot hold a stage: one line for the user."""


def connect(address: str | None):
    """Import Ray and join the cluster at `address` (host:port, `auto`, `ray://...`; None: Ray's own rules, i.e.
    RAY_ADDRESS, a cluster started on this machine, else a new one-node Ray here). Returns the `ray` module."""
    try:
        import ray
    except ImportError as err:
        raise RayUnavailable(f"--executor ray needs Ray ({err}): pip install -c constraints.txt '.[ray]'") from err
    if address and ":" in address and "://" not in address:
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except (OSError, ValueError) as err:
            raise RayUnavailable(f"cannot reach the Ray cluster at {address} ({err}); start its head with "
                                 f"`ray start --head` (docs/scale-out.md)") from err
    try:
        ray.init(address=address, logging_level="ERROR", configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise RayUnavailable(f"cannot join the Ray cluster at {address or 'auto'}: {str(err).splitlines()[0]}") \
            from err
    return ray


def execute_ray(ray, plan: list[Stage], store: RunStore, progress: bool = True, runner=run_stage) -> Outcome:
    """Run every unfinished stage on the cluster `connect` joined, each as soon as its inputs finished; a failure is
    recorded and its dependents are blocked, the rest goes on (`check_fits` first: a stage no node holds waits
    forever)."""
    store.root.mkdir(parents=True, exist_ok=True)
    task = ray.remote(_run_on_node)
    walk = Walk(plan, store, progress)
    running: dict = {}  # ObjectRef -> (stage, dispatch time)
    try:
        while True:
            for stage in walk.ready():
                walk.start(stage)
                r = stage.resources
                ref = task.options(num_cpus=r.cpus, num_gpus=r.gpus, memory=int(r.memory_gb * GIB) or None,
                                   max_retries=MAX_NODE_RETRIES, retry_exceptions=False,
                                   name=f"{stage.kind}:{stage.name}").remote(stage, str(store.root), runner, progress)
                running[ref] = (stage, time.monotonic())
            if not running:
                return walk.outcome
            [ref], _ = ray.wait(list(running), num_returns=1)
            stage, t0 = running.pop(ref)
            walk.end(stage, _collect(ray, ref, stage, store, t0))
    finally:
        ray.shutdown()


def _collect(ray, ref, stage: Stage, store: RunStore, t0: float) -> str | None:
    """The finished task's error line (None: done). A task that never reached its stage record (it raised before,
    or its node died `MAX_NODE_RETRIES` + 1 times) is recorded as failed here."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None) or err
        error = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
    except ray.exceptions.RayError as err:
        error = (f"{type(err).__name__}: its node or worker was lost {MAX_NODE_RETRIES + 1} times "
                 f"({str(err).splitlines()[0] if str(err) else 'no detail'})")
    store.path(stage).mkdir(parents=True, exist_ok=True)
    store.fail(stage, error, time.monotonic() - t0)
    return error


def check_fits(ray, stages: list[Stage]) -> None:
    """RayUnavailable naming the first stage whose request no live node of the cluster can hold."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    for stage in stages:
        r = stage.resources
        if not any(n.get("CPU", 0) >= r.cpus and n.get("GPU", 0) >= r.gpus and n.get("memory", 0) >= r.memory_gb * GIB
                   for n in nodes):
            raise RayUnavailable(f"no node of the Ray cluster can run {stage.kind} {stage.name}: it asks for "
                                 f"{r.cpus:g} CPU, {r.gpus:g} GPU, {r.memory_gb:g} GiB; the nodes have "
                                 + "; ".join(f"{n.get('CPU', 0):g} CPU, {n.get('GPU', 0):g} GPU, "
                                             f"{n.get('memory', 0) / GIB:.1f} GiB" for n in nodes))


def _run_on_node(stage: Stage, root: str, runner, progress: bool) -> str | None:
    """The Ray task: check that this node sees the driver's store and runs the driver's sources, then run and record
    the stage like the local executor."""
    import ray

    store = RunStore(root)
    if not store.root.is_dir() or not all(store.is_done(s) for s in stage.inputs):
        raise RuntimeError(f"node {platform.node()} does not see the run store {root} with the finished inputs of "
                           f"{stage.kind} {stage.name}: mount the shared results volume at the same path on every node "
                           f"(docs/scale-out.md)")
    if Stage(stage.kind, stage.name, stage.config, stage.inputs, stage.code).key != stage.key:
        raise RuntimeError(f"node {platform.node()} runs other sources than the driver for {stage.kind} {stage.name} "
                           f"({', '.join(stage.code)}): install the same commit on every node")
    where = {"executor": "ray", "node_id": ray.get_runtime_context().get_node_id(), "host": platform.node(),
             "pid": os.getpid()}
    return run_recorded(stage, store, runner, progress, where)
