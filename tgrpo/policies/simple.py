"""Policies that need no model: lower bounds and plumbing checks."""

from __future__ import annotations

import numpy as np

from tgrpo.policies.base import Policy, PolicyOutput


class ZeroPolicy(Policy):
    """Holds still with the gripper open: action [0, 0, 0, 0, 0, 0, -1]."""

    name = "zero"

    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0) -> PolicyOutput:
        actions = np.zeros((len(slots), 7))
        actions[:, 6] = -1.0
        return PolicyOutput(actions)


class RandomPolicy(Policy):
    """Uniform delta pose in [-1, 1]^6, gripper -1 or +1 with equal chance; one seeded generator per slot.

    Per-slot generators reseeded at each episode start (seed, slot's episode key) keep a slot's actions
    independent of how episodes were spread over workers.
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._rngs: dict[int, np.random.Generator] = {}

    def begin_episode(self, slot: int, instruction: str, episode_key: tuple = (), layout=None) -> None:
        self._rngs[slot] = np.random.default_rng([self.seed, *episode_key])

    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0) -> PolicyOutput:
        rows = []
        for slot in slots:
            rng = self._rngs.setdefault(slot, np.random.default_rng([self.seed, slot]))
            rows.append(np.concatenate([rng.uniform(-1.0, 1.0, 6), [rng.choice([-1.0, 1.0])]]))
        return PolicyOutput(np.stack(rows))

    def describe(self) -> dict:
        return {"name": self.name, "seed": self.seed}
