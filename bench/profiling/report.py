"""The profile's JSON and markdown: per-case figures, the ratio to the floor, and the targets."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import dataclass
from typing import Any

import torch

from bench.profiling.cases import FLOORS, Case, loss_flops
from bench.profiling.timing import Timing

SCHEMA = "tgrpo-bench/kernel-profile/1"


@dataclass(frozen=True)
class Target:
    key: str
    text: str
    device: str
    kernel: str
    shape: tuple[int, ...]
    impl: str
    max_ms: float | None = None
    max_mib: float | None = None
    baseline: str | None = None
    min_speedup: float | None = None


TARGETS = (
    Target(
        "loss-openvla-h100",
        "loss, OpenVLA shape (2048 steps x 7 tokens, H 4096, V 32064, bf16), fwd+bwd to hidden, H100: "
        "<= 11 ms and <= 300 MiB peak extra",
        "cuda", "loss", (2048, 7, 4096, 32064), "ours-fused", max_ms=11.0, max_mib=300.0,
    ),
    Target(
        "advantage-h100", "advantage [1024, 8, 512], H100: <= 0.04 ms",
        "cuda", "advantage", (1024, 8, 512), "ours", max_ms=0.04,
    ),
    Target(
        "advantage-cpu-vs-loops", "CPU advantage [64, 8, 512]: >= 100x faster than the loop reference",
        "cpu", "advantage", (64, 8, 512), "ours", baseline="loop-reference", min_speedup=100.0,
    ),
)  # fmt: skip


def environment(device: str) -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    name = torch.cuda.get_device_name() if device == "cuda" else _cpu_model()
    return {
        "device": {
            "kind": device,
            "name": name,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "load_average_1min": os.getloadavg()[0],  # other processes on a shared CPU inflate CPU timings
        "platform": platform.platform(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            **{dist: version(dist) for dist in ("triton", "liger-kernel", "numpy", "pytest-benchmark")},
        },
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def results(cases: list[Case], timings: dict[str, Timing]) -> list[dict[str, Any]]:
    """One row per case, with the ratio to its shape's floor (and achieved matmul TFLOP/s for the loss)."""
    by_key = {(c.kernel, c.shape, c.dtype, c.impl): timings[c.id] for c in cases}
    rows = []
    for c in cases:
        t = timings[c.id]
        floor = by_key.get((c.kernel, c.shape, c.dtype, FLOORS[c.kernel]))
        row: dict[str, Any] = {**c.to_dict(), "id": c.id, **t.__dict__}
        row["ratio_to_floor"] = (
            t.median_ms / floor.median_ms if t.median_ms and floor and floor.median_ms else None
        )
        if c.kernel == "loss" and t.median_ms:
            row["matmul_tflops"] = loss_flops(c.shape) / (t.median_ms * 1e-3) / 1e12
        rows.append(row)
    return rows


def evaluate_targets(rows: list[dict[str, Any]], env: dict[str, Any]) -> list[dict[str, Any]]:
    device = env["device"]["kind"]
    found = {(r["kernel"], tuple(r["shape"]), r["impl"]): r for r in rows}
    out = []
    for t in TARGETS:
        entry: dict[str, Any] = {"key": t.key, "target": t.text, "measured": None, "status": "unmeasured"}
        row = found.get((t.kernel, t.shape, t.impl))
        if device != t.device:
            entry["note"] = f"needs a {t.device} run; this run was on {device} ({env['device']['name']})"
        elif row is None or row["median_ms"] is None:
            entry["note"] = "shape not in this grid (use --grid full)" if row is None else row["error"]
        elif t.min_speedup is not None:
            base = found.get((t.kernel, t.shape, t.baseline))
            if base and base["median_ms"]:
                # Judged on the best round: other jobs on a shared CPU only ever add time.
                best = base["min_ms"] / row["min_ms"] if base["min_ms"] and row["min_ms"] else None
                median = base["median_ms"] / row["median_ms"]
                speedup = best or median
                entry.update(
                    measured=f"{speedup:.0f}x" + (f" (median {median:.0f}x)" if best else ""),
                    status="met" if speedup >= t.min_speedup else "missed",
                )
                entry["note"] = (
                    f"best/median: {t.baseline} {base['min_ms']:.1f}/{base['median_ms']:.1f} ms, "
                    f"{t.impl} {row['min_ms']:.3f}/{row['median_ms']:.3f} ms"
                    if best
                    else f"{t.baseline} {base['median_ms']:.1f} ms vs {t.impl} {row['median_ms']:.3f} ms"
                )
        else:
            ms, mib = row["median_ms"], row["peak_extra_mib"]
            ok = ms <= t.max_ms and (t.max_mib is None or (mib is not None and mib <= t.max_mib))
            entry.update(
                measured=f"{ms:.3f} ms" + ("" if mib is None else f", {mib:.0f} MiB"),
                status="met" if ok else "missed",
            )
            entry["note"] = f"on {env['device']['name']}"
        out.append(entry)
    return out


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    lines = [
        "# Kernel profile",
        "",
        (
            f"- device: {env['device']['kind']}, {env['device']['name']}, {env['device']['cpu_count']} CPUs, "
            f"torch threads {env['device']['torch_threads']}, load average {env['load_average_1min']:.1f} at the end"
        ),
        f"- versions: {versions}",
        f"- timer: {report['timer']}",
        f"- command: `{report['command']}`",
        f"- created: {report['created']}",
        "",
    ]
    for kernel, title in (
        ("advantage", "Advantage (shape [G, N, M], float32)"),
        ("loss", "Loss, fwd + bwd to the hidden states"),
    ):
        rows = [r for r in report["results"] if r["kernel"] == kernel]
        if not rows:
            continue
        lines += [
            f"## {title}",
            "",
            "| shape | dtype | implementation | median ms | IQR ms | best ms | peak extra MiB | x floor |",
        ]
        lines += ["|---|---|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            shape = _shape_text(kernel, r["shape"])
            if r["median_ms"] is None:
                lines.append(f"| {shape} | {r['dtype']} | {r['impl']} | error: {r['error']} | | | | |")
                continue
            lines.append(
                f"| {shape} | {r['dtype']} | {r['impl']} | {_num(r['median_ms'])} | "
                f"{_num(r['iqr_ms'])} | {_num(r['min_ms'])} | "
                f"{_num(r['peak_extra_mib'])} | {_num(r['ratio_to_floor'])} |"
            )
        lines.append("")
    lines += ["## Targets", "", "| target | measured | status | note |", "|---|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {t['measured'] or '-'} | {t['status']} | {t.get('note', '')} |")
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def _shape_text(kernel: str, shape: list[int]) -> str:
    if kernel == "loss":
        steps, tokens, hidden, vocab = shape
        return f"{steps} x {tokens} tokens, H {hidden}, V {vocab}"
    return str(list(shape))


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
