"""The expert success table: counts, intervals, refusals (hand-built evaluation directories, no simulator)."""

import json

import pytest

from bench.expert_table import TableError, main, markdown, task_rows

PROV = {"git_sha": "a" * 40, "git_dirty": False, "python": "3.11.7", "packages": {"mujoco": "2.3.7"},
        "machine": {"cpu": "x"}}


def _write(tmp_path, outcomes, sha="a" * 40, dirty=False):
    """outcomes: {task_id: [(success, steps, error), ...]} for episodes 0..n-1."""
    n = len(next(iter(outcomes.values())))
    run = {"suite": "libero_goal", "task_ids": sorted(outcomes), "episode_ids": list(range(n)), "seeds": {"env": 0},
           "protocol": {"max_policy_steps": {"libero_goal": 300}}}
    (tmp_path / "run.json").write_text(json.dumps(run))
    with open(tmp_path / "episodes.jsonl", "w") as f:
        for task_id, eps in outcomes.items():
            for k, (success, steps, error) in enumerate(eps):
                prov = dict(PROV, git_sha=sha, git_dirty=dirty)
                f.write(json.dumps({"episode": k, "task_id": task_id, "task_name": f"task_{task_id}",
                                    "success": success, "steps": steps, "error": error,
                                    "provenance": prov}) + "\n")
    return tmp_path


def test_rows_count_errors_as_failures_and_give_the_wilson_interval(tmp_path):
    nine = [(True, 100, None)] * 9 + [(False, 300, None)]
    errored = [(True, 120, None)] * 9 + [(True, 50, "worker crashed")]  # an errored episode is a failure
    rows, prov = task_rows(_write(tmp_path, {3: nine, 5: errored}))
    assert [r["successes"] for r in rows] == [9, 9] and rows[1]["errors"] == 1
    assert rows[0]["wilson95"] == pytest.approx([0.5958, 0.9821], abs=1e-4)  # 9/10, Wilson 95 %
    assert rows[0]["mean_steps"] == pytest.approx(120.0) and rows[0]["max_success_steps"] == 100
    assert rows[0]["failed_episodes"] == [9] and rows[1]["failed_episodes"] == [9]
    assert prov["git_sha"] == "a" * 40 and prov["python"] == "3.11.7"
    assert prov["protocol"]["max_policy_steps"]["libero_goal"] == 300
    text = markdown(rows)
    assert "| libero_goal/3 | task_3 | 9/10 | [59.6, 98.2] | 120 | 100 | 300 | 9 |" in text
    assert "2 of 2 tasks at or above 90 %" in text


def test_below_target_is_marked(tmp_path):
    rows, _ = task_rows(_write(tmp_path, {0: [(True, 100, None)] * 8 + [(False, 300, None)] * 2}))
    assert "8/10 **(< 90 %)**" in markdown(rows) and "0 of 1 tasks" in markdown(rows)


def test_dirty_or_mixed_commits_are_refused(tmp_path, capsys):
    with pytest.raises(TableError, match="dirty"):
        task_rows(_write(tmp_path, {0: [(True, 1, None)]}, dirty=True))
    d = _write(tmp_path, {0: [(True, 1, None)]})
    with open(d / "episodes.jsonl", "a") as f:
        f.write(json.dumps({"episode": 1, "task_id": 0, "task_name": "t", "success": True, "steps": 1,
                            "error": None, "provenance": dict(PROV, git_sha="b" * 40)}) + "\n")
    assert main([str(d)]) == 2
    assert "one clean commit" in capsys.readouterr().err


def test_an_unfinished_task_is_refused(tmp_path):
    d = _write(tmp_path, {0: [(True, 1, None)] * 3})
    run = json.loads((d / "run.json").read_text())
    run["episode_ids"] = list(range(5))
    (d / "run.json").write_text(json.dumps(run))
    with pytest.raises(TableError, match="3 of 5 episodes"):
        task_rows(d)


def test_a_task_rerun_in_a_later_directory_replaces_the_earlier_row(tmp_path):
    first, rerun = tmp_path / "all", tmp_path / "rerun"
    first.mkdir()
    rerun.mkdir()
    _write(first, {0: [(True, 100, None)] * 2, 3: [(False, 300, None)] * 2})
    _write(rerun, {3: [(True, 200, None)] * 2}, sha="b" * 40)
    out = tmp_path / "table.json"
    assert main([str(first), str(rerun), "--json", str(out)]) == 0
    table = json.loads(out.read_text())
    assert [(r["task_id"], r["successes"], r["directory"]) for r in table["rows"]] == [
        (0, 2, str(first)), (3, 2, str(rerun))]
    assert [run["git_sha"] for run in table["runs"]] == ["a" * 40, "b" * 40]
