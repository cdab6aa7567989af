"""Diagnostic: which input should PPO's critic read? The privileged state vector (what `tgrpo.rl.critic` uses) or
the policy's trunk (its final hidden state at the first action position, which depends on the observation and the
instruction alone: `TrainablePolicy.action_hidden(...)[:, 0]`). Not a result file.

Runs `--method ppo` with every iteration a critic warm-up, so the policy never changes and both critics see the
same groups; beside the run's own critic a second one, identical but for its input, reads the frozen trunk (what a
head on the trunk sees during warm-up). Per iteration and critic: the explained variance of the values the group's
advantages would use (predicted before the critic saw the group) and the seconds spent on values and updates.
Tiny state policy only (the trunk's input at the bootstrap state is rebuilt from its privileged vector).

    python -m bench.diagnostics.critic_inputs --checkpoint expected_results/regression/sft_checkpoint \
        --suite object --task 0 --iterations 12 --out results/diag/critic_inputs.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tgrpo.advantages import compute_advantage
from tgrpo.envs.rollout import GroupRollout
from tgrpo.policies import action_tokenizer as at
from tgrpo.rl.critic import Critic


class TrunkCritic(Critic):
    """The same critic on the policy's final hidden state at the first action position, detached."""

    def __init__(self, policy, *args):
        super().__init__(*args)
        self.policy = policy

    @torch.no_grad()
    def inputs(self, rollout: GroupRollout) -> torch.Tensor:
        n, m1 = rollout.privileged.shape[:2]
        obs = {"state": rollout.layout.state_vector(rollout.privileged.reshape(n * m1, -1))}
        tokens = torch.full((n * m1, at.ACTION_DIM), at.FIRST_ACTION_TOKEN, dtype=torch.long)  # not read at [:, 0]
        hidden = self.policy.action_hidden(obs, [rollout.instruction] * (n * m1), tokens)[:, 0]
        return hidden.float().view(n, m1, -1)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="tiny state SFT checkpoint")
    parser.add_argument("--suite", default="object")
    parser.add_argument("--task", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--profile", default="small")
    parser.add_argument("--out", type=Path, required=True, help="JSON file of the per-iteration figures")
    args = parser.parse_args(argv)

    from bench.runs import load_trainable
    from tgrpo.envs.protocol import resolve_suite
    from tgrpo.envs.workers import WorkerPool
    from tgrpo.rl.config import for_profile
    from tgrpo.rl.loop import Trainer

    cfg = for_profile(args.profile, method="ppo", suite=resolve_suite(args.suite), task_id=args.task,
                      init_checkpoint=args.checkpoint, out_dir=args.out.with_suffix(".run"),
                      iterations=args.iterations, eval_episodes=0)
    cfg = replace(cfg, ppo=replace(cfg.ppo, warmup_iterations=args.iterations))
    trainer = Trainer(cfg, load_trainable(cfg.policy, cfg.init_checkpoint, seed=cfg.seed))
    critics = {"privileged": trainer.critic, "trunk": TrunkCritic(trainer.policy, cfg.ppo, cfg.spec.value_loss)}
    rows = []
    with WorkerPool(cfg.group_size) as pool:
        for it in range(cfg.iterations):
            seed = trainer.iteration_seed()
            group, rollout_s = timed(trainer.collect, pool, seed)  # includes the privileged critic's values
            row = {"iteration": it, "rollout_s": rollout_s, "length": float(group["rollout"].length.mean()),
                   "success": float(group["rollout"].success.mean())}
            rollout = group["rollout"]
            values, row["trunk/values_s"] = timed(critics["trunk"].values, rollout)
            raw = compute_advantage(torch.from_numpy(group["rewards"]), torch.from_numpy(rollout.mask),
                                    cfg.advantage_config(), values)
            own = {"privileged": group, "trunk": {"rollout": rollout, "values": values,
                                                  "returns": raw + values[:, :-1]}}
            for name, critic in critics.items():  # each on its own targets, as in a PPO run
                metrics, row[f"{name}/update_s"] = timed(critic.update, own[name], cfg.epochs, cfg.minibatches,
                                                         cfg.grad_clip, np.random.default_rng([seed, 1]))
                row |= {f"{name}/{k}": metrics[k] for k in ("explained_variance", "value_loss")}
            trainer.iteration += 1
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": cfg.to_dict(), "iterations": rows}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
