"""Result files of an evaluation run: append-only episode rows, run config for resume, summaries.

Layout of an output directory:
- ``run.json``: what the run evaluates (policy, suite, tasks, episodes, observation, protocol, seeds). A resumed run
  must ask for the same, else it is refused: two configurations never mix in one file.
- ``episodes.jsonl``: one row per finished episode, each with its own provenance block; written and fsynced one
  row at a time, so a killed run loses at most the episodes in flight. A line that is not a row (torn by a kill,
  edited by hand) moves to ``episodes.jsonl.torn`` when the run resumes (tgrpo/jsonl.py); every valid row is kept.
- ``summary.json`` / ``summary.md``: success rate and Wilson 95% interval per task and for the suite.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from tgrpo.jsonl import read_rows

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when n == 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


ROW_KEYS = ("suite", "task_id", "task_name", "episode", "success", "steps")  # what resume and summaries read


class OutputError(ValueError):
    """The output directory cannot hold this run; the message says which file and what to do."""


class RunMismatch(OutputError):
    """The output directory holds rows of a different run configuration."""


class OutputNotWritable(OutputError):
    """The output directory cannot be created or written."""


class CorruptRunFile(OutputError):
    """The output directory's run.json is not a run configuration (random bytes, truncated, not an object)."""


@dataclass
class ResultStore:
    out_dir: Path

    @property
    def episodes_path(self) -> Path:
        return self.out_dir / "episodes.jsonl"

    @property
    def run_path(self) -> Path:
        return self.out_dir / "run.json"

    def check_writable(self) -> None:
        """Create the directory and prove a file can be written there, before any work starts."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / ".write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as err:
            raise OutputNotWritable(f"output directory {self.out_dir} is not writable: {err.strerror or err}") from err

    def begin(self, config: dict) -> list[dict]:
        """Start or resume a run of `config`; returns the rows already finished."""
        self.check_writable()
        config = json.loads(json.dumps(config, sort_keys=True))  # compare as stored (tuples become lists)
        if self.run_path.exists():
            previous = self._read_run_file()
            if previous != config:
                changed = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.get(k))
                raise RunMismatch(
                    f"{self.out_dir} holds a different run (differs in: {', '.join(changed)}); "
                    "use another --out or the same settings to resume"
                )
        else:
            _atomic_write(self.run_path, json.dumps(config, indent=2, sort_keys=True))
        return self.read_rows()

    def _read_run_file(self) -> dict:
        try:
            previous = json.loads(self.run_path.read_bytes())
        except OSError as err:
            previous, why = None, f"unreadable ({err.strerror or err})"
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            previous, why = None, f"not JSON ({err})"
        else:
            why = f"a JSON {type(previous).__name__}, not a run configuration"
        if not isinstance(previous, dict):
            raise CorruptRunFile(f"{self.run_path} is corrupt: {why}; use another --out (nothing there is touched), "
                                 "or delete it if the rows there came from these same settings")
        return previous

    def read_rows(self) -> list[dict]:
        """Finished rows. A line that is not a row (a kill during a write, a hand edit) moves to
        episodes.jsonl.torn, the file is rewritten without it, and a line on stderr says so."""
        return read_rows(self.episodes_path, repair=True, required=ROW_KEYS)

    def append(self, row: dict) -> None:
        with self.episodes_path.open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write_summary(self, summary: dict) -> str:
        """Write summary.json and summary.md; returns the markdown table."""
        _atomic_write(self.out_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True))
        table = summary_table(summary)
        _atomic_write(self.out_dir / "summary.md", table + "\n")
        return table


def summarize(rows: list[dict]) -> dict:
    """Per task and per suite: episodes, successes, rate and Wilson 95% interval. Errors count as failures;
    `sim_warnings` counts the episodes in which MuJoCo warned (an unstable simulation among them)."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["suite"], row["task_id"]), []).append(row)

    def stats(subset: list[dict]) -> dict:
        n = len(subset)
        k = sum(bool(r["success"]) for r in subset)
        low, high = wilson_interval(k, n)
        return {
            "episodes": n, "successes": k, "success_rate": k / n if n else None,
            "wilson95": [low, high], "errors": sum(r.get("error") is not None for r in subset),
            "sim_warnings": sum(bool(r.get("sim_warnings")) for r in subset),
            "mean_steps": sum(r["steps"] for r in subset) / n if n else None,
        }

    tasks = [
        {"suite": s, "task_id": t, "task": rows_[0]["task_name"], **stats(rows_)}
        for (s, t), rows_ in sorted(groups.items())
    ]
    suites = {}
    for suite in sorted({s for s, _ in groups}):
        suites[suite] = stats([r for r in rows if r["suite"] == suite])
    return {"tasks": tasks, "suites": suites}


def summary_table(summary: dict) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    body = [
        [t["suite"], t["task_id"], t["task"][:48], t["episodes"], t["successes"], pct(t["success_rate"]),
         f"[{pct(t['wilson95'][0])}, {pct(t['wilson95'][1])}]", t["errors"], t["sim_warnings"]]
        for t in summary["tasks"]
    ]
    body += [
        [suite, "all", "", s["episodes"], s["successes"], pct(s["success_rate"]),
         f"[{pct(s['wilson95'][0])}, {pct(s['wilson95'][1])}]", s["errors"], s["sim_warnings"]]
        for suite, s in summary["suites"].items()
    ]
    headers = ["suite", "task", "name", "episodes", "successes", "success %", "Wilson 95% CI", "errors", "sim warnings"]
    return tabulate(body, headers=headers, tablefmt="github")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
