"""Key poses derived from demonstrations and the validation checks, on hand-built episodes (no simulator)."""

import json

import numpy as np
import pytest

from tests.tgrpo.rewards.test_reward import FACTS, PICK_PLACE, make_layout, make_state
from tgrpo.rewards.keyposes import derive_key_poses, load_key_poses, write_key_poses
from tgrpo.rewards.reward import StageReward
from tgrpo.rewards.schema import check_spec
from tgrpo.rewards.validate import Episode, check_task, table


@pytest.fixture
def setup():
    layout = make_layout()
    spec = check_spec(PICK_PLACE, FACTS)
    return layout, spec


def demo(layout, reach_dz=0.05):
    """A 5-state successful pick-and-place; the reach stage is first reached with the eef reach_dz above the can
    box's top face (box center z 0.82, half height 0.04)."""
    return np.stack([
        make_state(layout, (0, 0, 1), 0.078, (0.5, 0, 0.8)),
        make_state(layout, (0.5, 0, 0.86 + min(reach_dz, 0.03)), 0.078, (0.5, 0, 0.8)),
        make_state(layout, (0.5, 0, 0.84), 0.05, (0.5, 0, 0.8)),
        make_state(layout, (0.5, 0, 0.94), 0.05, (0.5, 0, 0.9)),
        make_state(layout, (0, 0.5, 0.95), 0.078, (0, 0.5, 0.82), goal=1.0),
    ])


def test_key_poses_are_the_median_eef_offset_at_each_first_reach(setup, tmp_path):
    layout, spec = setup
    demos = []
    for dz in (0.01, 0.02, 0.03):  # eef above the can box top by dz at the reach step
        demos.append(demo(layout, dz))
    poses = derive_key_poses(spec, layout, demos)
    # reach key pose base = can box center (0.5, 0, 0.82); eef z = 0.86 + dz: offsets z 0.05, 0.06, 0.07
    assert poses["reach"]["offset"] == pytest.approx([0.0, 0.0, 0.06])
    assert poses["reach"]["samples"] == 3 and poses["reach"]["spread"] == pytest.approx(0.01)
    # grasp at state 2: eef (0.5, 0, 0.84) - center (0.5, 0, 0.82)
    assert poses["grasp"]["offset"] == pytest.approx([0.0, 0.0, 0.02])
    # lift at state 3, base = start center (0.5, 0, 0.82): eef (0.5, 0, 0.94) -> +0.12
    assert poses["lift"]["offset"] == pytest.approx([0.0, 0.0, 0.12])
    # place at state 4, base = bin origin (0, 0.5, 0.8): eef (0, 0.5, 0.95) -> +0.15
    assert poses["place"]["offset"] == pytest.approx([0.0, 0.0, 0.15])
    assert poses["lift"]["at"] == "start" and poses["place"]["entity"] == "bin_region"

    path = tmp_path / "libero_object.keyposes.json"
    write_key_poses(path, "libero_object", {0: (spec, poses)})
    loaded = load_key_poses(spec, path)
    assert set(loaded) == {"reach", "grasp", "lift", "place"} and "samples" not in loaded["reach"]
    StageReward(spec, layout, loaded)  # compiles
    other = json.loads(json.dumps(spec))
    other["subplans"][0]["stages"][0]["reward"] = 0.2
    assert load_key_poses(other, path) is None  # recorded for another spec: ignored


def _ep(P, kind="expert", idx=0):
    done = np.zeros(len(P) - 1, dtype=bool)
    done[-1] = P[-1][-1] > 0.5  # goal/0 is the last slice of the toy layout
    return Episode(kind, idx, P, done, bool(done.any()))


def test_checks_pass_on_a_clean_demo(setup):
    layout, spec = setup
    reward = StageReward(spec, layout)
    good = demo(layout)
    stuck = np.stack([good[0]] * 5)  # never moves
    out = check_task(reward, [_ep(good)], [_ep(stuck, "random")])
    assert out["status"] == "pass" and out["reasons"] == []
    assert out["demos_monotone"] == 1 and out["demos_reach_last"] == 1
    assert out["mean_return_success"] > out["mean_return_failure"]
    assert out["final_agreement"] == 1.0


def test_checks_catch_a_drop_a_missed_last_stage_and_a_bad_ordering(setup):
    layout, spec = setup
    reward = StageReward(spec, layout)
    good = demo(layout)
    dip = good.copy()
    dip[3] = make_state(layout, (0.5, 0, 0.84), 0.05, (0.5, 0, 0.8))  # lift state replaced by grasp again
    dip = np.insert(dip, 3, good[3], axis=0)  # 0 1 2 3 2 4 -> decreases once
    out = check_task(reward, [_ep(dip)], [])
    assert out["status"] == "fail" and out["worst_drop"] == 1
    assert "decreases in 1 of 1" in out["reasons"][0]

    skipped = good.copy()
    skipped[3] = good[2]  # never lifted: place cannot be reached although LIBERO succeeds
    out = check_task(reward, [_ep(skipped)], [])
    assert any("last stage not reached" in r for r in out["reasons"])
    assert out["final_agreement"] == 0.75  # 3 of 4 steps agree; the success step does not

    # holding the can (stage 2, 0.13 m from the lift key pose) for 20 steps: 0.5 - 0.13 = 0.37 a step, 7.4 in
    # all, more than the success's 2.5 (f1) - (0.07 + 0.13 + 0.7082 + 0.05) (f2) + 1 (bonus) = 2.5418 (its reach
    # state has the eef 3 cm above the box, 7 cm from the grasp key pose); cut to the demonstration's 4 steps
    # it earns 4 * 0.37 = 1.48
    hover = np.stack([good[0], *[good[2]] * 20])
    out = check_task(reward, [_ep(good)], [_ep(hover, "expert_frozen")])
    assert out["status"] == "pass"
    assert out["mean_return_failure"] == pytest.approx(1.48)
    assert out["mean_return_success"] == pytest.approx(2.5418, abs=1e-3)  # rounded to 3 decimals
    out = check_task(reward, [_ep(good)], [_ep(hover, "expert_frozen", idx=7)])  # no demo of init 7: not cut
    assert out["status"] == "fail" and "failures score" in out["reasons"][-1]


def test_a_retried_demonstration_may_go_back(setup):
    layout, spec = setup
    reward = StageReward(spec, layout)
    good = demo(layout)
    retry = np.stack([good[0], good[1], good[2], good[0], good[1], good[2], good[3], good[4]])  # 0 1 2 0 1 2 3 4
    ep = _ep(retry)
    out = check_task(reward, [ep], [])
    assert out["status"] == "fail" and "decreases in 1 of 1" in out["reasons"][0]
    ep.retried = True  # the demonstrator's own log went back too: a faithful drop
    out = check_task(reward, [_ep(good), ep], [])
    assert out["status"] == "pass" and out["demos_retried"] == 1 and out["demos_monotone"] == 1
    assert out["demos_reach_last"] == 2 and out["demos_retried_monotone"] == 0
    out = check_task(reward, [ep], [])
    assert out["status"] == "no-demo"  # its only demonstration dropped: nothing held the spec to monotony


def test_a_retried_demonstration_that_never_dropped_is_evidence(setup):
    """The expert went back in its own record (say a re-approach while the object stayed put), but the spec's stage
    index never decreased (0 1 1 2 3 4): the spec held through the disturbance, so the task passes on it."""
    layout, spec = setup
    reward = StageReward(spec, layout)
    good = demo(layout)
    ep = _ep(np.stack([good[0], good[1], good[1], good[2], good[3], good[4]]))
    ep.retried = True
    out = check_task(reward, [ep], [])
    assert out["status"] == "pass" and out["demos_monotone"] == 0 and out["demos_retried_monotone"] == 1


def test_no_demo_is_its_own_status(setup):
    layout, spec = setup
    out = check_task(StageReward(spec, layout), [], [_ep(demo(layout)[:3], "expert")])
    assert out["status"] == "no-demo" and out["demos"] == 0


def test_table_has_a_row_per_task():
    from tgrpo.rewards.validate import TaskValidation

    row = TaskValidation(suite="libero_object", task_id=0, spec_sha256="x", status="pass", stages=5, demos=3,
                         demos_monotone=2, demos_retried=1, demos_reach_last=3, worst_drop=0, failures=6,
                         mean_return_success=22.6, mean_return_failure=-9.1, final_agreement=1.0,
                         mean_stage_failure=1.2, demos_retried_monotone=1)
    text = table([row])
    assert ("| libero_object/0 | 5 | pass | 3 (1 retried) | 2/2 + 1/1 retried | 3/3 | 22.60 | -9.10 | 6 | 100.0% |"
            in text)


def test_failure_wrappers_freeze_or_keep_the_gripper_open():
    from tgrpo.policies.base import Policy, PolicyOutput
    from tgrpo.rewards.validate import _Frozen, _GripperOpen

    class Counter(Policy):
        def __init__(self):
            self.t = 0

        def act(self, obs, instructions, slots, mode="greedy", temperature=1.0):
            self.t += 1
            return PolicyOutput(np.array([[0.1 * self.t, 0, 0, 0, 0, 0, 1.0]]))

    frozen = _Frozen(Counter(), steps=2)
    frozen.begin_episode(0, "x")
    acts = [frozen.act({}, ["x"], [0]).actions[0] for _ in range(4)]
    np.testing.assert_allclose([a[0] for a in acts], [0.1, 0.2, 0.0, 0.0])
    assert [a[6] for a in acts] == [1.0, 1.0, 1.0, 1.0]  # the gripper stays as last commanded (closed)
    opened = _GripperOpen(Counter())
    opened.begin_episode(0, "x")
    a = opened.act({}, ["x"], [0]).actions[0]
    assert a[0] == pytest.approx(0.1) and a[6] == -1.0


def test_demonstrator_retries_are_read_from_its_own_record():
    from tgrpo.rewards.validate import _GripperOpen, demonstrator_retried

    class Demo:
        def __init__(self, log, transitions):
            self._log, self._tr = log, transitions

        def stage_log(self, slot):
            return self._log

        def transitions(self, slot):
            return self._tr

    pick = [{"skill": "pick_place", "object": "a", "target": "b", "stage": s} for s in ("approach", "grasp")]
    other = [{"skill": "pick_place", "object": "c", "target": "b", "stage": s} for s in ("approach", "grasp")]
    assert not demonstrator_retried(Demo([0, 0, 1, 2, 3], pick + other))  # two objects: no retry
    assert demonstrator_retried(Demo([0, 1, 2, 0, 1], pick))  # its stage went back
    assert demonstrator_retried(Demo([0, 1, 2, 3, 4], pick + pick))  # replanned the same skill
    assert demonstrator_retried(_GripperOpen(Demo([0, 1, 0], pick)))  # wrappers forward the record
    assert not demonstrator_retried(object())  # no record: not retried
