"""``tgrpo-bench profile``: time the grid on one device, write ``kernels.json`` and ``kernels.md``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from bench.profiling import report as rep
from bench.profiling.cases import IMPL_TEXT, cases
from bench.profiling.timing import time_cpu, time_cuda
from tgrpo.provenance import provenance

CPU_ROUNDS = {"smoke": (1, 0.02), "quick": (3, 1.0), "full": (3, 1.0)}  # (min rounds, max seconds per case)
CUDA_REPS = {"smoke": (1, 3), "quick": (1, 20), "full": (3, 20)}  # (warm-up calls, timed calls)


def profile(
    out_dir: Path, device: str, grid: str, kernels: tuple[str, ...], command: str, threads: int | None = None
) -> dict[str, Any]:
    """Time ``kernels`` over ``grid`` on ``device`` with ``threads`` torch intra-op threads.

    On CPU the default is one thread: on a small machine shared with other jobs, OpenMP threads that
    wait on descheduled peers make small ops 10-50x slower and the figures noisy (and the loop
    reference is single-threaded). On CUDA the default is torch's.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    todo, notes = cases(device, grid, kernels)
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or (1 if device == "cpu" else default_threads))
    try:
        if device == "cpu":
            rounds, max_time = CPU_ROUNDS[grid]
            timings = time_cpu(todo, out_dir, rounds, max_time)
            timer = (
                f"pytest-benchmark, median wall time (at least {rounds} rounds, up to {max_time} s per case)"
            )
        else:
            warmup, reps = CUDA_REPS[grid]
            timings = time_cuda(todo, reps, warmup)
            timer = (
                f"CUDA events, median of {reps} calls after {warmup} warm-up calls, L2 flushed before each; "
                "peak extra = torch.cuda.max_memory_allocated above the memory held before the call"
            )
        env = rep.environment(device)
    finally:
        torch.set_num_threads(default_threads)
    rows = rep.results(todo, timings)
    impls = sorted({c.impl for c in todo})
    report = {
        "schema": rep.SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "grid": grid,
        "environment": env,
        "timer": timer,
        "results": rows,
        "targets": rep.evaluate_targets(rows, env),
        "notes": notes + [f"{impl}: {IMPL_TEXT[impl]}" for impl in impls],
        "provenance": provenance(),
    }
    (out_dir / "kernels.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "kernels.md").write_text(rep.markdown(report))
    return report
