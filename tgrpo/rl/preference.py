"""Preference training (DPO, GRAPE) on the online loop's pieces: rounds of collect -> pair -> learn.

Per round (one row of metrics.jsonl, one checkpoint, like an RL iteration):

1. `groups_per_round` fresh training placements (LIBERO's region samplers, seeded; never one of the 50 official
   evaluation states); from each, `group_size` rollouts in lock-step sampled from the current policy
   (`Trainer.rollout`, the RL loop's own; stop rule `independent` by default);
2. each group -> preference pairs by the method's pairing rule (`tgrpo.rl.pairs`): DPO success over failure, GRAPE
   lowest over highest stage-spec cost;
3. the reference log-likelihood of every paired trajectory, once (adapters disabled: the SFT policy);
4. `epochs` passes over the pairs in minibatches of `pairs_per_batch`: the preference loss of the trajectories'
   log-likelihoods (sum of their action-token log-probs), AdamW, gradient clipping.

A round with no pair makes no update. The policy enters through `TrainablePolicy` alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from tgrpo.envs.libero_env import EpisodeStart
from tgrpo.envs.rollout import GroupRollout
from tgrpo.envs.workers import WorkerPool
from tgrpo.policies.trainable import TrainablePolicy
from tgrpo.preference_losses import get_preference_loss, trajectory_logprobs
from tgrpo.rl.loop import Trainer, rollout_metrics
from tgrpo.rl.pairs import PAIRINGS, trajectory_cost
from tgrpo.rl.preference_config import PreferenceConfig


@dataclass
class PreferenceGroup:
    """One start's rollouts and the pairs they gave. cost: [N] (GRAPE) or None; pairs: (chosen, rejected)."""

    seed: int
    start: EpisodeStart
    rollout: GroupRollout
    cost: np.ndarray | None
    pairs: list[tuple[int, int]]


@dataclass
class TrajectoryRows:
    """The valid steps of S trajectories as rows: obs arrays [B, ...], tokens [B, 7], seq_index [B] in 0..S-1."""

    obs: dict[str, np.ndarray]
    instructions: list[str]
    tokens: torch.Tensor
    seq_index: torch.Tensor
    num_sequences: int

    @property
    def mask(self) -> torch.Tensor:
        return torch.ones_like(self.tokens, dtype=torch.bool)

    def split(self, rows: int | None) -> Iterator[TrajectoryRows]:
        """Consecutive micro-batches of at most `rows` rows (all at once for None)."""
        n = len(self.seq_index)
        step = max(rows or n, 1)
        for a in range(0, n, step):
            part = slice(a, min(n, a + step))
            yield TrajectoryRows({k: v[part] for k, v in self.obs.items()}, self.instructions[part],
                                 self.tokens[part], self.seq_index[part], self.num_sequences)


def trajectory_rows(trajectories: list[tuple[GroupRollout, int]]) -> TrajectoryRows:
    """Rows of trajectory `i` of each (rollout, i); the k-th trajectory is sequence k."""
    obs: dict[str, list[np.ndarray]] = {}
    tokens, seq, instructions = [], [], []
    for k, (rollout, i) in enumerate(trajectories):
        steps = np.flatnonzero(rollout.mask[i])
        for key, value in rollout.obs.items():
            obs.setdefault(key, []).append(value[i, steps])
        tokens.append(rollout.tokens[i, steps])
        seq.append(np.full(len(steps), k, dtype=np.int64))
        instructions += [rollout.instruction] * len(steps)
    return TrajectoryRows({k: np.concatenate(v) for k, v in obs.items()}, instructions,
                          torch.from_numpy(np.concatenate(tokens)), torch.from_numpy(np.concatenate(seq)),
                          len(trajectories))


def pair_rows(pairs: list[tuple[PreferenceGroup, int, int]]) -> TrajectoryRows:
    """Rows of P pairs: sequence 2p is pair p's chosen trajectory, 2p + 1 its rejected one."""
    return trajectory_rows([(g.rollout, i) for g, w, lose in pairs for i in (w, lose)])


def sequence_logprobs(policy: TrainablePolicy, rows: TrajectoryRows, micro_batch_rows: int | None,
                      temperature: float) -> torch.Tensor:
    """``[S]`` log-likelihood of each sequence under the policy as it is now (no grad), micro-batch by micro-batch."""
    with torch.no_grad():
        return sum(trajectory_logprobs(policy.token_logprobs(p.obs, p.instructions, p.tokens, temperature), p.mask,
                                       p.seq_index, rows.num_sequences) for p in rows.split(micro_batch_rows))


def preference_backward(policy: TrainablePolicy, rows: TrajectoryRows, ref: torch.Tensor, cfg: PreferenceConfig
                        ) -> dict[str, float]:
    """Accumulate the gradient of the preference loss of the pairs in `rows` (sequences 2p chosen, 2p + 1 rejected;
    `ref` their reference log-likelihoods [S]). Exact in micro-batches: the loss depends on the rows only through
    the sequences' log-likelihoods l, so pass 1 takes l without grad and d loss / d l by autograd, and pass 2
    backpropagates sum_rows (d loss / d l_seq) * log pi(row) one micro-batch at a time. Returns the loss metrics."""
    loss_fn = get_preference_loss(cfg.spec.policy_loss)
    logp = sequence_logprobs(policy, rows, cfg.micro_batch_rows, cfg.temperature).requires_grad_()
    out = loss_fn(logp[0::2], logp[1::2], ref[0::2], ref[1::2], beta=cfg.beta)
    (coef,) = torch.autograd.grad(out.loss, logp)
    for part in rows.split(cfg.micro_batch_rows):
        row_logp = policy.token_logprobs(part.obs, part.instructions, part.tokens, cfg.temperature).sum(-1)
        (coef[part.seq_index] * row_logp).sum().backward()
    return {"loss": out.loss.item(), **{k: float(v) for k, v in out.metrics.items()}}


class PreferenceTrainer(Trainer):
    """The RL `Trainer` (adapters, optimizer, run directory, resume, export) with a round in place of an
    iteration."""

    cfg: PreferenceConfig

    def iterate(self, pool: WorkerPool) -> dict:
        """One round: collect groups, pair them, learn from the pairs. Returns the round's metrics."""
        seeds = self.round_seeds()
        groups = [self.collect_group(pool, seed) for seed in seeds]
        pairs = [(g, w, lose) for g in groups for w, lose in g.pairs]
        losses = self.learn_pairs(pairs, np.random.default_rng(seeds[0])) if pairs else {}
        self.iteration += 1
        record = {"iteration": self.iteration, "train_seed": seeds[0],
                  **rollout_metrics([g.rollout for g in groups]), "pairs/count": len(pairs)}
        costs = [g.cost for g in groups if g.cost is not None]
        if costs:
            record["pairs/cost_mean"] = float(np.concatenate(costs).mean())
        return {**record, **{f"loss/{k}": v for k, v in losses.items()}}

    def round_seeds(self) -> list[int]:
        """Placement seeds of this round's groups, distinct across rounds and run seeds."""
        cfg = self.cfg
        first = cfg.train_seed_base + cfg.seed * 100_003 + self.iteration * cfg.groups_per_round
        return list(range(first, first + cfg.groups_per_round))

    def collect_group(self, pool: WorkerPool, seed: int) -> PreferenceGroup:
        """Fresh placement -> group rollout -> (GRAPE: costs) -> pairs."""
        cfg = self.cfg
        start, rollout = self.rollout(pool, seed)
        valid = np.array([e is None for e in rollout.errors])
        cost = None
        if cfg.spec.pairing == "cost":
            reward = self.stage_reward(rollout)
            terms = reward.terms(rollout.privileged, rollout.done, rollout.mask)
            cost = trajectory_cost(terms.stage, terms.distance, rollout.success, rollout.mask, reward.num_stages,
                                   cfg.cost)
        pairs = PAIRINGS.get(cfg.spec.pairing)(rollout.success, valid, cost, cfg.pairs_per_group)
        return PreferenceGroup(seed, start, rollout, cost, pairs)

    def learn_pairs(self, pairs: list[tuple[PreferenceGroup, int, int]], rng: np.random.Generator) -> dict:
        """`epochs` passes over the pairs in minibatches of `pairs_per_batch`; mean of each metric over the steps."""
        cfg = self.cfg
        batches = range(0, len(pairs), cfg.pairs_per_batch)
        with self.policy.reference():  # constant over the round; pair by pair in minibatches to bound memory
            ref = torch.cat([sequence_logprobs(self.policy, pair_rows(pairs[a:a + cfg.pairs_per_batch]),
                                               cfg.micro_batch_rows, cfg.temperature) for a in batches])
        params = self.policy.trainable_parameters()
        self.policy.set_training(True)
        steps = []
        for _ in range(cfg.epochs):
            order = rng.permutation(len(pairs))
            for a in batches:
                chosen = np.sort(order[a:a + cfg.pairs_per_batch])
                seqs = torch.from_numpy(np.stack([2 * chosen, 2 * chosen + 1], axis=1).reshape(-1))
                self.optimizer.zero_grad()
                metrics = preference_backward(self.policy, pair_rows([pairs[p] for p in chosen]), ref[seqs], cfg)
                metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
                self.optimizer.step()
                steps.append(metrics)
        return {k: float(np.mean([m[k] for m in steps])) for k in steps[0]}
