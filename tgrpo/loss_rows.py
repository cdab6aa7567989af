"""The per-row inputs of the fused policy loss, shared by its torch path (`tgrpo.losses`) and its Triton kernels
(`tgrpo.kernels.logits`)."""

from __future__ import annotations

from typing import NamedTuple

import torch


class LossRows(NamedTuple):
    """targets / valid / old_logp / ref_logp ``[B, T]``; advantages ``[B]``; weights ``[B, T]`` for token units or
    ``[B]`` for action units (the aggregation weights of `tgrpo.losses.aggregation_weights`)."""

    targets: torch.Tensor
    valid: torch.Tensor
    old_logp: torch.Tensor
    ref_logp: torch.Tensor
    advantages: torch.Tensor
    weights: torch.Tensor

    def slice(self, r0: int, r1: int) -> LossRows:
        """Rows r0 .. r1 - 1."""
        return LossRows(*(x[r0:r1] for x in self))
