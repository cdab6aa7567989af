"""Preference pairs from hand-made groups: DPO's success over failure, GRAPE's cost from stage records and its
best-over-worst ranking."""

import numpy as np
import pytest

from tgrpo.rl.pairs import PAIRINGS, CostWeights, cost_pairs, success_pairs, trajectory_cost

ALL = np.ones(4, dtype=bool)


def test_success_over_failure_from_one_start():
    success = np.array([True, False, False, True])
    assert success_pairs(success, ALL) == [(0, 1), (3, 2)]  # disjoint: every trajectory in at most one pair
    assert success_pairs(np.array([False, True, False, False]), ALL) == [(1, 0)]
    assert success_pairs(success, ALL, max_pairs=1) == [(0, 1)]


def test_no_pair_when_all_succeed_or_all_fail():
    assert success_pairs(np.ones(4, dtype=bool), ALL) == []
    assert success_pairs(np.zeros(4, dtype=bool), ALL) == []


def test_a_crashed_trajectory_is_never_a_failure_to_prefer_against():
    success = np.array([True, False, False, False])
    valid = np.array([True, False, False, True])  # workers 1 and 2 crashed
    assert success_pairs(success, valid) == [(0, 3)]
    assert success_pairs(success, np.array([True, False, False, False])) == []


def _record(stages, distances, length):
    """One trajectory of M = 4 steps: stage and distance of its M + 1 states; states after `length` are garbage."""
    return np.array(stages), np.array(distances, dtype=float), np.arange(4) < length


def test_cost_from_hand_made_stage_records():
    k = 3  # stages of the task
    rows = [
        _record([0, 1, 2, 3, 3], [0.30, 0.20, 0.10, 0.02, 0.00], 4),  # success at the last step
        _record([0, 1, 2, 1, 1], [0.30, 0.20, 0.08, 0.15, 0.40], 4),  # reached stage 2 (d 0.08 there), then fell back
        _record([0, 1, 2, 2, 3], [0.30, 0.25, 0.35, 0.12, 0.00], 3),  # stage 2 at best; the 5th state is past its end
        _record([0, 0, 0, 0, 0], [0.60, 0.50, 0.55, 0.52, 0.51], 4),  # never left the start stage
    ]
    stage, distance, mask = (np.stack(x) for x in zip(*rows, strict=True))
    success = np.array([True, False, False, False])
    cost = trajectory_cost(stage, distance, success, mask, k)
    # by hand, cost = 1 * (1 - success) + 1 * (1 - s*/3) + 0.5 * d* / 3, d* the mean distance at stage s*:
    expected = [0 + 0 + 0.5 * 0.01 / 3,           # s* 3: states 3 and 4, (0.02 + 0.00) / 2
                1 + 1 / 3 + 0.5 * 0.08 / 3,       # s* 2: state 2 only (not the later 0.15 and 0.40 at stage 1)
                1 + 1 / 3 + 0.5 * 0.235 / 3,      # s* 2: states 2 and 3 (the stage-3 state lies past the end)
                1 + 1 + 0.5 * 0.536 / 3]          # s* 0: all five states, (0.60 + 0.50 + 0.55 + 0.52 + 0.51) / 5
    np.testing.assert_allclose(cost, expected, rtol=0, atol=1e-12)
    assert cost_pairs(success, ALL, cost) == [(0, 3), (1, 2)]
    # a stage outranks any progress inside a stage: 0.5 / K < 1 / K
    assert trajectory_cost(np.array([[0, 2]]), np.array([[0.0, 1.0]]), np.array([False]), np.ones((1, 1)), k) < \
        trajectory_cost(np.array([[0, 1]]), np.array([[0.0, 0.0]]), np.array([False]), np.ones((1, 1)), k)


def test_cost_weights_and_clip():
    stage = np.array([[0, 1], [0, 1]])
    distance = np.array([[0.0, 3.0], [0.0, 0.5]])
    cost = trajectory_cost(stage, distance, np.zeros(2, dtype=bool), np.ones((2, 1), dtype=bool), 2,
                           CostWeights(success=2.0, stage=4.0, progress=1.0, clip=1.0))
    np.testing.assert_allclose(cost, [2 + 4 * 0.5 + 1.0 / 2, 2 + 4 * 0.5 + 0.5 / 2])  # 3 m counts as the 1 m clip
    with pytest.raises(ValueError, match="cost weights must be >= 0"):
        CostWeights(progress=-1.0)
    with pytest.raises(ValueError, match=r"need stage and distance \[N, M \+ 1\]"):
        trajectory_cost(stage, distance[:, :1], np.zeros(2, dtype=bool), np.ones((2, 1)), 2)


def test_cost_ranking_best_over_worst():
    cost = np.array([0.2, 0.9, 0.5, 0.1])
    assert cost_pairs(np.zeros(4, dtype=bool), ALL, cost) == [(3, 1), (0, 2)]
    assert cost_pairs(np.zeros(4, dtype=bool), ALL, cost, max_pairs=1) == [(3, 1)]
    assert cost_pairs(np.zeros(4, dtype=bool), np.array([True, False, True, True]), cost) == [(3, 2)]  # 1 crashed
    assert cost_pairs(np.zeros(4, dtype=bool), ALL, np.array([0.5, 0.5, 0.5, 0.5])) == []  # ties prefer nothing
    assert cost_pairs(np.zeros(4, dtype=bool), ALL, np.array([0.1, 0.5, 0.5, 0.9])) == [(0, 3)]  # inner tie dropped
    with pytest.raises(ValueError, match="needs the trajectories' costs"):
        cost_pairs(np.zeros(2, dtype=bool), ALL[:2])
    assert PAIRINGS.names() == ["success", "cost"]
