"""The demo-generation benchmark's summary: rates and shares from hand-computed rows."""

import pytest

from bench.benchmarks.demo_generation import summarise


def test_summary_rates_and_shares_by_hand():
    rows = [
        {"success": True, "steps": 120, "reset_s": 3.0, "episode_s": 2.0, "write_s": 1.0, "bare_steps_per_s": 60.0},
        {"success": False, "steps": 80, "reset_s": 3.0, "episode_s": 2.0, "write_s": 1.0, "bare_steps_per_s": 50.0},
        {"success": True, "steps": 100, "reset_s": 3.0, "episode_s": 2.0, "write_s": 1.0, "bare_steps_per_s": 70.0},
    ]
    s = summarise(rows)
    assert (s["demos"], s["successes"], s["env_steps"]) == (3, 2, 300)
    assert s["bare_steps_per_s"] == 60.0  # the median
    assert s["episode_steps_per_s"] == pytest.approx(300 / 6.0)
    assert s["demo_steps_per_s"] == pytest.approx(300 / 18.0, abs=0.05)
    assert s["episode_over_bare"] == pytest.approx(50.0 / 60.0, abs=1e-3)
    assert s["reset_share"] == pytest.approx(0.5)
