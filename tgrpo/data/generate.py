"""Generate expert demonstration datasets and key poses for a suite, resumably, over worker processes.

Layout under `out_dir` (default ``data/demos``)::

    <suite>/<task_name>_demo.hdf5          the task's dataset (LIBERO layout), written once the task has its demos
    <suite>/<task_name>.parts/demo_XXXX.hdf5   one successful demo each, written atomically as it finishes
    <suite>/<task_name>.parts/attempts.jsonl  one line per attempt (seed, success, steps): seeds are never reused
    data/keyposes/<suite>.json             stage entry poses (tgrpo.rewards.keyposes), merged per finished task

A killed run resumes from the parts: finished tasks are skipped, a task in progress continues with its next seed.
Each worker process holds one env (spawned, never forked: docs/protocol.md, "Rendering") and runs the expert in-process.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from tgrpo.jsonl import read_rows

SEED_STRIDE = 100_000  # task t of a suite uses seeds base + t * SEED_STRIDE + attempt


@dataclass(frozen=True)
class DemoRequest:
    suite: str
    task_ids: tuple[int, ...]
    per_task: int
    out_dir: Path
    keypose_root: Path
    images: bool = False
    wrist: bool = True
    privileged: bool = True
    seed: int = 0
    workers: int = 1
    max_attempts_factor: float = 2.0
    episode_start: str = "restore"
    action_noise: float = 0.0


def task_paths(request: DemoRequest, task_name: str) -> tuple[Path, Path]:
    base = Path(request.out_dir) / request.suite
    return base / f"{task_name}_demo.hdf5", base / f"{task_name}.parts"


def _read_attempts(parts: Path) -> list[dict]:
    return read_rows(parts / "attempts.jsonl", repair=True, required=("attempt",))


def _finished_parts(parts: Path) -> list[Path]:
    return sorted(parts.glob("demo_*.hdf5"))


def task_progress(request: DemoRequest, task_id: int) -> int:
    """How many demos the task already has (a finished dataset counts as complete)."""
    from tgrpo.envs.libero_env import task_info

    name = task_info(request.suite, task_id).name
    final, parts = task_paths(request, name)
    if final.exists():
        return request.per_task
    return min(len(_finished_parts(parts)), request.per_task) if parts.exists() else 0


def file_attrs(env, request: DemoRequest, obs_cfg) -> dict:
    """`data` attributes in LIBERO's layout plus this project's provenance."""
    from tgrpo.envs.protocol import Protocol

    info = env.info
    bddl = Path(info.bddl_file)
    problem_name = env.sim_env.parsed_problem.get("problem_name", "")
    domain_name = env.sim_env.parsed_problem.get("domain_name", "robosuite")
    return {
        "env_name": type(env.sim_env).__name__,
        "problem_info": {"problem_name": problem_name, "domain_name": domain_name,
                         "language_instruction": info.instruction},
        "env_args": {"type": 1, "env_name": type(env.sim_env).__name__, "problem_name": problem_name,
                     "bddl_file": str(bddl), "env_kwargs": {"control_freq": env.protocol.control_freq,
                                                           "controller": env.protocol.controller}},
        "bddl_file_name": str(bddl),
        "bddl_file_content": bddl.read_text() if bddl.exists() else "",
        "macros_image_convention": "rotated_180_eval_preprocessing" if obs_cfg.renders else "none",
        "image_preprocessing": obs_cfg.to_dict(),
        "protocol": {k: v for k, v in Protocol(episode_start=request.episode_start).to_dict().items()},
        "privileged_layout": env.layout.to_dict(),
        "suite": request.suite, "task_id": info.task_id, "task_name": info.name,
        "generator": "tgrpo-bench demos (scripted expert, tgrpo/experts)",
        "init_source": "fresh placements from env.reset() with the recorded seed; none equals an official state",
        "action_noise": request.action_noise,
    }


def run_task(request: DemoRequest, task_id: int, report) -> dict:
    """Generate (or finish) one task's dataset; `report(kind, payload)` streams progress."""
    import numpy as np

    from tgrpo.data.hdf5 import merge_demo_files, write_demo_file
    from tgrpo.data.record import fresh_start, record_episode
    from tgrpo.envs.libero_env import LiberoEnv, official_init_states, task_info
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol
    from tgrpo.experts import ExpertPolicy
    from tgrpo.rewards.keyposes import aggregate_stage_poses

    info = task_info(request.suite, task_id)
    final, parts = task_paths(request, info.name)
    if final.exists():
        return {"task_id": task_id, "skipped": True}
    parts.mkdir(parents=True, exist_ok=True)
    for stale in parts.glob("*.tmp"):
        stale.unlink()
    obs_cfg = ObsConfig(mode="image" if request.images else "state", wrist=request.wrist)
    env = LiberoEnv(request.suite, task_id, obs_cfg, Protocol(episode_start=request.episode_start))
    official = official_init_states(request.suite, task_id)
    expert = ExpertPolicy()
    attempts = _read_attempts(parts)
    done = _finished_parts(parts)
    attempt = 1 + max((a["attempt"] for a in attempts), default=-1)
    limit = int(np.ceil(request.per_task * request.max_attempts_factor)) + 2
    steps_total = 0
    wall_total = 0.0
    try:
        while len(done) < request.per_task and attempt < limit:
            seed = request.seed + task_id * SEED_STRIDE + attempt
            start, used_seed = fresh_start(env, seed, official)
            rec = record_episode(env, expert, start, episode_key=(task_id, "train", used_seed),
                                 privileged=request.privileged, action_noise=request.action_noise,
                                 noise_seed=used_seed)
            steps_total += rec.steps
            wall_total += rec.wall_s
            row = {"attempt": attempt, "seed": used_seed, "success": rec.success, "steps": rec.steps,
                   "wall_s": round(rec.wall_s, 3)}
            if rec.success:
                rec.demo.attrs.update({"seed": used_seed, "attempt": attempt, "init_source": "fresh",
                                       "expert": json.dumps(expert.describe())})
                path = parts / f"demo_{len(done):04d}.hdf5"
                write_demo_file(path, rec.demo, {"task_name": info.name})
                done.append(path)
            with open(parts / "attempts.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            report("attempt", {"task_id": task_id, **row, "env_steps_per_s": rec.steps / max(rec.wall_s, 1e-9)})
            attempt += 1
        if len(done) < request.per_task:
            return {"task_id": task_id, "complete": False, "demos": len(done), "attempts": attempt}
        merge_demo_files(done[: request.per_task], final, file_attrs(env, request, obs_cfg))
        from tgrpo.data.hdf5 import LiberoDataset

        with LiberoDataset(final) as ds:
            transitions = [json.loads(ds.data[k].attrs["stage_transitions"]) for k in ds.keys]
        entry = {"task_id": task_id, "instruction": info.instruction, "num_demos": len(transitions),
                 "goal_literals": [list(g) for g in env.layout.goal_literals],
                 "stages": aggregate_stage_poses(transitions)}
        return {"task_id": task_id, "complete": True, "task_name": info.name, "keyposes": entry,
                "steps": steps_total, "wall_s": wall_total}
    finally:
        env.close()


class ParentGone(SystemExit):
    """The generating process died (killed, not interrupted): its worker stops after the attempt in hand instead of
    writing on, orphaned, into the dataset a resumed run is about to write."""


def _worker(request: DemoRequest, tasks, results, parent: int) -> None:
    def report(kind, payload):
        if os.getppid() != parent:
            raise ParentGone(1)
        results.put((kind, payload))

    while True:
        try:
            task_id = tasks.get_nowait()
        except queue.Empty:
            return
        try:
            results.put(("task", run_task(request, task_id, report)))
        except Exception as err:  # noqa: BLE001 - reported; the parent records the task as failed and goes on
            results.put(("error", {"task_id": task_id, "error": f"{type(err).__name__}: {err}",
                                   "trace": traceback.format_exc()[-2000:]}))


def generate(request: DemoRequest, progress: bool = True) -> dict:
    """Run the request over `workers` processes; returns a summary (per task: complete, demos, attempts)."""
    from tgrpo.rewards.keyposes import write_stage_poses

    todo = [t for t in request.task_ids if not task_paths(request, _task_name(request, t))[0].exists()]
    initial = sum(task_progress(request, t) for t in request.task_ids)
    total = request.per_task * len(request.task_ids)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=initial, unit="demo", desc=f"demos {request.suite}", dynamic_ncols=True)
    summary = {"tasks": {t: {"task_id": t, "skipped": True} for t in request.task_ids if t not in todo},
               "errors": {}}
    keyposes: dict[str, dict] = {}
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for t in todo:
        tasks.put(t)
    procs = [ctx.Process(target=_worker, args=(request, tasks, results, os.getpid()), daemon=True)
             for _ in range(max(1, min(request.workers, len(todo))))] if todo else []
    for p in procs:
        p.start()
    remaining = set(todo)
    steps = 0
    started = time.monotonic()
    while remaining:
        try:
            kind, payload = results.get(timeout=5.0)
        except queue.Empty:
            if not any(p.is_alive() for p in procs):
                for t in remaining:
                    summary["errors"][t] = "worker died"
                break
            continue
        if kind == "attempt":
            steps += payload["steps"]
            if bar is not None:
                if payload["success"]:
                    bar.update(1)
                rate = steps / max(time.monotonic() - started, 1e-9)
                bar.set_postfix_str(f"task {payload['task_id']} seed {payload['seed']} "
                                    f"{'ok' if payload['success'] else 'FAIL'} {rate:.0f} env-steps/s")
        elif kind == "task":
            remaining.discard(payload["task_id"])
            summary["tasks"][payload["task_id"]] = {k: v for k, v in payload.items() if k != "keyposes"}
            if payload.get("complete"):
                keyposes[payload["task_name"]] = payload["keyposes"]
                write_stage_poses(request.suite, {payload["task_name"]: payload["keyposes"]}, request.keypose_root,
                                  extra={"source": "successful expert demonstrations from fresh placements",
                                         "out_dir": str(request.out_dir)})
        elif kind == "error":
            remaining.discard(payload["task_id"])
            summary["errors"][payload["task_id"]] = payload["error"]
            if bar is not None:
                bar.write(f"task {payload['task_id']} failed: {payload['error']}\n{payload['trace']}")
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    if bar is not None:
        bar.close()
    summary["env_steps"] = steps
    summary["wall_s"] = round(time.monotonic() - started, 2)
    summary["request"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(request).items()}
    return summary


def _task_name(request: DemoRequest, task_id: int) -> str:
    from tgrpo.envs.libero_env import task_info

    return task_info(request.suite, task_id).name

