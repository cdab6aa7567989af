"""A synthetic OpenVLA checkpoint in the released layout at test size, written once per session."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from tgrpo.policies.openvla.synthetic import write_synthetic_checkpoint

    return write_synthetic_checkpoint(tmp_path_factory.mktemp("openvla") / "tiny")
