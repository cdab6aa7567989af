"""How far our image path (`tgrpo/envs/observation.py`) and the PIL path it replaced are from OpenVLA's TensorFlow
path, on real frames.

Two modes, run in two environments (TensorFlow is not a project dependency):

    # project venv: render raw 256x256 agentview frames from the real simulator
    python -m bench.benchmarks.image_path_vs_tf --render-frames /tmp/frames.npz
    # an env with tensorflow-cpu, numpy 1.26.4, Pillow (+ simplejpeg for the IFAST rows): compare, print a table
    python -m bench.benchmarks.image_path_vs_tf --frames /tmp/frames.npz [--json OUT.json]
    # the same env: the frames with TF's outputs, for the test that needs no TF (tests/data/tf_image_path/)
    python -m bench.benchmarks.image_path_vs_tf --frames /tmp/frames.npz --reference OUT.npz

`--smoke` shrinks either mode to seconds (one suite, one init state, two frames) for the tests.

The TF reference is OpenVLA's `libero_utils.resize_image` (JPEG encode/decode, lanczos3 antialiased resize, round,
clip, cast) and `openvla_utils.crop_and_resize` (center crop of area 0.9, bilinear `tf.image.crop_and_resize`
back to 224, float32 in [0, 1], `convert_image_dtype(..., saturate=True)`). Stages are compared on the same input,
so each row isolates one stage; "whole" chains them. docs/image_preprocessing.md has the results.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

from bench.benchmarks.smoke import parse_args
from tgrpo.envs import observation as ours

SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")  # task 0 of each
INIT_STATES = (0, 1, 2)
FRAME_STEPS = (0, 10, 25)  # policy steps (random actions, seed 0) after the 10 wait steps
SIZE = 224


def render_frames(out: str, suites: list[str], init_states: list[int], frame_steps: list[int]) -> None:
    """Raw agentview frames (as robosuite returns them, before the 180 degree rotation) at 256x256, of task 0 of
    each suite, from each official init state, after each number of policy steps."""
    from tgrpo.envs.libero_env import LiberoEnv, official_start
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.protocol import Protocol

    rng = np.random.default_rng(0)
    frames, meta = [], []
    task = 0
    for suite in suites:
        env = LiberoEnv(suite, task, ObsConfig(mode="image", camera_resolution=256), Protocol(num_wait_steps=10))
        for k in init_states:
            env.start_episode(official_start(suite, task, k))
            raw = env.sim_env._get_observations(force_update=True)
            for t in range(max(frame_steps) + 1):
                if t in frame_steps:
                    frames.append(np.array(raw["agentview_image"], dtype=np.uint8))
                    meta.append((suite, task, k, t))
                action = np.concatenate([rng.uniform(-0.5, 0.5, 6), [rng.choice([-1.0, 1.0])]])
                raw, _, _, _ = env._env.step(action)
        env.close()
    np.savez_compressed(out, frames=np.stack(frames), suite=[m[0] for m in meta],
                        task=[m[1] for m in meta], init_state=[m[2] for m in meta], step=[m[3] for m in meta])
    print(f"{len(frames)} frames {frames[0].shape} -> {out}")


# ---- the TF reference (OpenVLA's calls) and PIL variants ----

def tf_jpeg(img: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    return tf.io.decode_image(tf.image.encode_jpeg(img), expand_animations=False, dtype=tf.uint8).numpy()


def tf_resize(img: np.ndarray, size: int = SIZE) -> np.ndarray:
    import tensorflow as tf

    out = tf.image.resize(img, (size, size), method="lanczos3", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8).numpy()


def tf_center_crop(img: np.ndarray) -> np.ndarray:
    """openvla_utils.get_vla_action's center_crop branch with crop_and_resize (crop_scale 0.9, batch 1)."""
    import tensorflow as tf

    image = tf.image.convert_image_dtype(tf.convert_to_tensor(img), tf.float32)[None]
    side = tf.reshape(tf.clip_by_value(tf.sqrt(0.9), 0, 1), shape=(1,))
    off = (1 - side) / 2
    boxes = tf.stack([off, off, off + side, off + side], axis=1)
    image = tf.image.crop_and_resize(image, boxes, tf.range(1), (SIZE, SIZE))[0]
    return tf.image.convert_image_dtype(tf.clip_by_value(image, 0, 1), tf.uint8, saturate=True).numpy()


def pil_encode(img: np.ndarray, subsampling: str = "4:2:0") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95, subsampling=subsampling)
    return buf.getvalue()


def pil_decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def ifast_decode(data: bytes, fancy_upsampling: bool = True) -> np.ndarray:
    """libjpeg-turbo with JDCT_IFAST, as TF's DecodeImage/DecodeJpeg default (simplejpeg; PIL has no such switch)."""
    import simplejpeg

    return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True, fastupsample=not fancy_upsampling)


def pil_lanczos(img: np.ndarray, size: int = SIZE) -> np.ndarray:
    """PIL LANCZOS on uint8 (8-bit fixed point, rounded between the passes): the resize before 4a9a101."""
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS))


def pil_center_crop(img: np.ndarray, area: float = 0.9) -> np.ndarray:
    """PIL BILINEAR resize of the central `area` box back to full size: the center crop before 4a9a101."""
    h, w = img.shape[:2]
    side = math.sqrt(area)
    box = ((w - w * side) / 2, (h - h * side) / 2, (w + w * side) / 2, (h + h * side) / 2)
    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR, box=box))


def pil_path(img: np.ndarray) -> np.ndarray:
    """The PIL path before 4a9a101 on a rotated frame, without the crop: PIL JPEG (ISLOW decode), PIL LANCZOS."""
    return pil_lanczos(pil_decode(pil_encode(img)))


def pil_float_lanczos(img: np.ndarray, size: int = SIZE) -> np.ndarray:
    """PIL LANCZOS per channel in mode F (float32, no uint8 rounding between the two passes)."""
    chans = [np.asarray(Image.fromarray(img[..., c].astype(np.float32)).resize((size, size), Image.Resampling.LANCZOS))
             for c in range(img.shape[2])]
    return np.clip(np.round(np.stack(chans, -1)), 0, 255).astype(np.uint8)


def _tf_decode_accurate(img: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    return tf.io.decode_jpeg(tf.image.encode_jpeg(img), dct_method="INTEGER_ACCURATE").numpy()


def _has_simplejpeg() -> bool:
    try:
        import simplejpeg  # noqa: F401
    except ImportError:
        return False
    return True


def stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mse = float(np.mean(d.astype(np.float64) ** 2))
    return {"mean_abs": float(d.mean()), "max": int(d.max()), "frac_eq": float(np.mean(d == 0)),
            "frac_gt2": float(np.mean(d > 2)), "frac_gt8": float(np.mean(d > 8)),
            "psnr_db": float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)}


def compare(frames: np.ndarray) -> list[tuple[str, str, dict[str, float]]]:
    """Every (stage, variant) against TF. Each stage gets TF's own input for that stage. "ours" is the current
    path (tgrpo.envs.observation, `IMAGE_PATH`); "PIL path" the one it replaced in 4a9a101."""
    rot = [ours.rotate_180(f) for f in frames]
    tj = [tf_jpeg(f) for f in rot]
    tr = [tf_resize(f) for f in tj]
    tc = [tf_center_crop(f) for f in tr]
    ref = {"jpeg": tj, "resize": tr, "crop": tc, "whole": tr, "whole+crop": tc}
    q = ours.OPENVLA_PROTOCOL.jpeg_quality
    cand: dict[str, dict[str, Callable[[int], np.ndarray]]] = {
        "jpeg": {"PIL path: PIL q95 4:2:0 (decode ISLOW)": lambda i: pil_decode(pil_encode(rot[i])),
                 "PIL q95 4:4:4": lambda i: pil_decode(pil_encode(rot[i], "4:4:4")),
                 "diagnostic: TF's bytes, TF decode INTEGER_ACCURATE": lambda i: _tf_decode_accurate(rot[i]),
                 "PIL encode + IFAST decode, fast upsampling": lambda i: ifast_decode(pil_encode(rot[i]), False),
                 "ours: PIL encode + IFAST decode (simplejpeg)": lambda i: ours.jpeg_round_trip(rot[i], q)},
        "resize": {"PIL path: PIL LANCZOS uint8": lambda i: pil_lanczos(tj[i]),
                   "PIL LANCZOS float32 (mode F)": lambda i: pil_float_lanczos(tj[i]),
                   "ours: numpy TF lanczos3": lambda i: ours.lanczos_resize(tj[i], SIZE)},
        "crop": {"PIL path: PIL BILINEAR box": lambda i: pil_center_crop(tr[i]),
                 "ours: numpy TF crop_and_resize": lambda i: ours.center_crop(tr[i])},
        "whole": {"PIL path": lambda i: pil_path(rot[i]),
                  "PIL jpeg + numpy resize": lambda i: ours.lanczos_resize(pil_decode(pil_encode(rot[i])), SIZE),
                  "PIL encode + IFAST decode + PIL LANCZOS uint8": lambda i: pil_lanczos(
                      ifast_decode(pil_encode(rot[i]))),
                  "ours (`preprocess_frame`)": lambda i: ours.preprocess_frame(frames[i], ours.ObsConfig())},
        "whole+crop": {"PIL path": lambda i: pil_center_crop(pil_path(rot[i])),
                       "ours (`preprocess_frame`, center_crop)": lambda i: ours.preprocess_frame(
                           frames[i], ours.ObsConfig(center_crop=True))},
    }
    rows = []
    for stage, variants in cand.items():
        for name, fn in variants.items():
            if ("IFAST" in name or name.startswith("ours")) and not _has_simplejpeg():
                continue
            start = time.perf_counter()
            out = np.stack([fn(i) for i in range(len(frames))])
            ms = 1e3 * (time.perf_counter() - start) / len(frames)
            rows.append((stage, name, {**stats(out, np.stack(ref[stage])), "ms_per_frame": ms}))
    return rows


def write_reference(frames_file: str, out: str) -> None:
    """The frames file's arrays plus TF's whole path on each frame, without and with the center crop (OpenVLA's
    calls above), and the TensorFlow version that made them."""
    import tensorflow as tf

    data = dict(np.load(frames_file))
    whole = np.stack([tf_resize(tf_jpeg(ours.rotate_180(f))) for f in data["frames"]])
    np.savez_compressed(out, **data, tf_whole=whole, tf_whole_crop=np.stack([tf_center_crop(w) for w in whole]),
                        tensorflow=tf.__version__)
    print(f"{len(whole)} frames with TF {tf.__version__} outputs -> {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--render-frames", metavar="OUT.npz", help="render frames (project venv) and exit")
    ap.add_argument("--frames", metavar="FILE.npz",
                    help="compare on these frames (needs tensorflow; simplejpeg optional)")
    ap.add_argument("--json", metavar="OUT.json", help="also write the rows, with provenance, as JSON")
    ap.add_argument("--reference", metavar="OUT.npz",
                    help="with --frames: write the frames and TF's outputs (needs tensorflow) and exit")
    ap.add_argument("--suites", default=",".join(SUITES), help="render: task 0 of each of these suites")
    ap.add_argument("--init-states", default=",".join(map(str, INIT_STATES)), help="render: official init states")
    ap.add_argument("--frame-steps", default=",".join(map(str, FRAME_STEPS)), help="render: policy steps per frame")
    ap.add_argument("--max-frames", type=int, default=None, help="compare: the first N frames only")
    args = parse_args(ap, argv, {"suites": "libero_object", "init_states": "0", "frame_steps": "0,2", "max_frames": 2})
    if args.render_frames:
        render_frames(args.render_frames, args.suites.split(","), [int(k) for k in args.init_states.split(",")],
                      [int(t) for t in args.frame_steps.split(",")])
        return 0
    if not args.frames:
        ap.error("give --render-frames OUT.npz or --frames FILE.npz")
    if args.reference:
        write_reference(args.frames, args.reference)
        return 0
    import tensorflow as tf

    frames = np.load(args.frames)["frames"][:args.max_frames]
    rows = compare(frames)
    print(f"{len(frames)} frames {frames.shape[1:]}; tensorflow {tf.__version__}, numpy {np.__version__}, "
          f"Pillow {Image.__version__}")
    print("| stage | variant | mean abs | max | equal | >2 | >8 | PSNR dB | ms/frame |")
    print("|---|---|---|---|---|---|---|---|---|")
    for stage, name, s in rows:
        print(f"| {stage} | {name} | {s['mean_abs']:.4f} | {s['max']} | {s['frac_eq']:.4%} | {s['frac_gt2']:.4%} "
              f"| {s['frac_gt8']:.4%} | {s['psnr_db']:.2f} | {s['ms_per_frame']:.2f} |")
    if args.json:
        from tgrpo.provenance import provenance

        digest = hashlib.sha256(Path(args.frames).read_bytes()).hexdigest()
        report = {"benchmark": "image_path_vs_tf", "smoke": args.smoke, "frames": len(frames),
                  "rows": [{"stage": st, "variant": n, **s} for st, n, s in rows],
                  "provenance": provenance(frames_sha256=digest, tensorflow=tf.__version__,
                                           pillow=Image.__version__,
                                           simplejpeg=metadata.version("simplejpeg") if _has_simplejpeg() else None)}
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
