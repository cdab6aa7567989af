"""Stage-entry-pose aggregation on hand-built stage transitions, and the JSON cache round trip."""

import numpy as np
import pytest

from tgrpo.rewards.keyposes import (
    aggregate_stage_poses,
    load_stage_poses,
    task_stage_poses,
    write_stage_poses,
)


def _tr(step, index, stage, eef, obj=None, retries=0):
    row = {"step": step, "index": index, "skill_index": 0, "skill": "pick_place", "stage": stage,
           "retries": retries, "eef_pos": list(eef), "eef_quat": [1.0, 0.0, 0.0, 0.0], "gripper_opening": 0.08,
           "object": "can_1"}
    if obj is not None:
        row["object_pos"] = list(obj)
    return row


def test_aggregate_means_and_last_entry_wins():
    demo_a = [_tr(0, 0, "approach", (0, 0, 1)), _tr(10, 1, "descend", (0.1, 0, 1), (0.1, 0, 0.9)),
              _tr(30, 0, "approach", (9, 9, 9), retries=1),  # a retry: the later entry is the one that led on
              _tr(40, 1, "descend", (0.3, 0, 1), (0.2, 0, 0.9), retries=1)]
    demo_b = [_tr(0, 0, "approach", (0, 2, 1)), _tr(12, 1, "descend", (0.5, 0, 1), (0.4, 0, 0.9))]
    stages = aggregate_stage_poses([demo_a, demo_b])
    assert [s["label"] for s in stages] == ["pick_place/approach", "pick_place/descend"]
    assert stages[0]["eef_pos"]["mean"] == pytest.approx([4.5, 5.5, 5.0])  # (9,9,9) and (0,2,1)
    d = stages[1]
    assert d["count"] == 2 and d["eef_pos"]["mean"] == pytest.approx([0.4, 0, 1])
    assert d["rel_object"]["mean"] == pytest.approx([0.1, 0, 0.1])  # (0.1,0,0.1) both times
    assert d["step_mean"] == pytest.approx(26.0)
    assert stages[0]["rel_object"] is None
    assert np.linalg.norm(d["eef_quat_mean"]) == pytest.approx(1.0)


def test_cache_round_trip_merges_tasks(tmp_path):
    write_stage_poses("object", {"task_b": {"task_id": 1, "stages": [{"label": "x"}]}}, tmp_path)
    write_stage_poses("libero_object", {"task_a": {"task_id": 0, "stages": []}}, tmp_path)
    doc = load_stage_poses("object", tmp_path)
    assert list(doc["tasks"]) == ["task_a", "task_b"]  # ordered by task id, both kept
    assert task_stage_poses("object", "task_b", tmp_path) == [{"label": "x"}]
    with pytest.raises(FileNotFoundError, match="tgrpo-bench demos"):
        load_stage_poses("goal", tmp_path)
