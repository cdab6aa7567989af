"""PPO's critic: a small MLP on the privileged simulator state, its free choices (`PPOConfig`) and its updates.

The critic sees the privileged state vector every rollout records (`GroupRollout.privileged`, [N, M + 1, D]), not
the policy's input: an asymmetric actor-critic (Pinto et al. 2018). It is only used in training, so it may see what
the dense reward is computed from; it needs nothing from the policy, so every `TrainablePolicy` (the tiny VLA,
OpenVLA) trains with it unchanged. Why this and not a head on the policy's trunk: docs/training.md, "PPO".

Values are in return units outside this module; inside, the network predicts returns standardised by running
statistics (`value_norm`), and reads inputs standardised the same way. It runs on the CPU whatever the policy's
device (a 2 x 64 MLP over about a thousand states per group).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tgrpo.advantages import ADVANTAGE_NORMS, AdvantageConfig
from tgrpo.envs.rollout import GroupRollout
from tgrpo.losses import get_value_loss

INPUT_STD_FLOOR = 0.01  # metres / radians / quaternion units, as the tiny policy's state normalisation
TARGET_STD_FLOOR = 1e-3  # returns: a group whose returns are all equal is not blown up


@dataclass(frozen=True)
class PPOConfig:
    """Free choices of PPO with a critic (`--method ppo`); unused by the group-relative methods.

    gamma 0.99, lam 0.95: OpenAI baselines' PPO2 defaults, used by CleanRL and most PPO ports. With gamma 0.99 the
        return looks about 100 steps ahead, about the length of a successful LIBERO-Object episode (docs/training.md:
        84-110 steps). Passed to the `gae` estimator (`tgrpo.advantages`).
    advantage_norm "group": z-score of the GAE advantages over the group's valid steps before the policy loss, once
        per iteration (PPO2 and CleanRL normalise per minibatch; per group keeps the advantages of one iteration
        fixed across its minibatches and micro-batches, as the group-relative methods' are). "none" keeps them raw.
    value_clip 0.2: PPO2's clipped value loss with its clip range, applied in standardised return units
        (`value_norm`); None gives the plain squared error. Andrychowicz et al. 2021 found value clipping neutral to
        harmful on MuJoCo; it is kept as the issue asks for PPO2's form and the field turns it off.
    value_norm True: the network predicts returns standardised by running mean / std (MAPPO's ValueNorm, without
        PopArt's output correction). The dense stage reward (docs/rewards.md) gives discounted returns of order
        10-50; PPO2's clip of 0.2 assumes normalised rewards: in return units it would let a value move about 0.2
        towards its target per iteration.
    warmup_iterations 5: iterations of value-only updates before the first policy update (the policy still collects
        the group). A critic that starts at 0 gives advantages that are the discounted returns themselves (all
        positive); measured explained variance: docs/training.md, "PPO". 5 of the small profile's 100 iterations;
        the smoke profile sets 1 so that both kinds of update run. The iterations count towards `iterations`: PPO
        collects as many groups as TGRPO.
    lr 1e-3: Adam on the critic alone (its own optimizer: a separate network, so PPO2's value coefficient would
        only rescale a gradient Adam normalises away, and there is no such field). 3e-4 (PPO2) is for a critic
        trained jointly over millions of steps; here it sees 100 groups.
    hidden 64, layers 2: PPO2's MLP (two tanh layers of 64 units).
    """

    gamma: float = AdvantageConfig.gamma
    lam: float = AdvantageConfig.lam
    advantage_norm: str = "group"
    value_clip: float | None = 0.2
    value_norm: bool = True
    warmup_iterations: int = 5
    lr: float = 1e-3
    hidden: int = 64
    layers: int = 2

    def __post_init__(self) -> None:
        AdvantageConfig(gamma=self.gamma, lam=self.lam)  # validates both
        if self.advantage_norm not in ADVANTAGE_NORMS:
            raise ValueError(f"unknown advantage_norm {self.advantage_norm!r}; valid: {', '.join(ADVANTAGE_NORMS)}")
        if self.value_clip is not None and not (math.isfinite(self.value_clip) and self.value_clip > 0):
            raise ValueError(f"value_clip must be None or finite and > 0, got {self.value_clip}")
        if self.warmup_iterations < 0:
            raise ValueError(f"warmup_iterations must be >= 0, got {self.warmup_iterations}")
        if not self.lr > 0:
            raise ValueError(f"ppo lr must be > 0, got {self.lr}")
        if self.hidden < 1 or self.layers < 1:
            raise ValueError("ppo hidden and layers must be at least 1")


class RunningNorm(nn.Module):
    """Running mean and variance of [n, d] batches (Chan et al.'s parallel update, float64 buffers, so a resumed
    run continues them exactly); `normalise` divides by max(std, floor)."""

    def __init__(self, dim: int, floor: float):
        super().__init__()
        self.floor = floor
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))

    def update(self, x: torch.Tensor) -> None:
        x = x.to(torch.float64).reshape(-1, self.mean.numel())
        n = x.shape[0]
        if n == 0:
            return
        mean, var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = mean - self.mean
        m2 = self.var * self.count + var * n + delta.square() * self.count * n / total
        self.mean += delta * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt().clamp_min(self.floor)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.to(torch.float64) - self.mean) / self.std).float()

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(torch.float64) * self.std + self.mean).float()


class StateCritic(nn.Module):
    """Privileged state [B, D] -> standardised value [B]: input standardisation, then `layers` tanh layers."""

    def __init__(self, state_dim: int, hidden: int, layers: int):
        super().__init__()
        self.inputs = RunningNorm(state_dim, INPUT_STD_FLOOR)
        self.targets = RunningNorm(1, TARGET_STD_FLOOR)  # identity (mean 0, std 1) until updated
        widths = [state_dim] + [hidden] * layers
        body = [m for a, b in itertools.pairwise(widths) for m in (nn.Linear(a, b), nn.Tanh())]
        self.net = nn.Sequential(*body, nn.Linear(widths[-1], 1))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.net(self.inputs.normalise(states)).squeeze(-1)

    @torch.no_grad()
    def value(self, states: torch.Tensor) -> torch.Tensor:
        """Values [B] in return units."""
        return self.targets.denormalise(self(states)[:, None])[:, 0]


class Critic:
    """A run's critic and its Adam optimizer. Built at the first group: its input size is the task's privileged
    vector, known once an environment is built; a state loaded before that is applied then."""

    def __init__(self, cfg: PPOConfig, value_loss: str):
        self.cfg = cfg
        self.loss_fn = get_value_loss(value_loss)
        self.model: StateCritic | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._pending: dict | None = None

    def _build(self, state_dim: int) -> StateCritic:
        if self.model is None:
            self.model = StateCritic(state_dim, self.cfg.hidden, self.cfg.layers)
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
            if self._pending is not None:
                self.load_state_dict(self._pending)
        return self.model

    def inputs(self, rollout: GroupRollout) -> torch.Tensor:
        """What the critic reads of each state: ``[N, M + 1, D]``, the privileged vectors."""
        return torch.from_numpy(rollout.privileged)

    def values(self, rollout: GroupRollout) -> torch.Tensor:
        """``[N, M + 1]`` float32 values of the group's states for the `gae` estimator: the input statistics take
        in the group's states first; the state after a step LIBERO reports as success is terminal (0)."""
        states = self.inputs(rollout)
        model = self._build(states.shape[-1])
        model.inputs.update(states[:, :-1][torch.from_numpy(rollout.mask)])
        values = model.value(states.flatten(0, 1)).view(states.shape[:2])
        values[:, 1:][torch.from_numpy(rollout.done & rollout.mask)] = 0.0
        return values

    def update(self, group: dict, epochs: int, minibatches: int, grad_clip: float,
               rng: np.random.Generator) -> dict[str, float]:
        """Value updates on the group's valid steps: `epochs` passes of `minibatches` Adam steps, each minimising
        the value loss of its rows (equal weights) towards ``group["returns"]``. The clip is anchored at the
        network's output before the first step (after the target statistics took in this group's returns).
        Returns means over the steps, plus the explained variance of the values the advantages used."""
        rollout, model = group["rollout"], self.model
        traj, step = np.nonzero(rollout.mask)
        states = self.inputs(rollout)[torch.from_numpy(traj), torch.from_numpy(step)]
        returns = group["returns"][traj, step].float()
        metrics = {"explained_variance": explained_variance(group["values"][traj, step], returns),
                   "value_mean": float(group["values"][traj, step].mean()), "return_mean": float(returns.mean())}
        if self.cfg.value_norm:
            model.targets.update(returns[:, None])
        targets = model.targets.normalise(returns[:, None])[:, 0]
        with torch.no_grad():
            old = model(states)
        steps: dict[str, list[float]] = {}
        model.train()
        for _ in range(epochs):
            for part in np.array_split(rng.permutation(len(states)), minibatches):
                idx = torch.from_numpy(np.sort(part))
                weights = torch.full((len(idx),), 1.0 / max(len(idx), 1))
                self.optimizer.zero_grad()
                out = self.loss_fn(model(states[idx]), old[idx], targets[idx], weights, clip=self.cfg.value_clip)
                out.loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                self.optimizer.step()
                for key, value in {"value_loss": float(out.loss.detach()), "grad_norm": float(grad_norm),
                                   **{k: float(v) for k, v in out.metrics.items()}}.items():
                    steps.setdefault(key, []).append(value)
        return {**metrics, **{k: float(np.mean(v)) for k, v in steps.items()}}

    def state_dict(self) -> dict:
        if self.model is None:
            return self._pending or {}
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        if self.model is None:
            self._pending = state
            return
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._pending = None


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """``1 - Var(R - V) / Var(R)`` (PPO2's diagnostic): 1 is a perfect critic, 0 no better than the mean return,
    negative worse; NaN when the returns do not vary."""
    var = float(returns.double().var(unbiased=False))
    if var == 0:
        return math.nan
    return 1.0 - float((returns.double() - values.double()).var(unbiased=False)) / var
