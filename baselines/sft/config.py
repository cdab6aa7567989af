"""SFT configuration: one dataclass, chosen per profile, every default with its reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tgrpo.rl.methods import check_profile


@dataclass(frozen=True)
class SFTConfig:
    """Behaviour cloning by cross-entropy on the 7 action tokens, one policy per suite (as OpenVLA's LIBERO fine-tunes).

    lr 3e-4: AdamW for a small transformer trained from scratch (OpenVLA's LoRA fine-tunes use 5e-4).
    batch_size 64: fits any CPU; 7 tokens per sample.
    val_fraction 0.1: whole demonstrations held out, never single steps (steps of one demo are correlated).
    grad_clip 1.0: the usual transformer setting; guards the first steps of a from-scratch model.
    lr_schedule "cosine": decay to 0 over the run (per optimiser step), the usual from-scratch schedule; "constant"
        keeps lr.
    normalize_state True: the state variant standardises its input per dimension with training-set statistics
        stored in the checkpoint (tgrpo.policies.tiny.StateStats).
    torch_threads 1: measured here, 2 threads on the 2 cores ran several times slower than 1 whenever any other
        process was busy (OpenMP threads waiting on each other).
    """

    suite: str
    demos_dir: Path
    out_dir: Path
    profile: str = "small"
    variant: str = "state"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-4
    lr_schedule: str = "cosine"
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    val_fraction: float = 0.1
    max_demos_per_task: int | None = None
    seed: int = 0
    normalize_state: bool = True
    torch_threads: int = 1
    model: dict = field(default_factory=dict)  # TinyConfig overrides (d_model, n_layers, ...)

    def __post_init__(self) -> None:
        check_profile(self.profile)
        object.__setattr__(self, "demos_dir", Path(self.demos_dir).absolute())  # absolute: a harness may chdir
        object.__setattr__(self, "out_dir", Path(self.out_dir).absolute())
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.variant not in ("state", "image"):
            raise ValueError(f"unknown variant {self.variant!r}; valid: state, image")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be positive and lr > 0")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; valid: cosine, constant")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in [0, 1)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["demos_dir"], d["out_dir"] = str(self.demos_dir), str(self.out_dir)
        return d


def for_profile(profile: str, **kwargs) -> SFTConfig:
    """The profile's defaults: smoke = minutes in CI (2 demos per task, 1 epoch), small = hours on a CPU."""
    base = SFTConfig(profile=profile, **kwargs)
    if profile == "smoke":
        return replace(base, epochs=1, max_demos_per_task=2, model={"d_model": 32, "n_layers": 1, **base.model})
    return base
