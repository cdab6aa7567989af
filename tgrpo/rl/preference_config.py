"""The config of one preference run (`--method dpo`, `--method grape`): every field says why it has its default.

A round collects `groups_per_round` groups (a fresh training placement each, `group_size` rollouts from it), turns
each group into preference pairs by the method's pairing rule (`tgrpo.rl.pairs`), then runs `epochs` passes of
the method's preference loss (`tgrpo.preference_losses`) against the SFT reference. Rounds > 1 collect again with
the updated policy (iterative, on-policy preference optimisation).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from tgrpo.rl.methods import MethodSpec, check_profile, get_method
from tgrpo.rl.pairs import CostWeights


@dataclass(frozen=True)
class PreferenceConfig:
    """One preference run: one method on one task, from the SFT policy.

    rounds 1 (grape: 4): DPO as the paper's OpenVLA-DPO row is offline: pairs from the SFT policy's own rollouts,
        collected once. GRAPE is iterative by construction (sample with the current policy, rank, optimise,
        repeat); four rounds split the same rollout budget into on-policy refreshes. rounds > 1 for dpo gives
        iterative (online) DPO. GRAPE's paper does not fix a round count in what we read; 4 is ours, not tuned.
    groups_per_round 100 (grape: 25): rounds x groups x group_size = 400 trajectories per run, TGRPO's small-profile
        budget (100 iterations of a group of 4), so the methods compare at equal rollouts.
    group_size 4: TGRPO's N; several rollouts from one shared start, so a pair differs by the policy's sampling,
        not by the placement.
    pairs_per_group None: every disjoint pair the pairing rule finds (at most group_size // 2); rollouts cost
        far more than a pair's gradient, and disjoint pairs are independent comparisons. An int caps it (1: only
        the best against the worst, as GRAPE's released collector keeps one chosen and one rejected per start).
    epochs 4, pairs_per_batch 4: rounds x epochs x ceil(pairs / 4) AdamW steps: 100 for dpo when every group gives
        one pair (TGRPO takes 100 on the same budget), 208 for grape when every group gives two. Not tuned.
    beta 0.1: DPO's usual KL strength (Rafailov et al.; TRL's default); GRAPE's TPO loss has the same beta (its
        value is not given in what we could read).
    lr 2e-5: GRAPE's released TPO-LoRA script on OpenVLA-7B. The small profile sets 1e-4, TGRPO's small-profile
        rate for the tiny model (docs/deviations.md, T2).
    grad_clip 1.0: as TGRPO's loop.
    temperature 1.0: rollouts sample from the policy itself; every log-prob of the loss (current and reference)
        is taken at the same T.
    stop_rule "independent": each trajectory runs to its own success or the horizon. Under TGRPO's "group" rule a
        group stops at its first success and cuts the others short, so a "failure" would often be a trajectory
        that had not finished yet: not a failure to prefer against.
    micro_batch_rows None: rows per forward/backward; the loss is not a sum over rows, so the gradient is taken
        in two passes (log-likelihoods without grad, then d loss / d log-likelihood times each row's log-prob
        gradient), exact for any split.
    cost: GRAPE's trajectory cost weights (`tgrpo.rl.pairs.CostWeights`); dpo does not read it.
    policy, lora_rank / lora_alpha, episode_start, seed, train_seed_base, eval_episodes, workers_eval,
        torch_threads: as `tgrpo.rl.config.RLConfig` (same reasons).
    """

    method: str
    suite: str
    task_id: int
    init_checkpoint: Path
    out_dir: Path
    profile: str = "small"
    policy: str = "tiny"
    rounds: int = 1
    groups_per_round: int = 100
    group_size: int = 4
    pairs_per_group: int | None = None
    epochs: int = 4
    pairs_per_batch: int = 4
    beta: float = 0.1
    lr: float = 2e-5
    grad_clip: float = 1.0
    temperature: float = 1.0
    stop_rule: str = "independent"
    max_steps: int | None = None
    micro_batch_rows: int | None = None
    lora_rank: int = 32
    lora_alpha: int = 16
    cost: CostWeights = field(default_factory=CostWeights)
    episode_start: str = "restore"
    seed: int = 0
    train_seed_base: int = 1_000_000
    eval_episodes: int = 50
    workers_eval: int = 2
    torch_threads: int = 1

    def __post_init__(self) -> None:
        get_method(self.method, family="preference")
        check_profile(self.profile)
        object.__setattr__(self, "out_dir", Path(self.out_dir).absolute())
        object.__setattr__(self, "init_checkpoint", Path(self.init_checkpoint).absolute())
        for name in ("rounds", "groups_per_round", "epochs", "pairs_per_batch", "lora_rank"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("pairs_per_group", "micro_batch_rows"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be None or at least 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ValueError("group_size must be at least 2 (a pair needs two trajectories from one start)")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        from tgrpo.envs.rollout import STOP_RULES  # lazy: the simulator stack

        if self.stop_rule not in STOP_RULES:
            raise ValueError(f"unknown stop_rule {self.stop_rule!r}; valid: {', '.join(STOP_RULES)}")
        for name in ("beta", "lr", "temperature"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.eval_episodes <= 50:
            raise ValueError("eval_episodes must be in 0..50 (the official init states)")

    @property
    def spec(self) -> MethodSpec:
        return get_method(self.method, family="preference")

    @property
    def iterations(self) -> int:
        """The loop counts rounds as its iterations (one metrics row and one checkpoint per round)."""
        return self.rounds

    def to_dict(self) -> dict:
        d = asdict(self)
        d["init_checkpoint"], d["out_dir"] = str(self.init_checkpoint), str(self.out_dir)
        return d


def for_profile(profile: str, **kwargs) -> PreferenceConfig:
    """smoke: one group of 2 per round on a 20-step horizon, at most 2 rounds, 2 eval episodes (seconds); small:
    the tiny state policy on a CPU at TGRPO's rollout budget; paper: OpenVLA-7B settings (GRAPE's lr)."""
    unknown = sorted(set(kwargs) - {f.name for f in fields(PreferenceConfig)})
    if unknown:
        raise ValueError(f"method {kwargs.get('method')!r} takes no {', '.join(unknown)} (preference methods count "
                         "rounds of collected groups, not iterations, and have no advantage weights)")
    cfg = PreferenceConfig(profile=profile, **kwargs)
    cfg = replace(cfg, **{k: v for k, v in cfg.spec.overrides if k not in kwargs})  # grape: rounds, groups
    overrides = {
        "smoke": {"rounds": min(cfg.rounds, 2), "groups_per_round": 1, "group_size": 2, "epochs": 1,
                  "max_steps": 20, "eval_episodes": 2, "lora_rank": 4, "lora_alpha": 8},
        "small": {"lr": 1e-4},
        "paper": {"policy": "openvla", "micro_batch_rows": 16},  # as the RL methods' paper profile
    }[profile]
    return replace(cfg, **{k: v for k, v in overrides.items() if k not in kwargs})
