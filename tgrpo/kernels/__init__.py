"""Triton kernels for the TGRPO advantage and the fused log-prob / policy-loss passes.

They run on CUDA tensors. On a machine without a GPU they run under Triton's interpreter only:
set ``TRITON_INTERPRET=1`` before this package's kernel modules are imported (the test suite does).
Callers reach them through ``backend="auto"|"triton"`` in :mod:`tgrpo.advantages` and :mod:`tgrpo.losses`.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch


@functools.cache
def available() -> bool:
    """Whether Triton is importable."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Whether Triton's CPU interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def require(tensor: torch.Tensor) -> None:
    """Raise unless the Triton backend can run on ``tensor``'s device."""
    if not available():
        raise RuntimeError("backend='triton' needs the triton package")
    if not tensor.is_cuda and not interpreting():
        raise ValueError("backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 for CPU tests)")


def select_backend(backend: str, tensor: torch.Tensor) -> str:
    """``"torch"`` or ``"triton"`` for ``backend`` in auto / torch / triton: auto takes Triton for CUDA tensors when
    it is installed; an explicit ``"triton"`` raises where it cannot run."""
    if backend == "torch":
        return "torch"
    if backend == "triton":
        require(tensor)
        return "triton"
    if backend == "auto":
        return "triton" if tensor.is_cuda and available() else "torch"
    raise ValueError(f"backend must be 'auto', 'torch' or 'triton', got {backend!r}")
