"""Resumable trainer state (weights, optimiser, counters) that loading never executes.

A run directory travels (copied from clusters, downloaded with results), so its `trainer.pt` is untrusted input.
It holds only tensors and plain data (dicts, lists, numbers, strings, None) and is read with
``torch.load(weights_only=True)``, which refuses any other pickled object instead of running it.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch


class TrainerStateError(ValueError):
    """A trainer state file that is corrupt, or holds something other than tensors and plain data."""


def save_trainer_state(path: Path, state: dict) -> None:
    """Write `state` atomically (a kill leaves the previous file or the new one, never half of one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(_plain(state), tmp)
    tmp.replace(path)


def load_trainer_state(path: Path, required: tuple[str, ...] = ()) -> dict:
    """Read a state written by `save_trainer_state`; TrainerStateError for anything else."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):  # a well-formed pickle naming a callable or class: refused, never run
            raise TrainerStateError(f"{path} holds objects other than tensors and plain data (refusing to load it); "
                                    "delete it to start the run afresh") from err
        raise TrainerStateError(f"{path} is not a trainer state this project wrote (unreadable); "
                                "delete it to start the run afresh") from err
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrainerStateError(f"{path} is not a trainer state this project wrote (refusing to load it: {first}); "
                                "delete it to start the run afresh") from err
    missing = [key for key in required if not isinstance(state, dict) or key not in state]
    if missing:
        raise TrainerStateError(f"{path} lacks {', '.join(missing)}; delete it to start the run afresh")
    return state


def _plain(value):
    """NumPy scalars and arrays become Python numbers and tensors: the weights-only loader admits no NumPy type."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return value
