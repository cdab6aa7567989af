"""The fixture-table generator (`python -m bench.fixture_tables`): bad input, and a real replay of OpenVLA's resets."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tgrpo.envs.fixtures import table_path


def test_generator_rejects_an_unknown_suite():
    proc = subprocess.run([sys.executable, "-m", "bench.fixture_tables", "--suite", "libero_90"],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 2 and "valid: libero_spatial" in proc.stderr


@pytest.mark.libero
def test_a_short_replay_reproduces_the_committed_table(tmp_path):
    """libero_goal task 7 (3 placed fixtures): the first 3 resets after seed(0) place the fixtures exactly where the
    committed table, generated before the generator moved here, has episodes 0-2."""
    from bench.fixture_tables import main

    assert main(["--suite", "goal", "--tasks", "7", "--episodes", "3", "--out", str(tmp_path)]) == 0
    fresh = json.loads(table_path("goal", 7, tmp_path).read_text())
    committed = json.loads(table_path("goal", 7).read_text())
    assert fresh["fixtures"] == committed["fixtures"] and fresh["episodes"] == 3
    np.testing.assert_array_equal(np.asarray(fresh["poses"]), np.asarray(committed["poses"][:3]))
    assert fresh["generated_by"]["command"] == "python -m bench.fixture_tables --suite libero_goal --tasks 7"
