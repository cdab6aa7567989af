"""The Docker engine: connect with the SDK; start/stop a daemon by hand through docker/engine.sh.

Starting a daemon is the one thing the SDK cannot do. A daemon this module started is stopped again
when the session ends (unless asked to keep it), by its pidfile, never by name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.container.spec import REPO_ROOT

ENGINE_SCRIPT = REPO_ROOT / "docker" / "engine.sh"
# Builds stream for a long time without output (e.g. committing a multi-GB layer): no read timeout.
CLIENT_TIMEOUT_S = 6 * 3600


class EngineUnavailable(RuntimeError):
    """No Docker engine answers and none could be started."""


def connect(timeout: int = CLIENT_TIMEOUT_S):
    """A docker SDK client whose engine answered a ping, or None."""
    from docker.errors import DockerException

    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (DockerException, OSError):
        return None
    return client


def engine_script(action: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ENGINE_SCRIPT), action], capture_output=True, text=True, check=False)


def start_engine() -> bool:
    """Start dockerd by hand if nothing answers. True if this call started it."""
    result = engine_script("start")
    if result.returncode != 0:
        raise EngineUnavailable(result.stderr.strip() or "docker/engine.sh start failed")
    if result.stderr.strip():
        print(result.stderr.strip(), file=sys.stderr)
    return result.stdout.strip().startswith("started")


def stop_engine() -> None:
    result = engine_script("stop")
    message = (result.stdout + result.stderr).strip()
    if message:
        print(f"engine: {message}", file=sys.stderr)


@contextmanager
def engine_session(start: bool = True, keep: bool = False) -> Iterator:
    """Yield a connected client; start a daemon if allowed and needed, and stop it afterwards unless ``keep``."""
    client = connect()
    started = False
    if client is None:
        if not start:
            raise EngineUnavailable("no Docker engine answers (DOCKER_HOST or /var/run/docker.sock)")
        started = start_engine()
        client = connect()
        if client is None:
            if started:
                stop_engine()
            raise EngineUnavailable("dockerd started but the SDK cannot reach it")
        if started:
            print("engine: started dockerd (docker/engine.sh); it is stopped when this command ends", file=sys.stderr)
    try:
        yield client
    finally:
        client.close()
        if started and not keep:
            stop_engine()


def host_has_gpu(client=None) -> bool:
    """An NVIDIA device node plus a way for the engine to pass GPUs in (toolkit hook or nvidia runtime)."""
    if not Path("/dev/nvidiactl").exists():
        return False
    if shutil.which("nvidia-container-runtime-hook") or shutil.which("nvidia-container-runtime"):
        return True
    if client is not None:
        try:
            return "nvidia" in (client.info().get("Runtimes") or {})
        except Exception:  # noqa: BLE001 - an engine that cannot say means "no"
            return False
    return False


def can_start_engine() -> bool:
    """Whether an engine answers or engine.sh could plausibly start one (root; dockerd or apt-get present)."""
    if connect(timeout=10) is not None:
        return True
    if os.geteuid() != 0:
        return False
    return bool(shutil.which("dockerd") or shutil.which("apt-get"))
