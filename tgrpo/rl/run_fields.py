"""What every method trained per task shares: the run's identity, where it starts and writes, and how it is
evaluated. `tgrpo.rl.config.RLConfig` and `tgrpo.rl.preference_config.PreferenceConfig` extend it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from tgrpo.rl.methods import check_profile, get_method


@dataclass(frozen=True)
class RunFields:
    """policy "tiny": the registered trainable policy (`tgrpo.policies`) the init checkpoint loads as.
    episode_start "restore": bit-identical to OpenVLA's reset (docs/protocol.md) and 15x faster to start.
    train_seed_base: fresh placements for training use seeds train_seed_base + iteration, never official states.
    eval_episodes 50: the official init states the trained policy is evaluated on (greedy).
    workers_eval 2, torch_threads 1: the simulator workers use the other cores of the 2-core CPU.
    """

    method: str
    suite: str
    task_id: int
    init_checkpoint: Path
    out_dir: Path
    profile: str = "small"
    policy: str = "tiny"
    episode_start: str = "restore"
    seed: int = 0
    train_seed_base: int = 1_000_000
    eval_episodes: int = 50
    workers_eval: int = 2
    torch_threads: int = 1

    def check_run_fields(self, family: str) -> None:
        """Validate the shared fields (ValueError) and make the paths absolute: a harness may chdir."""
        get_method(self.method, family=family)
        check_profile(self.profile)
        object.__setattr__(self, "out_dir", Path(self.out_dir).absolute())
        object.__setattr__(self, "init_checkpoint", Path(self.init_checkpoint).absolute())
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not 0 <= self.eval_episodes <= 50:
            raise ValueError("eval_episodes must be in 0..50 (the official init states)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["init_checkpoint"], d["out_dir"] = str(self.init_checkpoint), str(self.out_dir)
        return d


def check_rollout_fields(stop_rule: str, temperature: float, micro_batch_rows: int | None) -> None:
    """The rollout and batching fields both configs carry, each with its own default."""
    from tgrpo.envs.rollout import STOP_RULES  # lazy: the simulator stack

    if stop_rule not in STOP_RULES:
        raise ValueError(f"unknown stop_rule {stop_rule!r}; valid: {', '.join(STOP_RULES)}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be > 0 (rollouts sample), got {temperature}")
    if micro_batch_rows is not None and micro_batch_rows < 1:
        raise ValueError(f"micro_batch_rows must be None or at least 1, got {micro_batch_rows}")
