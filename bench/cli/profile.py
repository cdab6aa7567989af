"""``tgrpo-bench profile``: time the advantage and loss kernels over a grid of shapes.

On CPU the timer is pytest-benchmark; on CUDA, CUDA events with peak memory, comparing naive eager
torch, torch.compile, ours and Liger-Kernel's GRPO losses when installed. Writes ``kernels.json``
and ``kernels.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.cli import UsageError

GRIDS = ("smoke", "quick", "full")
KERNELS = ("advantage", "loss")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("results/bench/kernels"), help="report folder")
    parser.add_argument("--grid", choices=GRIDS, default="full", help="shape grid (default: full)")
    parser.add_argument(
        "--quick", dest="grid", action="store_const", const="quick", help="same as --grid quick"
    )
    parser.add_argument(
        "--smoke", dest="grid", action="store_const", const="smoke", help="same as --grid smoke (seconds, for tests)"
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if present"
    )
    parser.add_argument("--kernel", choices=(*KERNELS, "all"), default="all", help="which kernels to time")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: 1 on CPU, torch's own on CUDA)",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from bench.profiling.run import profile

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is visible")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out {args.out}: {err.strerror}") from None
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    kernels = KERNELS if args.kernel == "all" else (args.kernel,)
    command = (
        shlex.join(["tgrpo-bench", "profile", *sys.argv[2:]])
        if sys.argv[1:2] == ["profile"]
        else "tgrpo-bench profile"
    )
    report = profile(args.out, device, args.grid, kernels, command, args.threads)
    failed = [r["id"] for r in report["results"] if r["median_ms"] is None]
    print(
        f"wrote {args.out / 'kernels.json'} and {args.out / 'kernels.md'} ({len(report['results'])} cases on {device})"
    )
    for target in report["targets"]:
        print(f"  {target['status']:>10}  {target['target']}  {target['measured'] or ''}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
