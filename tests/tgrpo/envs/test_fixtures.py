"""The committed fixture-placement table: complete, well-formed, produced by the pinned simulator."""

import json
import re
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from tgrpo.envs.fixtures import official_fixture_poses, table_path
from tgrpo.envs.libero_env import task_info
from tgrpo.envs.protocol import INIT_STATES_PER_TASK, SUITES, TASKS_PER_SUITE

TABLES = [(suite, task) for suite in SUITES for task in range(TASKS_PER_SUITE)]


def _placed_in_bddl(suite: str, task_id: int) -> set[str]:
    """Fixtures the task's BDDL file places in a region at init: listed under (:fixtures) and the subject of an
    (On <fixture> <region>) init literal (the table itself is the arena, never placed)."""
    text = Path(task_info(suite, task_id).bddl_file).read_text()
    fixtures = re.search(r"\(:fixtures(.*?)\)\s*\(:objects", text, re.DOTALL).group(1)
    names = [line.split("-")[0].strip() for line in fixtures.strip().splitlines() if "-" in line]
    init = re.search(r"\(:init(.*?)\)\s*\(:goal", text, re.DOTALL).group(1)
    return {n for n in names if re.search(rf"\(On {re.escape(n)} ", init)}


@pytest.mark.parametrize("suite,task_id", TABLES)
def test_every_task_has_a_table_for_50_episodes(suite, task_id):
    table = json.loads(table_path(suite, task_id).read_text())
    assert (table["suite"], table["task_id"], table["episodes"]) == (suite, task_id, INIT_STATES_PER_TASK)
    names = table["fixtures"]
    assert set(names) == _placed_in_bddl(suite, task_id) and len(set(names)) == len(names)
    if not names:
        assert table["poses"] == []  # nothing placed: the model's fixed poses in every episode
        return
    poses = np.asarray(table["poses"])
    assert poses.shape == (INIT_STATES_PER_TASK, len(names), 7)
    np.testing.assert_allclose(np.linalg.norm(poses[..., 3:], axis=-1), 1.0, atol=1e-9)  # unit quaternions
    assert np.ptp(poses[..., :2], axis=0).max() > 1e-3  # placements vary across episodes: a real draw per reset
    # the table belongs to the pinned simulator; an upgrade must regenerate it (make fixture-tables)
    assert table["generated_by"]["versions"] == {d: version(d) for d in table["generated_by"]["versions"]}


def test_official_fixture_poses_checks_the_episode():
    names, poses = official_fixture_poses("goal", 7, 49)
    assert names == ("wooden_cabinet_1", "flat_stove_1", "wine_rack_1") and poses.shape == (3, 7)
    assert official_fixture_poses("object", 0, 10)[1].shape == (0, 7)
    with pytest.raises(ValueError, match="0..49"):
        official_fixture_poses("goal", 7, 50)

