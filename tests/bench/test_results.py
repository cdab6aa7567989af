"""Wilson intervals against hand-computed values; summaries count errors as failures; torn rows are dropped."""

import json

import pytest

from bench.results import ResultStore, RunMismatch, summarize, wilson_interval


def test_wilson_hand_computed():
    # k = 0: upper bound z^2 / (n + z^2)
    z2 = 1.959963984540054 ** 2
    low, high = wilson_interval(0, 3)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(z2 / (3 + z2))
    # k = n/2 is symmetric around 0.5; 5/10 -> [0.2366, 0.7634] (standard table value)
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.23659, abs=1e-4) and high == pytest.approx(0.76341, abs=1e-4)
    # 45/50 -> [0.7864, 0.9565]
    low, high = wilson_interval(45, 50)
    assert low == pytest.approx(0.78641, abs=1e-4) and high == pytest.approx(0.95654, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def _row(task, ep, success, error=None):
    return {"suite": "libero_object", "task_id": task, "task_name": f"t{task}", "episode": ep,
            "success": success, "steps": 10, "error": error}


def test_summary_counts_errors_as_failures():
    rows = [_row(0, 0, True), _row(0, 1, False, "step 3 failed: worker crashed"), _row(1, 0, True)]
    s = summarize(rows)
    assert [t["successes"] for t in s["tasks"]] == [1, 1]
    assert s["tasks"][0]["episodes"] == 2 and s["tasks"][0]["errors"] == 1
    assert s["suites"]["libero_object"]["success_rate"] == pytest.approx(2 / 3)


def test_torn_last_row_is_dropped_and_mismatched_resume_refused(tmp_path):
    store = ResultStore(tmp_path)
    assert store.begin({"policy": "zero"}) == []
    store.append(_row(0, 0, True))
    with store.episodes_path.open("a") as f:
        f.write('{"suite": "libero_obj')  # a kill in the middle of a write
    rows = ResultStore(tmp_path).begin({"policy": "zero"})
    assert rows == [_row(0, 0, True)]
    assert store.episodes_path.read_text().count("\n") == 1
    with pytest.raises(RunMismatch, match="policy"):
        ResultStore(tmp_path).begin({"policy": "random"})
    assert json.loads((tmp_path / "run.json").read_text()) == {"policy": "zero"}
