"""Before/after table of online RL runs against the SFT policy they started from: what makes a pair comparable,
the verdict, the training columns and the markdown. `bench.rl_pairs` loads the directories and builds the rows.

Each RL run directory (`tgrpo.rl.loop`) holds its final evaluation in `eval/`; each baseline is a `tgrpo-bench eval`
directory of the SFT checkpoint. A row pairs a run with the baseline of the same suite and task, after checking that
both evaluations ran the same episodes with the same decoding and seeds and that the run started from the baseline's
checkpoint: a before/after pair that differs in anything else is refused, never printed. Their episode rows'
provenance must also agree on the protocol and the simulator packages (`bench.compare.check_versions`); only that
check can be waived (`allow_mismatch`), and a waived difference is named in the row. Each row names the commit each
side ran at (git sha, `-dirty` when the checkout had changes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.results import wilson_interval
from tgrpo.jsonl import read_rows

# `episode_start` is left out of the comparison: "reset" and "restore" give bit-identical episodes
# (tests/tgrpo/envs/test_libero_env.py::test_official_episodes_reproduce_openvlas_sequential_run).
COMPARED = ("suite", "task_ids", "episode_ids", "decoding", "obs")
# Read by bench.compare.version_key, which the protocol check of bench.rl_pairs goes through.
PROTOCOL_IGNORED = ("episode_start",)
CURVE_WINDOW = 10  # iterations averaged at the start and the end of a run for the training columns


class ReportError(ValueError):
    """A run or baseline directory is missing, unfinished, or not comparable."""


@dataclass(frozen=True)
class Evaluation:
    successes: int
    episodes: int
    run: dict
    rows: tuple[dict, ...]

    @property
    def rate(self) -> float:
        return self.successes / self.episodes

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    def cell(self) -> str:
        lo, hi = self.interval
        return f"{self.successes}/{self.episodes} = {100 * self.rate:.0f} % [{100 * lo:.1f}, {100 * hi:.1f}]"


def commit(rows: tuple[dict, ...]) -> str:
    """The commit(s) an evaluation's rows ran at: `sha`, `sha-dirty`, or `unknown`; several joined by ` + `."""
    labels = []
    for row in rows:
        sha, dirty = row["provenance"].get("git_sha"), row["provenance"].get("git_dirty")
        label = f"{sha}-dirty" if sha and dirty else sha or "unknown"
        if label not in labels:
            labels.append(label)
    return " + ".join(labels)


def _seeds(run: dict) -> dict:
    """The seeds that can change an evaluation: the policy's seed only draws samples, so greedy decoding ignores it
    (an RL run trained with --seed 1 is evaluated by a policy seeded 1, against an SFT evaluation seeded 0)."""
    seeds = dict(run.get("seeds", {}))
    if run.get("decoding", {}).get("mode") == "greedy":
        seeds.pop("policy", None)
    return seeds


def comparable(before: dict, after: dict) -> list[str]:
    """Names of the settings in which two evaluations' run.json differ (empty: comparable)."""
    diffs = [key for key in COMPARED if before.get(key) != after.get(key)]
    if _seeds(before) != _seeds(after):
        diffs.append("seeds")
    if before["policy"].get("checkpoint") != after["policy"].get("checkpoint"):
        diffs.append("policy.checkpoint (the run did not start from this baseline)")
    return diffs


def verdict(before: Evaluation, after: Evaluation) -> str:
    """Where the RL success rate falls against the SFT policy's Wilson 95 % interval."""
    lo, hi = before.interval
    if after.rate > hi:
        return "above SFT interval"
    if after.rate < lo:
        return "below SFT interval"
    return "inside SFT interval"


def training_summary(run_dir: Path) -> dict:
    """Mean rollout success over the first and the last CURVE_WINDOW iterations of metrics.jsonl, and the KL over
    the last CURVE_WINDOW policy updates (a critic's warm-up iterations have none)."""
    rows = read_rows(Path(run_dir) / "metrics.jsonl", required=("rollout/success_rate",))
    updates = [r for r in rows if "loss/kl_mean" in r]
    if not updates:
        raise ReportError(f"{run_dir}: metrics.jsonl has no policy update")

    def mean(metric: str, part: list[dict]) -> float:
        return float(np.mean([r[metric] for r in part]))

    first, last = rows[:CURVE_WINDOW], rows[-CURVE_WINDOW:]
    return {"iterations": len(rows), "success_first": mean("rollout/success_rate", first),
            "success_last": mean("rollout/success_rate", last),
            "kl_last": mean("loss/kl_mean", updates[-CURVE_WINDOW:])}


def commit_warning(rows: list[dict]) -> str | None:
    """One line naming the runs whose baseline ran at another commit (None when every pair shares one)."""
    runs = [r["run"] for r in rows if r["commit_before"] != r["commit_after"]]
    if not runs:
        return None
    return (f"warning: {len(runs)} of {len(rows)} runs were evaluated at another commit than their baseline "
            f"(see the commit column): {', '.join(runs)}")


def _short(label: str) -> str:
    return re.sub(r"\b([0-9a-f]{10})[0-9a-f]{30}\b", r"\1", label)


def markdown(rows: list[dict]) -> str:
    head = ("| task | method | seed | lr | rollout T | SFT (before) | RL (after) | change | verdict | train success "
            f"(first/last {CURVE_WINDOW} it.) | KL (last {CURVE_WINDOW}) | commit (SFT / RL) | run |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['method']} | {r['seed']} | {r['lr']:g} | {r['temperature']} | "
                     f"{r['before_cell']} | {r['after_cell']} | "
                     f"{r['change_points']:+.0f} | {r['verdict']} | {r['success_first']:.2f} / {r['success_last']:.2f}"
                     f" | {r['kl_last']:.2f} | {_short(r['commit_before'])} / {_short(r['commit_after'])}"
                     f" | `{r['run']}` |")
    notes = [f"- `{r['run']}` paired despite different versions (--allow-mismatch): "
             f"{'; '.join(r['version_mismatches'])}" for r in rows if r["version_mismatches"]]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"
