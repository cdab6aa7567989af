"""The RL-task rule of the small-profile science: nearest 50 % SFT success, ties to the lower id; refused until
every SFT evaluation of the suite has finished."""

from __future__ import annotations

import json

import pytest

from bench.reproduce.pick_tasks import main, nearest_half
from bench.reproduce.plan import TaskRule, build_plan, parse_tasks
from bench.reproduce.store import RunStore


def test_nearest_half_by_hand():
    rates = {0: 0.9, 1: 0.46, 2: 0.54, 3: 0.1, 4: 0.5, 5: 0.62, 6: 0.38}
    assert nearest_half(rates, 3) == [1, 2, 4]  # |d| 0.04, 0.04, 0.0
    assert nearest_half(rates, 4) == [1, 2, 4, 5]  # 0.62 and 0.38 tie at 0.12 (in floats too): the lower id
    assert nearest_half({0: 0.3, 1: 0.7}, 1) == [0]  # a tie goes to the lower id


def test_reads_the_store_and_refuses_an_unfinished_suite(tmp_path, capsys):
    store = RunStore(tmp_path)
    evals = [s for s in build_plan("libero_10", "small", ("sft",)) if s.kind == "eval"]
    for stage in evals[:-1]:
        task = stage.config["tasks"][0]
        (store.path(stage) / "eval").mkdir(parents=True)
        (store.path(stage) / "eval" / "summary.json").write_text(json.dumps(
            {"tasks": [{"task_id": task, "success_rate": [0.0, 0.2, 0.48, 0.9, 0.56, 1.0, 0.3, 0.7, 0.1][task]}]}))
        store.begin(stage, {})
        store.finish(stage, {}, 1.0)
    assert main(["--store", str(tmp_path), "--suite", "long", "--count", "3"]) == 2
    assert "not finished for tasks [9]" in capsys.readouterr().err
    last = evals[-1]
    (store.path(last) / "eval").mkdir(parents=True)
    (store.path(last) / "eval" / "summary.json").write_text(json.dumps({"tasks": [{"task_id": 9,
                                                                                  "success_rate": 0.4}]}))
    store.begin(last, {})
    store.finish(last, {}, 1.0)
    assert main(["--store", str(tmp_path), "--suite", "long", "--count", "3"]) == 0
    assert capsys.readouterr().out.strip() == "2,4,9"  # 0.48, 0.56, 0.4


def test_parse_tasks():
    assert parse_tasks("auto") == TaskRule(3) and parse_tasks("auto:1") == TaskRule(1)
    assert parse_tasks("1, 6,8") == (1, 6, 8)
    for bad in ("auto:0", "auto:11", "auto:x", "", "1,a"):
        with pytest.raises(ValueError):
            parse_tasks(bad)


def test_a_rule_needs_every_task_s_sft_and_is_resolved_before_rl():
    assert len([s for s in build_plan("libero_10", "small", ("sft",)) if s.kind == "eval"]) == 10
    with pytest.raises(ValueError, match="resolve them first"):
        build_plan("libero_10", "small")  # the small default: tgrpo, grpo on auto:3
    with pytest.raises(ValueError, match="smoke profile's SFT learns only the tasks RL trains"):
        build_plan("libero_10", "smoke", ("sft",), TaskRule(2))


def _finish_evals(store, stages, rates):
    for stage in stages:
        task = stage.config["tasks"][0]
        (store.path(stage) / "eval").mkdir(parents=True, exist_ok=True)
        (store.path(stage) / "eval" / "summary.json").write_text(json.dumps({"tasks": [
            {"suite": "libero_10", "task_id": task, "successes": round(50 * rates[task]), "episodes": 50,
             "success_rate": rates[task]}]}))
        store.begin(stage, {})
        store.finish(stage, {}, 1.0)


RATES = [0.0, 0.2, 0.48, 0.9, 0.56, 1.0, 0.3, 0.7, 0.1, 0.4]  # nearest 50 %: tasks 2 (0.48), 4 (0.56), 9 (0.4)


def test_the_small_default_runs_sft_evaluations_then_rl_on_the_rule_s_tasks(tmp_path, monkeypatch, capsys):
    """`reproduce --suite long --profile small` with nothing cached: the first walk holds demos, SFT and the 10 SFT
    evaluations only; once they finished, the second holds TGRPO and GRPO, seeds 0 and 1, on tasks 2, 4, 9 (picked
    by hand from RATES) beside the cached SFT stages; a rerun goes straight to the full plan."""
    from bench.cli import main as cli_main
    from bench.cli import reproduce as cli
    from bench.reproduce.execute import Outcome

    walks = []

    def fake_execute(args, plan, store, cluster):
        walks.append([(s.kind, s.config.get("method"), s.config.get("task") if s.kind == "rl" else None,
                       s.config.get("seed")) for s in plan if not store.is_done(s)])
        _finish_evals(store, [s for s in plan if s.kind == "eval" and not store.is_done(s)], RATES)
        for stage in (s for s in plan if not store.is_done(s)):
            if stage.kind == "rl":  # what a finished RL stage holds: its metrics and its evaluation
                (store.path(stage) / "run" / "eval").mkdir(parents=True)
                (store.path(stage) / "run" / "metrics.jsonl").write_text(
                    json.dumps({"iteration": 0, "rollout/success_rate": 0.5}) + "\n")
                (store.path(stage) / "run" / "eval" / "summary.json").write_text(json.dumps({"tasks": [
                    {"suite": "libero_10", "task_id": stage.config["task"], "successes": 25, "episodes": 50,
                     "success_rate": 0.5}]}))
            store.begin(stage, {})
            store.finish(stage, {}, 1.0)
        return Outcome()

    monkeypatch.setattr(cli, "_execute", fake_execute)
    monkeypatch.setattr(cli, "_compare", lambda specs, profile, out: True)
    args = ["reproduce", "--suite", "long", "--profile", "small", "--store", str(tmp_path), "--no-progress"]
    assert cli_main(args) == 0
    assert [k for k, *_ in walks[0]] == ["demos", "sft"] + ["eval"] * 10
    assert sorted(w[1:] for w in walks[1]) == sorted((m, t, s) for m in ("tgrpo", "grpo") for t in (2, 4, 9)
                                                      for s in (0, 1))
    err = capsys.readouterr().err
    assert "--tasks auto:3: the RL stages come once the SFT evaluations below have finished" in err
    assert "RL tasks by the rule --tasks auto:3 (SFT success nearest 50 %): 2,4,9" in err
    report = json.loads((tmp_path / "libero_10-small" / "report.json").read_text())
    assert sorted(r["task"] for r in report["rows"] if r["method"] == "sft") == list(range(10))
    walks.clear()
    assert cli_main(args) == 0 and walks == [[]]
