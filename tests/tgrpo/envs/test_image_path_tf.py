"""Our image path against TensorFlow's outputs on real LIBERO frames (tests/data/tf_image_path/README.md).

docs/image_preprocessing.md claims the TF-free path is within 1 gray level of OpenVLA's TensorFlow path, with
almost every value equal (25 of 5.4 M differ on its 36 frames). The PIL path it replaced was up to 16 off.
"""

from pathlib import Path

import numpy as np
import pytest

from tgrpo.envs.observation import ObsConfig, preprocess_frame

REFERENCE = Path(__file__).resolve().parents[2] / "data" / "tf_image_path" / "frames_tf.npz"
MAX_UNEQUAL = 1e-4  # fraction of values off by 1; 5 (no crop) and 4 (crop) of 301,056 when the reference was made


@pytest.mark.parametrize("crop,key", [(False, "tf_whole"), (True, "tf_whole_crop")])
def test_image_path_matches_tensorflow_on_real_frames(crop, key):
    data = np.load(REFERENCE)
    ours = np.stack([preprocess_frame(frame, ObsConfig(center_crop=crop)) for frame in data["frames"]])
    assert ours.shape == data[key].shape == (2, 224, 224, 3)
    diff = np.abs(ours.astype(np.int16) - data[key].astype(np.int16))
    assert diff.max() <= 1
    assert np.count_nonzero(diff) <= MAX_UNEQUAL * diff.size
