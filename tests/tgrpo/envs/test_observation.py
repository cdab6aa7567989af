"""Image path and gripper convention against hand-made arrays."""

import math

import numpy as np
import pytest

from tgrpo.envs.observation import (
    ObsConfig,
    center_crop,
    gripper_to_env,
    jpeg_round_trip,
    lanczos_resize,
    preprocess_frame,
    rotate_180,
)


def test_rotate_180_reverses_both_axes():
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    rotated = rotate_180(frame)
    assert rotated[0, 0].tolist() == frame[1, 2].tolist()
    assert rotated[1, 2].tolist() == frame[0, 0].tolist()
    assert rotated[0, 2].tolist() == frame[1, 0].tolist()


def test_jpeg_round_trip_keeps_flat_colour_and_is_lossy_on_edges():
    flat = np.full((64, 64, 3), (200, 40, 90), dtype=np.uint8)
    assert np.abs(jpeg_round_trip(flat, 95).astype(int) - flat).max() <= 3
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # colour detail: 4:2:0 loses it
    out = jpeg_round_trip(noise, 95)
    assert out.shape == noise.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - noise).mean() > 5  # lossy: the round trip is really applied


def test_lanczos_resize_of_a_ramp_samples_pixel_centres():
    ramp = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (256, 1, 3))
    out = lanczos_resize(ramp, 224)
    assert out.shape == (224, 224, 3)
    j = np.arange(20, 204)  # away from the borders, where the kernel is cut
    expected = (j + 0.5) * 256 / 224 - 0.5  # input coordinate of output pixel centre j
    assert np.abs(out[100, j, 0] - expected).max() <= 1.0


def test_center_crop_keeps_the_central_90_percent_area():
    size = 224
    ramp = np.tile(np.arange(size, dtype=np.uint8)[None, :, None], (size, 1, 3))
    out = center_crop(ramp, 0.9)
    side = size * math.sqrt(0.9)
    offset = (size - side) / 2
    j = np.arange(10, 214)
    expected = offset + (j + 0.5) * side / size - 0.5
    assert out.shape == ramp.shape
    assert np.abs(out[50, j, 0] - expected).max() <= 1.0


def test_preprocess_frame_rotates_then_resizes():
    frame = np.zeros((256, 256, 3), dtype=np.uint8)
    frame[:128, :128] = 255  # top-left white
    out = preprocess_frame(frame, ObsConfig())
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert out[200, 200].min() > 240 and out[20, 20].max() < 15  # now bottom-right


@pytest.mark.parametrize("x,expected", [(1.0, -1.0), (0.9, -1.0), (0.1, 1.0), (0.0, 1.0), (0.5, 0.0)])
def test_gripper_openvla_to_env(x, expected):
    # OpenVLA: 1 = open. Env: -1 = open, +1 = close.
    assert gripper_to_env(x) == expected


def test_obs_config_validation():
    with pytest.raises(ValueError, match="image, state"):
        ObsConfig(mode="depth")
    assert ObsConfig(wrist=True).camera_names == ["agentview", "robot0_eye_in_hand"]
