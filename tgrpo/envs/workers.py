"""Simulator worker processes: one LIBERO env each, driven over a pipe, replaced when they crash.

Workers start with the ``spawn`` method: a process that holds an EGL context and forks deadlocks at the child's
first reset (docs/protocol.md, "Rendering"), and spawn keeps the parent free of simulator state. A worker keeps its env
across episodes of the same task (``reset()`` rebuilds the model; building costs seconds) and rebuilds it when the
task or the observation settings change.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from dataclasses import dataclass
from typing import Self

import numpy as np

from tgrpo.envs.observation import ObsConfig
from tgrpo.envs.protocol import OPENVLA_PROTOCOL, Protocol


@dataclass(frozen=True)
class EnvSpec:
    """Which env a worker must hold."""

    suite: str
    task_id: int
    obs: ObsConfig
    protocol: Protocol = OPENVLA_PROTOCOL


class WorkerCrashed(RuntimeError):
    """The worker process died or stopped answering; its episode is a recorded failure."""


class WorkerError(RuntimeError):
    """The simulator raised inside the worker; the message carries the remote traceback's last line."""


def _serve(conn) -> None:
    """Worker main loop: (command, payload) in, ("ok", result) or ("error", message) out."""
    from tgrpo.envs.libero_env import LiberoEnv

    env = None
    while True:
        try:
            command, payload = conn.recv()
        except EOFError:
            break
        try:
            if command == "load":
                if env is not None:
                    env.close()
                    env = None
                spec: EnvSpec = payload
                env = LiberoEnv(spec.suite, spec.task_id, spec.obs, spec.protocol)
                result = {"layout": env.layout, "instruction": env.info.instruction, "max_steps": env.max_steps}
            elif command == "start":
                result = env.start_episode(payload)
            elif command == "step":
                result = env.step(payload)
            elif command == "sample_start":
                result = env.sample_start(payload)
            elif command == "set_sim_state":
                result = env.set_sim_state(payload)
            elif command == "sim_warnings":
                result = dict(env.sim_warnings)
            elif command == "close":
                conn.send(("ok", None))
                break
            else:
                raise ValueError(f"unknown worker command {command!r}")
            conn.send(("ok", result))
        except Exception as err:  # noqa: BLE001 (any error is reported to the parent: a failed episode)
            last = traceback.format_exc().strip().splitlines()[-1]
            conn.send(("error", f"{type(err).__name__}: {err} ({last})"))
    if env is not None:
        env.close()


class EnvWorker:
    """Parent-side handle of one worker process."""

    def __init__(self, index: int, start_timeout_s: float = 600.0, step_timeout_s: float = 300.0):
        self.index = index
        self.start_timeout_s = start_timeout_s
        self.step_timeout_s = step_timeout_s
        self.spec: EnvSpec | None = None
        self.info: dict | None = None
        self._launch()

    def _launch(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), daemon=True, name=f"libero-worker-{self.index}")
        self.process.start()
        child.close()
        self.spec = None
        self.info = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, command: str, payload=None) -> None:
        try:
            self._conn.send((command, payload))
        except (BrokenPipeError, ConnectionResetError, OSError) as err:
            raise WorkerCrashed(f"worker {self.index} (pid {self.pid}) crashed: pipe broken ({err})") from err

    def receive(self, timeout_s: float | None = None):
        """Wait for the reply to the last command; WorkerCrashed if the process dies or times out."""
        limit = timeout_s or self.step_timeout_s
        deadline = time.monotonic() + limit
        while not self._conn.poll(0.2):
            if not self.process.is_alive():
                raise WorkerCrashed(f"worker {self.index} (pid {self.pid}) crashed: exit code {self.process.exitcode}")
            if time.monotonic() > deadline:
                raise WorkerCrashed(f"worker {self.index} (pid {self.pid}) crashed: no answer within {limit:.0f}s")
        try:
            status, result = self._conn.recv()
        except (EOFError, ConnectionResetError, OSError) as err:
            raise WorkerCrashed(f"worker {self.index} (pid {self.pid}) crashed: pipe closed ({err})") from err
        if status == "error":
            raise WorkerError(result)
        return result

    def call(self, command: str, payload=None, timeout_s: float | None = None):
        self.send(command, payload)
        return self.receive(timeout_s)

    def restart(self) -> None:
        """Replace a crashed or stuck worker by a fresh process (its env is rebuilt on next use)."""
        self.kill()
        self._launch()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self._conn.close()

    def close(self) -> None:
        if self.process.is_alive():
            try:
                self.call("close", timeout_s=30)
            except (WorkerCrashed, WorkerError):
                pass
        self.kill()


class WorkerPool:
    """A fixed number of workers; steps a subset of them in parallel (send all, then receive all)."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.workers = [EnvWorker(i) for i in range(size)]

    def __len__(self) -> int:
        return len(self.workers)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ensure_many(self, specs: dict[int, EnvSpec]) -> dict[int, object]:
        """Make worker i hold the env of specs[i], building the ones that differ in parallel.

        Returns index -> the env info (layout, instruction, max_steps) or the exception that prevented it.
        """
        need = {i: spec for i, spec in specs.items() if self.workers[i].spec != spec}
        for i in need:
            self.workers[i].spec = None
        results = self.broadcast("load", need, timeout_s=self.workers[0].start_timeout_s)
        for i, result in results.items():
            if not isinstance(result, Exception):
                self.workers[i].spec, self.workers[i].info = need[i], result
        return {i: results.get(i, self.workers[i].info) for i in specs}

    def broadcast(self, command: str, payloads: dict[int, object], timeout_s: float | None = None) -> dict[int, object]:
        """Send command to each worker index with its payload; return index -> result or the exception raised.

        A crashed worker is restarted here, so the pool stays whole; the caller records the failure.
        """
        sent: dict[int, object] = {}
        for i, payload in payloads.items():
            try:
                self.workers[i].send(command, payload)
                sent[i] = None
            except WorkerCrashed as err:
                sent[i] = err
        results: dict[int, object] = {}
        for i, early in sent.items():
            if early is not None:
                results[i] = early
                continue
            try:
                results[i] = self.workers[i].receive(timeout_s)
            except (WorkerCrashed, WorkerError) as err:
                results[i] = err
        for i, result in results.items():
            if isinstance(result, WorkerCrashed):
                self.workers[i].restart()
        return results

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def stack(observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """List of per-env observation dicts -> dict of arrays with a leading batch dimension."""
    return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
