"""OpenVLA's action tokenizer, checked against values worked out by hand from its definition."""

import numpy as np
import pytest

from tgrpo.policies import action_tokenizer as at


def test_token_range_and_extremes():
    # digitize(-1) = 1 -> 31999; digitize(1) = 256 -> 31744; values beyond are clipped first
    assert at.encode(np.array([-1.0, 1.0, -5.0, 5.0])).tolist() == [31999, 31744, 31999, 31744]
    assert at.FIRST_ACTION_TOKEN == 31744


def test_zero_maps_to_bin_128():
    # bins[127] = -1 + 127 * 2/255 < 0 <= bins[128]: digitize(0) = 128 -> token 31872
    assert at.encode(np.array([0.0]))[0] == 32000 - 128


def test_decode_is_the_bin_centre_and_the_last_bin_is_clipped():
    width = 2 / 255
    # token 31999 -> index clip(32000 - 31999 - 1) = 0 -> centre of the first bin
    assert at.decode(np.array([31999]))[0] == pytest.approx(-1 + width / 2)
    # token 31744 -> index 255 clipped to 254 -> centre of the last bin
    assert at.decode(np.array([31744]))[0] == pytest.approx(1 - width / 2)
    # tokens below the action range (a full-vocabulary head can emit them) also clip to the last bin
    assert at.decode(np.array([5]))[0] == pytest.approx(1 - width / 2)


def test_round_trip_error_is_at_most_one_bin():
    x = np.linspace(-1, 1, 1001)
    assert np.abs(at.decode(at.encode(x)) - x).max() <= 2 / 255 + 1e-12


def test_normalisation_with_percentiles_and_gripper_convention():
    stats = at.NormStats(q01=(-0.5,) * 6 + (0.0,), q99=(0.5,) * 6 + (1.0,))
    env = np.array([[0.25, -0.5, 0.5, 0.0, 1.0, -1.0, -1.0],    # gripper open
                    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])       # gripper close
    norm = at.env_to_normalized(env, stats)
    np.testing.assert_allclose(norm[0, :6], [0.5, -1.0, 1.0, 0.0, 1.0, -1.0])  # 2(a - q01)/(q99 - q01) - 1, clipped
    assert norm[0, 6] == 1.0 and norm[1, 6] == 0.0  # OpenVLA's LIBERO data: 1 = open
    back = at.tokens_to_env(at.encode(norm), stats)
    np.testing.assert_allclose(back[0, :4], [0.25, -0.5, 0.5, 0.0], atol=0.5 / 255 + 1e-9)
    assert back[0, 6] == -1.0 and back[1, 6] == 1.0  # env: -1 open, +1 close


def test_norm_stats_from_actions():
    actions = np.zeros((101, 7))
    actions[:, 0] = np.arange(101)  # 0..100: 1st percentile 1, 99th 99
    stats = at.NormStats.from_actions(actions)
    assert stats.q01[0] == pytest.approx(1.0) and stats.q99[0] == pytest.approx(99.0)
    assert stats.mask == (True,) * 6 + (False,)
