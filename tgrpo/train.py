"""The online RL loop shared by TGRPO, GRPO and the ablations (paper section 3, PROTOCOL.md section 1).

Per iteration: sample a fresh placement -> roll out a group of N trajectories from it in lock-step (all stop when
one succeeds or at max steps) -> per-step rewards -> advantages -> K epochs of clipped-surrogate + k3-KL updates
of the LoRA adapters -> metrics and a checkpoint. At the end, the policy is evaluated on the 50 official states.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tgrpo.advantages import compute_advantage
from tgrpo.envs.observation import ObsConfig
from tgrpo.envs.protocol import Protocol
from tgrpo.envs.rollout import GroupRollout, group_rollout
from tgrpo.envs.workers import EnvSpec, WorkerPool
from tgrpo.losses import policy_loss
from tgrpo.policies.tiny import TinyPolicy, add_lora
from tgrpo.rl_config import RLConfig


def flatten_steps(rollout: GroupRollout, advantages: torch.Tensor) -> dict:
    """Valid steps of the group as rows: obs, tokens [B, 7], behaviour log-probs [B, 7], advantages [B], and the
    trajectory each row belongs to (seq_index [B]) for the paper's per-trajectory aggregation."""
    traj, step = np.nonzero(rollout.mask)
    return {
        "obs": {k: v[traj, step] for k, v in rollout.obs.items()},
        "tokens": torch.from_numpy(rollout.tokens[traj, step]),
        "old_logp": torch.from_numpy(rollout.logprobs[traj, step]),
        "advantages": advantages[traj, step].float(),
        "seq_index": torch.from_numpy(traj),
        "instructions": [rollout.instruction] * len(traj),
    }


def reference_logprobs(policy: TinyPolicy, rows: dict) -> torch.Tensor:
    """log pi_ref: the same model with the LoRA adapters disabled (the SFT policy; no second copy)."""
    with torch.no_grad(), policy.model.disable_adapter():
        return policy.token_logprobs(rows["obs"], rows["instructions"], rows["tokens"])


def update(policy: TinyPolicy, optimizer, rows: dict, ref_logp: torch.Tensor, cfg: RLConfig, rng) -> dict:
    """K epochs of minibatch updates on one group; returns the mean of each loss metric."""
    n = len(rows["seq_index"])
    metrics: dict[str, list[float]] = {}
    policy.model.train()
    for _ in range(cfg.epochs):
        for part in np.array_split(rng.permutation(n), cfg.minibatches):
            idx = torch.from_numpy(part)
            logp = policy.token_logprobs({k: v[part] for k, v in rows["obs"].items()},
                                         [rows["instructions"][i] for i in part], rows["tokens"][idx])
            out = policy_loss(logp, rows["old_logp"][idx], ref_logp[idx], rows["advantages"][idx],
                              torch.ones_like(logp, dtype=torch.bool), rows["seq_index"][idx], config=cfg.loss)
            optimizer.zero_grad()
            out.loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in policy.model.parameters() if p.requires_grad], cfg.grad_clip)
            optimizer.step()
            for key, value in {"loss": out.loss, "grad_norm": grad_norm, **out.metrics}.items():
                metrics.setdefault(key, []).append(float(torch.as_tensor(value).detach()))
    return {k: float(np.mean(v)) for k, v in metrics.items()}


class Trainer:
    """Owns the policy, optimizer, workers and run directory of one (method, task) run."""

    def __init__(self, cfg: RLConfig):
        torch.set_num_threads(cfg.torch_threads)
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)  # LoRA's A matrices are initialised randomly
        self.policy = add_lora(TinyPolicy.load(cfg.init_checkpoint, seed=cfg.seed), cfg.lora_rank, cfg.lora_alpha)
        self.optimizer = torch.optim.AdamW([p for p in self.policy.model.parameters() if p.requires_grad], lr=cfg.lr)
        self.iteration = 0
        self._reward = None
        protocol = Protocol(episode_start=cfg.episode_start)
        self.spec = EnvSpec(cfg.suite, cfg.task_id, ObsConfig(mode=self.policy.cfg.variant), protocol)
        self._resume()

    def _resume(self) -> None:
        state_file = self.out / "last" / "trainer.pt"
        if not state_file.exists():
            (self.out / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2, default=str))
            return
        saved = torch.load(state_file, map_location="cpu", weights_only=False)
        self.policy.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.iteration = saved["iteration"]
        kept = [r for r in read_metrics(self.out) if r["iteration"] <= self.iteration]  # drop rows of a lost iteration
        (self.out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))

    def _checkpoint(self) -> None:
        (self.out / "last").mkdir(exist_ok=True)
        state = {"model": self.policy.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "iteration": self.iteration}
        torch.save(state, self.out / "last" / "trainer.pt.tmp")
        (self.out / "last" / "trainer.pt.tmp").replace(self.out / "last" / "trainer.pt")

    def export_policy(self, directory: Path) -> Path:
        """The current policy as a plain tiny checkpoint (LoRA merged into the weights), loadable by
        `tgrpo-bench eval --policy tiny --checkpoint DIR`; the run's identity goes into its policy.json."""
        import copy

        merged = copy.deepcopy(self.policy.model).merge_and_unload()
        plain = TinyPolicy(merged, self.policy.cfg, self.policy.stats, state_stats=self.policy.state_stats)
        plain.save(directory, extra={"rl_run": {"method": self.cfg.method, "out_dir": str(self.out),
                                                "iteration": self.iteration,
                                                "init_checkpoint": str(self.cfg.init_checkpoint)}})
        return Path(directory)

    def run(self, progress: bool = True) -> list[dict]:
        """Train from the current iteration to cfg.iterations; metrics are appended to metrics.jsonl."""
        cfg = self.cfg
        bar = _bar(cfg.iterations, self.iteration, progress)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(self.out / "tensorboard"))
        with WorkerPool(cfg.group_size) as pool:
            while self.iteration < cfg.iterations:
                record = self.iterate(pool)
                with (self.out / "metrics.jsonl").open("a") as f:
                    f.write(json.dumps(record) + "\n")
                for key, value in record.items():
                    if "/" in key:
                        writer.add_scalar(key, value, record["iteration"])
                self._checkpoint()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"success {record['rollout/success_rate']:.2f}")
        writer.close()
        if bar is not None:
            bar.close()
        return read_metrics(self.out)

    def iterate(self, pool: WorkerPool) -> dict:
        """One iteration: collect a group, then learn from it. Returns the iteration's metrics."""
        seed = self.iteration_seed()
        group = self.collect(pool, seed)
        losses = self.learn(group, seed)
        self.iteration += 1
        return {"iteration": self.iteration, "train_seed": seed, **group_metrics(group), **losses}

    def iteration_seed(self) -> int:
        return self.cfg.train_seed_base + self.cfg.seed * 100_003 + self.iteration

    def collect(self, pool: WorkerPool, seed: int) -> dict:
        """Fresh placement -> group rollout -> rewards [N, M] -> advantages [N, M]."""
        cfg = self.cfg
        torch.manual_seed(seed)
        built = pool.ensure_many({0: self.spec})[0]
        if isinstance(built, Exception):
            raise RuntimeError(f"cannot build {cfg.suite} task {cfg.task_id}: {built}") from built  # noqa: TRY004
        start = pool.workers[0].call("sample_start", seed)  # objects and fixtures, shared by the group
        rollout = group_rollout(pool, self.spec, self.policy, start, stop_rule="group",
                                max_steps=cfg.max_steps, mode="sample", temperature=cfg.temperature,
                                episode_key=(seed,))
        rewards = self.rewards(rollout)
        mask = torch.from_numpy(rollout.mask)
        advantages = compute_advantage(torch.from_numpy(rewards), mask, cfg.advantage_config())
        return {"rollout": rollout, "rewards": rewards, "advantages": advantages}

    def rewards(self, rollout: GroupRollout) -> np.ndarray:
        """Per-step rewards [N, M]: the sparse 0/1 success (GRPO) or the task's dense stage reward (TGRPO)."""
        from tgrpo.rewards import load_task_reward, sparse_rewards

        if self.cfg.reward_kind == "sparse":
            return sparse_rewards(rollout.done, rollout.mask)
        if self._reward is None:
            self._reward = load_task_reward(self.cfg.suite, self.cfg.task_id, rollout.layout)
        return self._reward.rewards(rollout.privileged, rollout.done, rollout.mask, self.cfg.reward_config)

    def learn(self, group: dict, seed: int) -> dict:
        """K epochs of clipped-surrogate + k3-KL updates on the group's valid steps."""
        rows = flatten_steps(group["rollout"], group["advantages"])
        ref_logp = reference_logprobs(self.policy, rows)
        losses = update(self.policy, self.optimizer, rows, ref_logp, self.cfg, np.random.default_rng(seed))
        return {f"loss/{k}": v for k, v in losses.items()}


def group_metrics(group: dict) -> dict:
    """Stable metric names of one collected group."""
    rollout, rewards, advantages = group["rollout"], group["rewards"], group["advantages"]
    returns = (rewards * rollout.mask).sum(axis=1)
    valid = advantages[torch.from_numpy(rollout.mask)]
    return {
        "rollout/success_rate": float(rollout.success.mean()), "rollout/length_mean": float(rollout.length.mean()),
        "rollout/return_mean": float(returns.mean()), "rollout/return_std": float(returns.std()),
        "rollout/errors": sum(e is not None for e in rollout.errors),
        "advantage/mean": float(valid.mean()), "advantage/std": float(valid.std()),
        "advantage/abs_max": float(valid.abs().max()),
    }


def read_metrics(out: Path) -> list[dict]:
    path = Path(out) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="iter", desc="rl", dynamic_ncols=True)

