"""Learning curves of online RL runs: a metric from each run's `metrics.jsonl` against the iteration, one line per
run, as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tgrpo.jsonl import read_rows


def load_run(run_dir: Path) -> tuple[str, list[dict]]:
    """(label "method suite task N seed S (run dir)", metric rows) of a run directory written by `tgrpo.rl.loop`; the
    run directory's name (the parent's too, for the harness's `<stage>/run`) keeps two runs of one method and task
    apart."""
    run_dir = Path(run_dir)
    metrics, config = run_dir / "metrics.jsonl", run_dir / "config.json"
    if not metrics.exists():
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl (not an RL run directory, or not started)")
    rows = read_rows(metrics, required=("iteration",))
    name = f"{run_dir.parent.name}/{run_dir.name}" if run_dir.name == "run" else run_dir.name
    label = name
    if config.exists():
        cfg = json.loads(config.read_text())
        seed = f" seed {cfg['seed']}" if "seed" in cfg else ""
        label = f"{cfg.get('method')} {cfg.get('suite')} task {cfg.get('task_id')}{seed} ({name})"
    return label, rows


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last `window` values (fewer at the start), same length as `values`."""
    sums = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (sums[idx] - sums[start]) / (idx - start)


def curves(run_dirs: list[Path], metric: str, window: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label -> (iterations, smoothed metric)."""
    out = {}
    for run_dir in run_dirs:
        label, rows = load_run(run_dir)
        rows = [r for r in rows if metric in r]
        if not rows:
            raise KeyError(f"{run_dir}: no metric {metric!r}")
        x = np.array([r["iteration"] for r in rows])
        out[label] = (x, moving_average(np.array([r[metric] for r in rows]), window))
    return out


def plot(run_dirs: list[Path], metric: str, window: int, out: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(run_dirs, metric, window)
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (x, y) in data.items():
        ax.plot(x, y, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{metric} (trailing mean of {window})")
    ax.grid(alpha=0.3)
    ax.legend()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return data
