"""The config of one online RL run (`--method tgrpo`): every field says why it has its default.

The methods (`tgrpo.rl.methods`) differ only in the advantage estimator, the reward and the policy loss; the loop
(`tgrpo.rl.loop`) is one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tgrpo.advantages import AdvantageConfig
from tgrpo.losses import LossConfig
from tgrpo.rewards.reward import RewardConfig
from tgrpo.rl.critic import PPOConfig
from tgrpo.rl.methods import MethodSpec, check_profile, get_method, method_names

LOSS_PATHS = ("auto", "plain", "fused")


@dataclass(frozen=True)
class RLConfig:
    """One online RL run: one method on one task (the paper trains per task).

    group_size 4: the paper's N (its sweep: 2 -> 76.2, 4 -> 81.0, 6 -> 79.4, 8 -> 80.4 on Goal).
    a1 0.3 / a2 0.7: the paper's best fusion weights (its a1 sweep peaks at 0.3).
    lr 1e-5: the paper's AdamW learning rate for LoRA on OpenVLA. The tiny model from scratch needs more:
        the small profile sets 1e-4 (docs/deviations.md).
    epochs 1, minibatches 1: one exact gradient step per rollout on the whole group, so the paper's aggregation
        1/N sum_i 1/|o_i| sum_t holds exactly. With minibatches > 1 each optimiser step takes its rows' share of the
        group's weights, renormalised to sum to 1 (every step keeps the paper's relative weights). `ppo` sets 4 and 4
        (its registration in `tgrpo.rl.methods`); its critic takes the same schedule.
    micro_batch_rows None: rows per forward/backward inside one optimiser step (gradient accumulation); None
        takes the whole minibatch at once. Exact: the aggregation weights are computed once per group, so any
        split gives the same gradient (a 7B group does not fit in one batch: the paper profile takes 16 rows).
    loss_path "auto": the fused log-prob + loss pass (`tgrpo.losses.fused_policy_loss`, Triton kernels) and the
        Triton advantage on CUDA, the plain torch path on a CPU (where the fused pass gains nothing at 256 or
        32064 columns and Triton cannot run). "plain" / "fused" force one.
    grad_clip 1.0: standard for PPO-style updates; not given by the paper.
    temperature 1.0: sampling from the policy itself. Lower values bring rollouts closer to greedy evaluation
        (docs/training.md, "Bug hunt"). At any T the behaviour, current and reference log-probs are all taken at T
        (log_softmax(logits / T)), so the ratio's denominator is the distribution the rollout drew from.
    policy "tiny": the registered trainable policy (`tgrpo.policies`) the init checkpoint loads as; the paper
        profile sets "openvla" (its init checkpoint is a released OpenVLA fine-tune, loaded with the suite name as
        un-normalisation key).
    lora_rank 32 / lora_alpha 16: OpenVLA's LIBERO fine-tunes (all linear layers).
    stop_rule "group": the paper's group stops at the step its first trajectory succeeds (all N cut to that
        length, `tgrpo.envs.rollout`); "independent" runs each trajectory to its own success or the horizon. Under
        "group" the trajectory advantage rewards the fastest success (docs/training.md, task-8 reading).
    episode_start "restore": bit-identical to OpenVLA's reset (docs/protocol.md) and 15x faster to start.
    train_seed_base: fresh placements for training use seeds train_seed_base + iteration, never official states.
    ppo: the critic, GAE and value-loss settings of `--method ppo` (`tgrpo.rl.critic.PPOConfig`); others ignore it.
    """

    method: str
    suite: str
    task_id: int
    init_checkpoint: Path
    out_dir: Path
    profile: str = "small"
    policy: str = "tiny"
    iterations: int = 100
    group_size: int = 4
    a1: float = 0.3
    a2: float = 0.7
    lr: float = 1e-5
    epochs: int = 1
    minibatches: int = 1
    micro_batch_rows: int | None = None
    loss_path: str = "auto"
    grad_clip: float = 1.0
    temperature: float = 1.0
    max_steps: int | None = None
    lora_rank: int = 32
    lora_alpha: int = 16
    loss: LossConfig = field(default_factory=LossConfig)
    reward_config: RewardConfig = field(default_factory=RewardConfig)
    stop_rule: str = "group"
    episode_start: str = "restore"
    seed: int = 0
    train_seed_base: int = 1_000_000
    eval_episodes: int = 50
    workers_eval: int = 2
    torch_threads: int = 1
    ppo: PPOConfig = field(default_factory=PPOConfig)

    def __post_init__(self) -> None:
        get_method(self.method, family="rl")
        check_profile(self.profile)
        object.__setattr__(self, "out_dir", Path(self.out_dir).absolute())  # absolute: a harness may chdir
        object.__setattr__(self, "init_checkpoint", Path(self.init_checkpoint).absolute())
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.loss_path not in LOSS_PATHS:
            raise ValueError(f"unknown loss_path {self.loss_path!r}; valid: {', '.join(LOSS_PATHS)}")
        from tgrpo.envs.rollout import STOP_RULES  # lazy: the simulator stack

        if self.stop_rule not in STOP_RULES:
            raise ValueError(f"unknown stop_rule {self.stop_rule!r}; valid: {', '.join(STOP_RULES)}")
        if self.micro_batch_rows is not None and self.micro_batch_rows < 1:
            raise ValueError(f"micro_batch_rows must be None or at least 1, got {self.micro_batch_rows}")
        if self.group_size < 2:
            raise ValueError("group_size must be at least 2 (a group of one has no relative advantage)")
        for name in ("iterations", "epochs", "minibatches", "lora_rank"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be > 0 (rollouts sample), got {self.temperature}")
        if not 0 <= self.eval_episodes <= 50:
            raise ValueError("eval_episodes must be in 0..50 (the official init states)")
        self.advantage_config()  # validates estimator and weights

    @property
    def spec(self) -> MethodSpec:
        return get_method(self.method, family="rl")

    @property
    def estimator(self) -> str:
        return self.spec.estimator

    @property
    def reward_kind(self) -> str:
        return self.spec.reward

    def advantage_config(self) -> AdvantageConfig:
        """The ablations zero one weight inside their estimator and keep the other (the paper's ablation)."""
        return AdvantageConfig(estimator=self.estimator, a1=self.a1, a2=self.a2, gamma=self.ppo.gamma, lam=self.ppo.lam)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["init_checkpoint"], d["out_dir"] = str(self.init_checkpoint), str(self.out_dir)
        return d


def for_profile(profile: str, **kwargs) -> RLConfig:
    """smoke: two iterations on a 20-step horizon, 2 eval episodes (CI minutes), one of them a critic warm-up;
    small: the tiny state policy on a CPU, about an hour per task and method; paper: OpenVLA-7B (`policy="openvla"`)
    with the published settings. The method's own overrides (`MethodSpec.overrides`) apply under the profile's. A
    preference method (dpo, grape) gets its own config (`tgrpo.rl.preference_config.for_profile`)."""
    if kwargs.get("method") in method_names("preference"):
        from tgrpo.rl.preference_config import for_profile as preference_profile

        return preference_profile(profile, **kwargs)
    cfg = RLConfig(profile=profile, **kwargs)
    overrides = dict(cfg.spec.overrides) | {
        "smoke": {"iterations": 2, "max_steps": 20, "eval_episodes": 2, "lora_rank": 4, "lora_alpha": 8,
                  "ppo": replace(cfg.ppo, warmup_iterations=1)},
        "small": {"lr": 1e-4},
        "paper": {"policy": "openvla", "micro_batch_rows": 16},
    }[profile]
    return replace(cfg, **{k: v for k, v in overrides.items() if k not in kwargs})
