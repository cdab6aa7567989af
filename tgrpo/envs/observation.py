"""Observation settings and the image preprocessing of OpenVLA's LIBERO evaluation.

The image path is: agentview frame rendered at 256x256 -> rotated 180 degrees -> JPEG encode/decode (quality 95)
-> Lanczos resize to 224x224 -> optional center crop of 90% area resized back to 224. OpenVLA does the JPEG round
trip and the resize in TensorFlow; here PIL does both (TensorFlow is not a dependency). docs/protocol.md records
how far the pixels are from the TensorFlow path.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from tgrpo.envs.protocol import OPENVLA_PROTOCOL

OBS_MODES = ("image", "state")


@dataclass(frozen=True)
class ObsConfig:
    """What a worker renders and returns each step. Recorded with every result.

    mode: ``image`` (preprocessed agentview, optional wrist view, plus state) or ``state`` (no rendering at all:
        proprioception and the poses of the task's objects; the CPU-scale RL setting).
    camera_resolution: render size; 256 as OpenVLA's evaluation.
    image_size: size after the Lanczos resize; 224 as OpenVLA's input.
    center_crop: crop 90% of the area at the center and resize back (released LIBERO checkpoints need it).
    wrist: also render ``robot0_eye_in_hand`` (OpenVLA does not use it; off by default).
    fast_render: MSAA off, reflections off, offscreen buffer at camera size. About 3x faster on CPU rendering but a
        different image distribution: never the default, always recorded.
    """

    mode: str = "image"
    camera_resolution: int = OPENVLA_PROTOCOL.camera_resolution
    image_size: int = OPENVLA_PROTOCOL.image_size
    jpeg_quality: int = OPENVLA_PROTOCOL.jpeg_quality
    center_crop: bool = False
    wrist: bool = False
    fast_render: bool = False

    def __post_init__(self) -> None:
        if self.mode not in OBS_MODES:
            raise ValueError(f"unknown observation mode {self.mode!r}; valid: {', '.join(OBS_MODES)}")
        if self.camera_resolution < 16 or self.image_size < 16:
            raise ValueError("camera_resolution and image_size must be at least 16 pixels")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in 1..100")

    @property
    def renders(self) -> bool:
        return self.mode == "image"

    @property
    def camera_names(self) -> list[str]:
        return ["agentview", "robot0_eye_in_hand"] if self.wrist else ["agentview"]

    def to_dict(self) -> dict:
        return asdict(self)


def rotate_180(frame: np.ndarray) -> np.ndarray:
    """robosuite renders upside down (OpenGL origin): OpenVLA flips both axes. [H, W, C] -> [H, W, C]."""
    return np.ascontiguousarray(frame[::-1, ::-1])


def jpeg_round_trip(frame: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as JPEG (4:2:0 chroma, as tf.image.encode_jpeg's defaults). uint8 [H, W, 3]."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def lanczos_resize(frame: np.ndarray, size: int) -> np.ndarray:
    """Lanczos (a=3, antialiased when downsampling) resize to size x size. uint8 [H, W, 3] -> [size, size, 3]."""
    if frame.shape[0] == size and frame.shape[1] == size:
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.LANCZOS))


def center_crop(frame: np.ndarray, area: float = OPENVLA_PROTOCOL.center_crop_area) -> np.ndarray:
    """Crop the central `area` fraction (side sqrt(area)) and resize back bilinearly, as OpenVLA's eval does."""
    h, w = frame.shape[:2]
    side = math.sqrt(area)
    ch, cw = h * side, w * side
    box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
    return np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BILINEAR, box=box))


def preprocess_frame(frame: np.ndarray, cfg: ObsConfig) -> np.ndarray:
    """The whole evaluation image path for one rendered frame [R, R, 3] uint8 -> [S, S, 3] uint8."""
    img = rotate_180(frame)
    img = jpeg_round_trip(img, cfg.jpeg_quality)
    img = lanczos_resize(img, cfg.image_size)
    if cfg.center_crop:
        img = center_crop(img)
    return img


def gripper_to_env(x: np.ndarray) -> np.ndarray:
    """OpenVLA gripper output in [0, 1] (1 = open) -> env convention (-1 open, +1 close): -sign(2x - 1).

    x exactly 0.5 maps to 0 (no command), as ``np.sign`` does in OpenVLA's evaluation.
    """
    return -np.sign(2.0 * np.asarray(x, dtype=np.float64) - 1.0)
