"""Run one regression case on the real simulator; return its values as a flat JSON-ready dict.

Episodes run through the project's own paths: official starts (`official_start`) in worker processes, the
protocol's evaluation (`bench.runs.run_eval`) and the RL loop (`Trainer.collect` + `Trainer.learn`). A policy
wrapper (`Recorder`) notes what the evaluated policy saw and did; it changes nothing the policy returns.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np

from bench.regression.cases import REFERENCE_DIR, Case
from tgrpo.policies.base import Policy, PolicyOutput


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and C-order bytes (bit-exact: any changed bit changes it)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


class Recorder(Policy):
    """Wraps a policy; per episode (its `episode_key`) keeps the privileged rows the policy acted on and the
    action tokens it chose."""

    def __init__(self, inner: Policy):
        self.inner = inner
        self.name, self.obs_mode = inner.name, inner.obs_mode
        self._episode_of: dict[int, tuple] = {}
        self.privileged: dict[tuple, list[np.ndarray]] = {}
        self.tokens: dict[tuple, list[np.ndarray]] = {}

    def begin_episode(self, slot: int, instruction: str, episode_key: tuple = (), layout=None) -> None:
        self._episode_of[slot] = tuple(episode_key)
        self.privileged[tuple(episode_key)], self.tokens[tuple(episode_key)] = [], []
        self.inner.begin_episode(slot, instruction, episode_key, layout)

    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0) -> PolicyOutput:
        out = self.inner.act(obs, instructions, slots, mode=mode, temperature=temperature)
        for k, slot in enumerate(slots):
            key = self._episode_of[slot]
            self.privileged[key].append(np.array(obs["privileged"][k], dtype=np.float64))
            if out.tokens is not None:
                self.tokens[key].append(np.array(out.tokens[k], dtype=np.int64))
        return out

    def describe(self) -> dict:
        return self.inner.describe()


def _evaluate(policy: Policy, params: dict) -> tuple[dict[int, dict], Recorder]:
    """Greedy protocol evaluation of `policy` on official episodes of one task; rows by episode."""
    from bench.evaluate import EvalRequest
    from bench.results import ResultStore
    from bench.runs import run_eval
    from tgrpo.envs.observation import ObsConfig

    recorder = Recorder(policy)
    episodes = tuple(params["episodes"])
    with tempfile.TemporaryDirectory(prefix="tgrpo-check-") as tmp:
        request = EvalRequest(params["suite"], (params["task_id"],), episodes, ObsConfig(mode="state"), Path(tmp),
                              workers=min(2, len(episodes)))
        run_eval(request, recorder, progress=False)
        rows = {row["episode"]: row for row in ResultStore(Path(tmp)).read_rows()}
    return rows, recorder


def _episode_values(row: dict) -> dict:
    return {"success": bool(row["success"]), "steps": int(row["steps"]), "error": row["error"]}


def _expert(params: dict, reference_dir: Path) -> dict:
    """Per episode: outcome, sha256 of the whole privileged trajectory, a short hash every `hash_every` steps
    (the first differing one says where two runs part), and the last privileged row in full (the size of a
    difference)."""
    from tgrpo.policies import make_policy

    rows, recorder = _evaluate(make_policy("expert"), params)
    values = {}
    for k in params["episodes"]:
        trajectory = np.stack(recorder.privileged[(params["task_id"], k)])
        every = params["hash_every"]
        values.update({f"episode_{k}/{name}": v for name, v in _episode_values(rows[k]).items()})
        values[f"episode_{k}/privileged_sha256"] = array_sha256(trajectory)
        values[f"episode_{k}/privileged_sha256_every_{every}"] = [
            array_sha256(trajectory[t])[:12] for t in range(0, len(trajectory), every)]
        values[f"episode_{k}/last_privileged"] = trajectory[-1].tolist()
    return values


def _sft(params: dict, reference_dir: Path) -> dict:
    """Per episode: greedy outcome and the sha256 of the action tokens [steps, 7]."""
    import torch

    from tgrpo.policies import make_policy

    torch.set_num_threads(1)  # the eval CLI's default
    policy = make_policy("tiny", checkpoint=str(reference_dir / params["checkpoint"]), seed=0)
    rows, recorder = _evaluate(policy, params)
    values = {}
    for k in params["episodes"]:
        values.update({f"episode_{k}/{name}": v for name, v in _episode_values(rows[k]).items()})
        values[f"episode_{k}/tokens_sha256"] = array_sha256(np.stack(recorder.tokens[(params["task_id"], k)]))
    return values


def _rl(params: dict, reference_dir: Path) -> dict:
    """One smoke iteration from the committed checkpoint: rollout outcome, token hash, rewards, advantages and
    every loss term of the update."""
    from bench.runs import load_trainable
    from tgrpo.envs.workers import WorkerPool
    from tgrpo.rl.config import for_profile
    from tgrpo.rl.loop import Trainer

    checkpoint = reference_dir / params["checkpoint"]
    with tempfile.TemporaryDirectory(prefix="tgrpo-check-") as tmp:
        cfg = for_profile("smoke", method=params["method"], suite=params["suite"], task_id=params["task_id"],
                          init_checkpoint=checkpoint, out_dir=Path(tmp), group_size=params["group_size"],
                          max_steps=params["max_steps"])
        trainer = Trainer(cfg, load_trainable(cfg.policy, checkpoint, seed=cfg.seed))
        with WorkerPool(cfg.group_size) as pool:
            group = trainer.collect(pool, params["seed"])
        losses = trainer.learn(group, params["seed"])
    rollout = group["rollout"]
    return {"length": rollout.length.tolist(), "success": rollout.success.tolist(),
            "tokens_sha256": array_sha256(rollout.tokens), "rewards": group["rewards"].tolist(),
            "advantages": group["advantages"].double().tolist(), **losses}


def _frame(params: dict, reference_dir: Path) -> dict:
    """The first preprocessed agentview frame of an official episode, in a worker like every evaluation."""
    from tgrpo.envs.libero_env import official_start
    from tgrpo.envs.observation import ObsConfig
    from tgrpo.envs.workers import EnvSpec, WorkerPool

    spec = EnvSpec(params["suite"], params["task_id"], ObsConfig(mode="image", fast_render=params["fast_render"]))
    with WorkerPool(1) as pool:
        built = pool.ensure_many({0: spec})[0]
        if isinstance(built, Exception):
            raise RuntimeError(f"cannot build {spec.suite} task {spec.task_id}: {built}")  # noqa: TRY004
        image = pool.workers[0].call("start", official_start(params["suite"], params["task_id"], params["episode"]))
    image = np.asarray(image["image"])
    pixels = image.reshape(-1, image.shape[-1]).astype(np.float64)
    return {"shape": list(image.shape), "mean": pixels.mean(axis=0).tolist(), "std": pixels.std(axis=0).tolist(),
            "sha256": array_sha256(image)}


_MEASURES = {"frame": _frame, "expert": _expert, "sft": _sft, "rl": _rl}


def measure(case: Case, reference_dir: Path = REFERENCE_DIR) -> dict:
    """Run `case` and return its values (inputs such as the SFT checkpoint are read from `reference_dir`)."""
    return _MEASURES[case.kind](case.params, Path(reference_dir))
