"""Library entry points for runs: everything the CLI does after parsing, callable from a harness or a Ray task.

    record = run_rl(for_profile("small", method="tgrpo", suite=..., task_id=0, init_checkpoint=..., out_dir=...))
    record = run_sft(sft_config)
    record = run_eval(eval_request, policy)

Each returns a record of what it wrote (absolute paths, content hashes, the summary), so a caller never re-derives
paths. Output roots are absolute (the configs resolve them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.evaluate import EvalRequest, evaluate
from tgrpo.policies.base import Policy


@dataclass(frozen=True)
class EvalRecord:
    out_dir: Path
    summary: dict


@dataclass(frozen=True)
class RLRunRecord:
    """An RL run: its directory, final metrics row, merged policy (path and sha256) and final evaluation."""

    out_dir: Path
    metrics: list[dict]
    policy_dir: Path
    policy_sha256: str
    eval: EvalRecord | None = None


@dataclass(frozen=True)
class SFTRunRecord:
    out_dir: Path
    final: dict
    best_checkpoint: Path


def run_eval(request: EvalRequest, policy: Policy, progress: bool = True) -> EvalRecord:
    """Evaluate (or resume evaluating) `policy` under the pinned protocol."""
    return EvalRecord(Path(request.out_dir).absolute(), evaluate(request, policy, progress=progress))


def load_trainable(name: str, checkpoint: Path, seed: int = 0, unnorm_key: str | None = None):
    """A registered policy that implements `TrainablePolicy`, loaded from `checkpoint`; `unnorm_key` picks the
    action statistics of policies with several (openvla: the suite name, as OpenVLA's script)."""
    from tgrpo.policies import make_policy
    from tgrpo.policies.trainable import TrainablePolicy

    policy = make_policy(name, checkpoint=str(checkpoint), seed=seed, unnorm_key=unnorm_key)
    if not isinstance(policy, TrainablePolicy):
        raise ValueError(f"policy {name!r} cannot be trained (not a TrainablePolicy)")  # noqa: TRY004
    return policy


def run_rl(cfg, evaluate_after: bool = True, progress: bool = True) -> RLRunRecord:
    """Train one online RL run (resuming it if its directory holds one), export the merged policy, and evaluate it
    on the task's first `cfg.eval_episodes` official init states. `cfg`: `tgrpo.rl.config.RLConfig`, or
    `tgrpo.rl.preference_config.PreferenceConfig` for a preference method (rounds in place of iterations)."""
    from tgrpo.policies.trainable import checkpoint_sha256
    from tgrpo.rl.loop import Trainer
    from tgrpo.rl.preference import PreferenceTrainer

    trainer_class = PreferenceTrainer if cfg.spec.family == "preference" else Trainer
    trainer = trainer_class(cfg, load_trainable(cfg.policy, cfg.init_checkpoint, seed=cfg.seed, unnorm_key=cfg.suite))
    metrics = trainer.run(progress=progress)
    policy_dir = trainer.export_policy(Path(cfg.out_dir) / "policy")
    record = RLRunRecord(Path(cfg.out_dir), metrics, policy_dir, checkpoint_sha256(policy_dir))
    if not evaluate_after or not cfg.eval_episodes:
        return record
    request = EvalRequest(cfg.suite, (cfg.task_id,), tuple(range(cfg.eval_episodes)), trainer.policy.obs_config(),
                          Path(cfg.out_dir) / "eval", workers=cfg.workers_eval, profile=cfg.profile)
    trainer.policy.annotate(method=cfg.method, run=str(cfg.out_dir), iterations=cfg.iterations)
    return RLRunRecord(record.out_dir, metrics, policy_dir, record.policy_sha256,
                       run_eval(request, trainer.policy, progress=progress))


def run_sft(cfg, progress: bool = True) -> SFTRunRecord:
    """Behaviour cloning on the suite's demonstrations (resuming a killed run).

    `cfg`: `baselines.sft.config.SFTConfig`."""
    from baselines.sft.data import load_sft_data
    from baselines.sft.train import train

    data = load_sft_data(cfg.demos_dir, cfg.suite, cfg.variant, cfg.max_demos_per_task)
    final = train(cfg, data, progress=progress)
    return SFTRunRecord(Path(cfg.out_dir), final, Path(cfg.out_dir) / "best")
