"""Training demonstrations start from fresh placements, never from the 50 official evaluation states."""

import numpy as np
import pytest

from tgrpo.data.record import matches_official


def test_matches_official_hand_built():
    official = np.zeros((3, 6))
    official[:, 0] = [0.0, 1.0, 2.0]  # the time entry is ignored
    official[1, 1:] = [0.1, 0.2, 0.3, 0.4, 0.5]
    same = np.array([9.0, 0.1, 0.2, 0.3, 0.4, 0.5 + 1e-5])
    assert matches_official(same, official)
    moved = same.copy()
    moved[3] += 0.01  # one object moved by a centimetre
    assert not matches_official(moved, official)
    assert not matches_official(np.zeros(4), official)  # another model's state size never matches


@pytest.mark.libero
def test_fresh_placements_are_not_official_states():
    from tgrpo.data.record import fresh_start
    from tgrpo.envs.libero_env import LiberoEnv, official_init_states
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol

    official = official_init_states("libero_object", 0)
    env = LiberoEnv("libero_object", 0, ObsConfig(mode="state"), Protocol(episode_start="restore"))
    try:
        states = [fresh_start(env, seed, official)[0].state for seed in (0, 1)]
    finally:
        env.close()
    for state in states:
        assert state.shape == official.shape[1:]
        # independent check: every official state differs somewhere by more than a millimetre / milliradian
        assert np.abs(official[:, 1:] - state[None, 1:]).max(axis=1).min() > 1e-3
    assert np.abs(states[0][1:] - states[1][1:]).max() > 1e-3  # two seeds give two placements
    assert matches_official(official[7], official)  # and the check does recognise an official state
