"""The online RL loop shared by TGRPO, GRPO, the ablations and PPO (paper section 3; docs/algorithm.md).

Per iteration: sample a fresh placement -> roll out a group of N trajectories from it in lock-step (all stop when
one succeeds or at max steps) -> per-step rewards -> (PPO: the critic's values) -> advantages -> (PPO: value
updates of the critic, alone during its warm-up) -> K epochs of clipped-surrogate + k3-KL updates of the LoRA
adapters -> metrics and a checkpoint. The policy enters through `TrainablePolicy` alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tgrpo.advantages import compute_advantage, normalise_advantage
from tgrpo.envs.libero_env import EpisodeStart
from tgrpo.envs.protocol import Protocol
from tgrpo.envs.rollout import GroupRollout, group_rollout
from tgrpo.envs.workers import EnvSpec, WorkerPool
from tgrpo.jsonl import read_rows
from tgrpo.losses import PolicyLossOutput, fused_policy_loss, get_policy_loss
from tgrpo.policies.trainable import TrainablePolicy
from tgrpo.provenance import provenance
from tgrpo.rewards.reward import StageReward
from tgrpo.rl.batch import GroupRows, flatten_steps
from tgrpo.rl.config import RLConfig
from tgrpo.rl.critic import Critic
from tgrpo.trainer_state import load_trainer_state, save_trainer_state

TRAINER_STATE = Path("last") / "trainer.pt"


def loss_path(cfg: RLConfig, device: torch.device) -> str:
    """"fused" (one chunked pass from hidden states, Triton on CUDA) or "plain" (log-probs, then the loss)."""
    if cfg.loss_path != "auto":
        return cfg.loss_path
    return "fused" if device.type == "cuda" and cfg.spec.policy_loss == "clip-k3" else "plain"


def reference_logprobs(policy: TrainablePolicy, rows: GroupRows, micro_batch_rows: int | None = None,
                       temperature: float = 1.0) -> torch.Tensor:
    """log pi_ref [B, 7] at the rollout temperature: the same model with its adapters disabled (the SFT policy; no
    second copy)."""
    with torch.no_grad(), policy.reference():
        return torch.cat([policy.token_logprobs(part.obs, part.instructions, part.tokens, temperature)
                          for part in rows.split(micro_batch_rows)])


def micro_batch_loss(policy: TrainablePolicy, part: GroupRows, cfg: RLConfig, path: str) -> PolicyLossOutput:
    """The policy loss of one micro-batch with the group's weights (its share of the group's loss). Log-probs are
    the policy's at the rollout temperature, as the behaviour log-probs are (docs/algorithm.md, "Temperature")."""
    args = (part.old_logp, part.ref_logp, part.advantages, part.mask, part.seq_index)
    if path == "fused":
        hidden = policy.action_hidden(part.obs, part.instructions, part.tokens)
        weight = policy.head_weight() / cfg.temperature  # logits / T = hidden @ (W / T).T
        return fused_policy_loss(hidden, weight.to(hidden.dtype), policy.token_columns(part.tokens), *args,
                                 config=cfg.loss, weights=part.weights)
    logp = policy.token_logprobs(part.obs, part.instructions, part.tokens, cfg.temperature)
    return get_policy_loss(cfg.spec.policy_loss)(logp, *args, config=cfg.loss, weights=part.weights.to(logp.dtype))


def update(policy: TrainablePolicy, optimizer, rows: GroupRows, cfg: RLConfig, rng: np.random.Generator) -> dict:
    """K epochs of minibatch steps on one group (micro-batches accumulate into each step); mean of each metric."""
    path = loss_path(cfg, policy.device)
    params = policy.trainable_parameters()
    metrics: dict[str, list[float]] = {}
    policy.set_training(True)
    for _ in range(cfg.epochs):
        for part in np.array_split(rng.permutation(len(rows)), cfg.minibatches):
            minibatch = rows.take(np.sort(part), renormalise=cfg.minibatches > 1)
            optimizer.zero_grad()
            loss, parts = 0.0, []
            for micro in minibatch.split(cfg.micro_batch_rows):
                out = micro_batch_loss(policy, micro, cfg, path)
                out.loss.backward()
                loss += float(out.loss.detach())
                parts.append((len(micro), out.metrics))
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            step = {"loss": loss, "grad_norm": float(grad_norm), **_merge_metrics(parts)}
            for key, value in step.items():
                metrics.setdefault(key, []).append(value)
    return {k: float(np.mean(v)) for k, v in metrics.items()}


def _merge_metrics(parts: list[tuple[int, dict[str, torch.Tensor]]]) -> dict[str, float]:
    """Micro-batch metrics -> the minibatch's: row-weighted means, and min / max of the extremes."""
    total = sum(n for n, _ in parts)
    merged = {}
    for name in parts[0][1]:
        values = [float(m[name]) for _, m in parts]
        if name.endswith("_min"):
            merged[name] = min(values)
        elif name.endswith("_max"):
            merged[name] = max(values)
        else:
            merged[name] = sum(n * v for (n, _), v in zip(parts, values, strict=True)) / total
    return merged


class Trainer:
    """Owns the policy, optimizer, workers and run directory of one (method, task) run."""

    def __init__(self, cfg: RLConfig, policy: TrainablePolicy):
        """`policy`: the SFT policy RL starts from (adapters not yet added); `cfg.seed` seeds the adapters."""
        torch.set_num_threads(cfg.torch_threads)
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)  # LoRA's A matrices are initialised randomly
        policy.add_adapters(cfg.lora_rank, cfg.lora_alpha)
        self.policy = policy
        self.optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=cfg.lr)
        self.critic = Critic(cfg.ppo, cfg.spec.value_loss) if cfg.spec.value_loss else None
        self.iteration = 0
        self._reward = None
        self.spec = EnvSpec(cfg.suite, cfg.task_id, policy.obs_config(), Protocol(episode_start=cfg.episode_start))
        self._resume()

    def _resume(self) -> None:
        state_file = self.out / TRAINER_STATE
        if not state_file.exists():
            (self.out / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2, default=str))
            (self.out / "provenance.json").write_text(json.dumps(self.provenance(), indent=2))
            return
        saved = load_trainer_state(state_file, required=("model", "optimizer", "iteration"))
        self.policy.load_trainable_state(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.critic is not None:
            self.critic.load_state_dict(saved["critic"])
        self.iteration = int(saved["iteration"])
        kept = [r for r in read_metrics(self.out) if r["iteration"] <= self.iteration]  # drop rows of a lost iteration
        tmp = self.out / "metrics.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.out / "metrics.jsonl")  # atomic: a kill here loses no row

    def provenance(self) -> dict:
        """The run's provenance block: code, packages, machine, plus its protocol, seeds, profile and policy."""
        return provenance(protocol=self.spec.protocol.to_dict(), obs=self.spec.obs.to_dict(),
                          seeds={"run": self.cfg.seed, "train_seed_base": self.cfg.train_seed_base},
                          profile=self.cfg.profile, policy=self.policy.describe())

    def _checkpoint(self) -> None:
        critic = {} if self.critic is None else {"critic": self.critic.state_dict()}
        save_trainer_state(self.out / TRAINER_STATE, {"model": self.policy.trainable_state(),
                                                      "optimizer": self.optimizer.state_dict(),
                                                      "iteration": self.iteration, **critic})

    def export_policy(self, directory: Path) -> Path:
        """The current policy with its adapters merged, as a plain checkpoint for `tgrpo-bench eval`; the run's
        identity goes into its metadata."""
        self.policy.export_merged(directory, extra={"rl_run": {
            "method": self.cfg.method, "out_dir": str(self.out), "iteration": self.iteration,
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

    def rollout(self, pool: WorkerPool, seed: int) -> tuple[EpisodeStart, GroupRollout]:
        """A fresh training placement drawn with `seed` (never an official state) and the group's lock-step
        rollout from it under `cfg.stop_rule`, sampling at the configured temperature."""
        cfg = self.cfg
        torch.manual_seed(seed)
        built = pool.ensure_many({0: self.spec})[0]
        if isinstance(built, Exception):
            raise RuntimeError(f"cannot build {cfg.suite} task {cfg.task_id}: {built}") from built  # noqa: TRY004
        start = pool.workers[0].call("sample_start", seed)  # objects and fixtures, shared by the group
        return start, group_rollout(pool, self.spec, self.policy, start, stop_rule=cfg.stop_rule,
                                    max_steps=cfg.max_steps, mode="sample", temperature=cfg.temperature,
                                    episode_key=(seed,))

    def collect(self, pool: WorkerPool, seed: int) -> dict:
        """Fresh placement -> group rollout -> rewards [N, M] -> advantages [N, M]. With a critic (PPO) also its
        values [N, M + 1] and the value targets [N, M] (raw GAE + values); the policy sees the GAE advantages
        normalised by `cfg.ppo.advantage_norm`."""
        cfg = self.cfg
        _, rollout = self.rollout(pool, seed)
        rewards = self.rewards(rollout)
        device = self.policy.device  # on CUDA the estimator runs as the Triton kernel
        mask = torch.from_numpy(rollout.mask).to(device)
        values = None if self.critic is None else self.critic.values(rollout)
        advantages = compute_advantage(torch.from_numpy(rewards).to(device), mask, cfg.advantage_config(),
                                       values=None if values is None else values.to(device)).cpu()
        if values is None:
            return {"rollout": rollout, "rewards": rewards, "advantages": advantages}
        return {"rollout": rollout, "rewards": rewards, "values": values, "returns": advantages + values[:, :-1],
                "advantages": normalise_advantage(advantages, mask.cpu(), cfg.ppo.advantage_norm)}

    def rewards(self, rollout: GroupRollout) -> np.ndarray:
        """Per-step rewards [N, M]: the sparse 0/1 success (GRPO) or the task's dense stage reward (TGRPO)."""
        from tgrpo.rewards import sparse_rewards

        if self.cfg.reward_kind == "sparse":
            return sparse_rewards(rollout.done, rollout.mask)
        return self.stage_reward(rollout).rewards(rollout.privileged, rollout.done, rollout.mask,
                                                  self.cfg.reward_config)

    def stage_reward(self, rollout: GroupRollout) -> StageReward:
        """The task's committed stage spec compiled for the rollout's privileged layout (loaded once)."""
        from tgrpo.rewards import load_task_reward

        if self._reward is None:
            self._reward = load_task_reward(self.cfg.suite, self.cfg.task_id, rollout.layout)
        return self._reward

    def learn(self, group: dict, seed: int) -> dict:
        """The critic's value updates first, if the method has one (during its warm-up, the first
        `cfg.ppo.warmup_iterations` iterations, nothing else); then K epochs of clipped-surrogate + k3-KL updates on
        the group's valid steps."""
        cfg, out = self.cfg, {}
        if self.critic is not None:
            critic = self.critic.update(group, cfg.epochs, cfg.minibatches, cfg.grad_clip,
                                        np.random.default_rng([seed, 1]))
            out = {f"critic/{k}": v for k, v in critic.items()}
            if self.iteration < cfg.ppo.warmup_iterations:
                return out
        losses = update(self.policy, self.optimizer, self.rows(group), cfg, np.random.default_rng(seed))
        return {**out, **{f"loss/{k}": v for k, v in losses.items()}}

    def rows(self, group: dict) -> GroupRows:
        """The group's rows with the reference policy's log-probs filled in."""
        rows = flatten_steps(group["rollout"], group["advantages"], self.cfg.loss)
        rows.ref_logp = reference_logprobs(self.policy, rows, self.cfg.micro_batch_rows, self.cfg.temperature)
        return rows


def group_metrics(group: dict) -> dict:
    """Stable metric names of one collected group."""
    rollout, rewards, advantages = group["rollout"], group["rewards"], group["advantages"]
    returns = (rewards * rollout.mask).sum(axis=1)
    valid = advantages[torch.from_numpy(rollout.mask)]
    return {
        **rollout_metrics([rollout]),
        "rollout/return_mean": float(returns.mean()), "rollout/return_std": float(returns.std()),
        "advantage/mean": float(valid.mean()), "advantage/std": float(valid.std()),
        "advantage/abs_max": float(valid.abs().max()),
    }


def rollout_metrics(rollouts: list[GroupRollout]) -> dict:
    """Success rate, mean length, crashed trajectories and MuJoCo warnings over one or more groups."""
    success = np.concatenate([r.success for r in rollouts])
    length = np.concatenate([r.length for r in rollouts])
    return {"rollout/success_rate": float(success.mean()), "rollout/length_mean": float(length.mean()),
            "rollout/errors": sum(e is not None for r in rollouts for e in r.errors),
            "rollout/sim_warnings": sum(bool(w) for r in rollouts for w in r.sim_warnings)}


def read_metrics(out: Path) -> list[dict]:
    return read_rows(Path(out) / "metrics.jsonl", repair=True, required=("iteration",))


def _bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="iter", desc="rl", dynamic_ncols=True)
