"""Trainer state files never execute code on load, and a corrupt one is refused with a clear message."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tgrpo.trainer_state import TrainerStateError, load_trainer_state, save_trainer_state


class _Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_state_file(path, marker) -> None:
    """A `trainer.pt` as torch.save writes it, whose payload runs `touch marker` when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {}, "optimizer": _Payload(str(marker)), "iteration": 1}, path)


def test_a_pickle_that_runs_a_command_is_refused_and_never_runs(tmp_path):
    probe, probe_marker = tmp_path / "probe.pt", tmp_path / "ran"
    malicious_state_file(probe, probe_marker)
    torch.load(probe, weights_only=False)  # the old loader: the payload is live, it runs
    assert probe_marker.exists()
    state, marker = tmp_path / "last" / "trainer.pt", tmp_path / "pwned"
    malicious_state_file(state, marker)
    with pytest.raises(TrainerStateError, match="objects other than tensors"):
        load_trainer_state(state)
    assert not marker.exists()


def test_round_trip_of_tensors_optimiser_state_and_plain_data(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    path = tmp_path / "trainer.pt"
    history = [{"epoch": 1, "val_loss": None}, {"epoch": 2, "val_loss": np.float64(0.5)}]  # np.mean gives these
    save_trainer_state(path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": 3,
                              "state": {"best_val": float("inf"), "history": history}})
    back = load_trainer_state(path, required=("model", "optimizer", "iteration"))
    assert back["iteration"] == 3 and back["state"]["history"][0]["val_loss"] is None
    assert back["state"]["history"][1]["val_loss"] == 0.5 and back["state"]["best_val"] == float("inf")
    torch.testing.assert_close(back["model"]["weight"], model.state_dict()["weight"])
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    fresh.load_state_dict(back["optimizer"])  # loads as the optimiser wrote it


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 10, b"PK\x03\x04 not a zip"])
def test_corrupt_files_are_refused(tmp_path, content):
    path = tmp_path / "trainer.pt"
    path.write_bytes(content)
    with pytest.raises(TrainerStateError, match="delete it to start the run afresh"):
        load_trainer_state(path)


def test_missing_keys_are_named(tmp_path):
    path = tmp_path / "trainer.pt"
    save_trainer_state(path, {"model": {}})
    with pytest.raises(TrainerStateError, match="lacks optimizer, iteration"):
        load_trainer_state(path, required=("model", "optimizer", "iteration"))
