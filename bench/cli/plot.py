"""`tgrpo-bench plot`: learning curves of RL runs as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="RL run directories (runs/rl/...)")
    parser.add_argument("--metric", default="rollout/success_rate", help="a metric name from metrics.jsonl")
    parser.add_argument("--smooth", type=int, default=10, help="trailing mean over this many iterations")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")


def run(args: argparse.Namespace) -> int:
    from bench.learning_curves import plot

    if args.smooth < 1:
        raise UsageError(f"--smooth must be at least 1, got {args.smooth}")
    try:
        data = plot(args.runs, args.metric, args.smooth, args.out)
    except (FileNotFoundError, KeyError) as err:
        raise UsageError(str(err.args[0])) from err  # KeyError's str() would add quotes
    except OSError as err:
        raise UsageError(f"cannot write {args.out}: {err.strerror or err}") from err
    for label, (x, y) in data.items():
        print(f"{label}: {len(x)} iterations, last {args.metric} (mean of {args.smooth}) {y[-1]:.3f}")
    print(f"wrote {args.out}")
    return 0
