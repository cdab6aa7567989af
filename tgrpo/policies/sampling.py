"""Per-slot random generators for sampling policies: one torch generator per env slot, seeded by (policy seed,
episode key), so a sampled episode's actions do not depend on which other episodes share the batch or the worker.
"""

from __future__ import annotations

import numpy as np
import torch


def generator(*key: int) -> torch.Generator:
    """A torch generator seeded from a tuple of non-negative or negative ints, stable across runs."""
    words = [int(k) % 2**32 for k in key]
    return torch.Generator().manual_seed(int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0]) >> 1)


class SlotSampler:
    def __init__(self, seed: int):
        self.seed = seed
        self._generators: dict[int, torch.Generator] = {}

    def begin(self, slot: int, episode_key: tuple = ()) -> None:
        self._generators[slot] = generator(self.seed, *episode_key)

    def sample(self, probs: torch.Tensor, slots: list[int]) -> torch.Tensor:
        """One column per row [B] from probs [B, V] (on the CPU), row b drawn with the generator of slots[b]."""
        for s in slots:
            if s not in self._generators:  # a slot used without begin: seeded by the slot alone
                self._generators[s] = generator(self.seed, -1, s)
        gens = [self._generators[s] for s in slots]
        return torch.cat([torch.multinomial(probs[b], 1, generator=g) for b, g in enumerate(gens)])
