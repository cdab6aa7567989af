"""The RL-task rule of the small-profile science: nearest 50 % SFT success, ties to the lower id; refused until
every SFT evaluation of the suite has finished."""

from __future__ import annotations

import json

from bench.reproduce.pick_tasks import main, nearest_half
from bench.reproduce.plan import build_plan
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
