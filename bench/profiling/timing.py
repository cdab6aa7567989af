"""Timers: pytest-benchmark on CPU (run in a subprocess), CUDA events with peak memory on GPU."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.profiling.cases import Case, build

REPO = Path(__file__).resolve().parents[2]
L2_FLUSH_BYTES = 256 * 2**20  # larger than any current GPU's L2: every timed call starts cold


@dataclass(frozen=True)
class Timing:
    median_ms: float | None
    iqr_ms: float | None
    rounds: int
    peak_extra_mib: float | None = None
    min_ms: float | None = None
    error: str | None = None


def time_cpu(
    cases: list[Case], workdir: Path, min_rounds: int = 3, max_time_s: float = 1.0
) -> dict[str, Timing]:
    """Median wall time of each case under pytest-benchmark; its log lands in ``workdir``."""
    spec, out_json = workdir / "cases.json", workdir / "pytest-benchmark.json"
    spec.write_text(json.dumps([c.to_dict() for c in cases]))
    out_json.unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "pytest", str(Path(__file__).with_name("cpu_bench.py")),
        "-q", "-p", "no:cacheprovider", f"--benchmark-json={out_json}",
        f"--benchmark-min-rounds={min_rounds}", f"--benchmark-max-time={max_time_s}",
        "--benchmark-warmup=on", "--benchmark-warmup-iterations=1", "--benchmark-disable-gc",
    ]  # fmt: skip
    env = {**os.environ, "TGRPO_PROFILE_CASES": str(spec), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    (workdir / "pytest-benchmark.log").write_text(proc.stdout + proc.stderr)
    found = json.loads(out_json.read_text())["benchmarks"] if out_json.exists() else []
    timings = {}
    for bench in found:
        stats = bench["stats"]
        timings[bench["extra_info"]["case"]] = Timing(
            stats["median"] * 1e3, stats["iqr"] * 1e3, stats["rounds"], min_ms=stats["min"] * 1e3
        )
    failed = Timing(None, None, 0, error=f"failed: see {workdir / 'pytest-benchmark.log'}")
    return {c.id: timings.get(c.id, failed) for c in cases}


def time_cuda(cases: list[Case], reps: int = 20, warmup: int = 3) -> dict[str, Timing]:
    """CUDA-event median over ``reps`` cold-L2 calls, and peak memory above the inputs, per case."""
    out = {}
    for case in cases:
        try:
            out[case.id] = _time_cuda_call(build(case, "cuda"), reps, warmup)
        except Exception as err:  # noqa: BLE001 - one implementation failing must not lose the others' figures
            out[case.id] = Timing(None, None, 0, error=f"{type(err).__name__}: {err}"[:300])
        torch.cuda.empty_cache()
    return out


def _time_cuda_call(call: Callable[[], object], reps: int, warmup: int) -> Timing:
    for _ in range(warmup):
        call()
    flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.int8, device="cuda")
    times = []
    for _ in range(reps):
        flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    del flush
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    call()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    q1, _, q3 = statistics.quantiles(times, n=4)
    return Timing(statistics.median(times), q3 - q1, reps, peak, min(times))
