"""Observation settings and the image preprocessing of OpenVLA's LIBERO evaluation.

The image path is: agentview frame rendered at 256x256 -> rotated 180 degrees -> JPEG encode/decode (quality 95)
-> Lanczos3 antialiased resize to 224x224 -> optional center crop of 90% area resized back to 224. OpenVLA does
these in TensorFlow; TensorFlow is not a dependency here, so each step re-implements the TF operation's arithmetic
(JPEG: PIL encode + libjpeg-turbo fast-IDCT decode; resize and crop: numpy, float32, TF's sample positions and
kernels). Measured on 36 real LIBERO frames: within 1 gray level of the TF path, 25 of 5.4 M values differ
(docs/image_preprocessing.md). IMAGE_PATH names this version in every result.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from tgrpo.envs.protocol import OPENVLA_PROTOCOL

OBS_MODES = ("image", "state")
IMAGE_PATH = "tf-match-v1"  # recorded with results; bump when the pixels a policy sees change


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
        return {**asdict(self), "image_path": IMAGE_PATH}


def rotate_180(frame: np.ndarray) -> np.ndarray:
    """robosuite renders upside down (OpenGL origin): OpenVLA flips both axes. [H, W, C] -> [H, W, C]."""
    return np.ascontiguousarray(frame[::-1, ::-1])


def jpeg_round_trip(frame: np.ndarray, quality: int) -> np.ndarray:
    """Encode as tf.image.encode_jpeg does (quality, 4:2:0 chroma; PIL writes the same entropy-coded data) and
    decode as tf.io.decode_image does (libjpeg-turbo's fast integer IDCT, fancy upsampling) via simplejpeg:
    bit-identical to OpenVLA's TensorFlow round trip on real LIBERO frames (docs/image_preprocessing.md).
    uint8 [H, W, 3] -> [H, W, 3]."""
    import simplejpeg

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
    return simplejpeg.decode_jpeg(buffer.getvalue(), colorspace="RGB", fastdct=True, fastupsample=False)


def _tf_lanczos3(x: np.ndarray) -> np.ndarray:
    """tensorflow/core/kernels/image/sampling_kernels.h LanczosKernelFunc(3), float32."""
    x = np.abs(x).astype(np.float32)
    pi, r = np.float32(3.14159265359), np.float32(3.0)
    safe = np.where(x <= 1e-3, np.float32(1.0), x)
    k = r * np.sin(pi * safe) * np.sin(pi * safe / r) / (pi * pi * safe * safe)
    return np.where(x > r, np.float32(0.0), np.where(x <= 1e-3, np.float32(1.0), k)).astype(np.float32)


@lru_cache(maxsize=8)
def _tf_weights(in_size: int, out_size: int) -> np.ndarray:
    """Dense [out, in] weights of TF's ScaleAndTranslate (lanczos3, antialias=True, translate 0): ComputeSpansCore."""
    scale = np.float32(out_size) / np.float32(in_size)
    inv_scale = np.float32(1.0 / float(scale))
    kscale = max(inv_scale, np.float32(1.0))
    reach = np.float32(3.0) * kscale
    w = np.zeros((out_size, in_size), np.float32)
    for x in range(out_size):
        sample = np.float32(x + 0.5) * inv_scale
        start = min(max(math.ceil(sample - reach - np.float32(0.5)), 0), in_size - 1)
        end = min(max(math.floor(sample + reach - np.float32(0.5)), 0), in_size - 1) + 1
        pos = np.arange(start, end, dtype=np.float32) + np.float32(0.5) - sample
        k = _tf_lanczos3(pos * (np.float32(1.0) / kscale))
        w[x, start:end] = k * (np.float32(1.0) / np.sum(k, dtype=np.float32))
    return w


def lanczos_resize(img: np.ndarray, size: int) -> np.ndarray:
    """TF `resize(method="lanczos3", antialias=True)` + round/clip/cast, in numpy. uint8 [H, W, 3] -> [size, size, 3].

    Rows first, then columns, in float32 (TF's GatherSpans order); `np.round` is half-to-even like `tf.round`.
    """
    h, w, c = img.shape
    if h == size and w == size:
        return img
    tmp = (_tf_weights(h, size) @ img.astype(np.float32).reshape(h, w * c)).reshape(size, w, c)
    tmp = np.ascontiguousarray(tmp.transpose(1, 0, 2)).reshape(w, size * c)
    out = (_tf_weights(w, size) @ tmp).reshape(size, size, c).transpose(1, 0, 2)  # [out_y, out_x, C]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def center_crop(img: np.ndarray, crop_scale: float = OPENVLA_PROTOCOL.center_crop_area) -> np.ndarray:
    """OpenVLA's center crop in numpy: uint8 -> float [0, 1] -> `tf.image.crop_and_resize` (bilinear, box of area
    crop_scale, back to the same size) -> clip -> `convert_image_dtype(uint8, saturate=True)` (x * 255.5, truncated)."""
    x = img.astype(np.float32) * np.float32(1.0 / 255)
    side = np.clip(np.sqrt(np.float32(crop_scale)), 0, 1)
    lo = (np.float32(1) - side) / np.float32(2)
    hi = lo + side

    def coords(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        step = (hi - lo) * np.float32(n - 1) / np.float32(n - 1)  # output size == input size here
        c = lo * np.float32(n - 1) + np.arange(n, dtype=np.float32) * step
        f = np.floor(c).astype(np.int64)
        return f, np.ceil(c).astype(np.int64), (c - f.astype(np.float32))[:, None]

    (yt, yb, yl), (xl, xr, xw) = coords(img.shape[0]), coords(img.shape[1])
    rows = x[:, xl] + (x[:, xr] - x[:, xl]) * xw[None]  # top/bottom lerps of every row, TF's operation order
    top, bot = rows[yt], rows[yb]
    out = np.clip(top + (bot - top) * yl[:, :, None], 0, 1) * np.float32(255.5)
    return np.clip(out, 0, 255).astype(np.uint8)


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
