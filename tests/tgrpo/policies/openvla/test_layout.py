"""Key and shape parity of the model with the released checkpoints (tests/data/openvla/checkpoint_keys.tsv), at
full size from a meta-device state dict (no memory), and the test-size config keeps the same structure."""

import re
from pathlib import Path

import torch

from tgrpo.policies.openvla.checkpoint import expected_layout
from tgrpo.policies.openvla.config import OpenVLAConfig, tiny_config
from tgrpo.policies.openvla.model import OpenVLAModel

TSV = Path(__file__).parents[3] / "data" / "openvla" / "checkpoint_keys.tsv"


def _released() -> dict[str, tuple[int, ...]]:
    rows = [line.rstrip("\n").split("\t") for line in TSV.read_text().splitlines() if not line.startswith("#")]
    assert rows[0] == ["key", "shape", "dtype"]
    return {key: tuple(int(n) for n in shape.split("x")) for key, shape, _ in rows[1:]}


def _meta_layout(cfg: OpenVLAConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return expected_layout(OpenVLAModel(cfg))


def test_full_size_model_has_exactly_the_released_tensors():
    released, ours = _released(), _meta_layout(OpenVLAConfig())
    assert len(released) == 982
    assert sorted(ours) == sorted(released)
    assert {k: ours[k] for k in released if ours[k] != released[k]} == {}
    assert sum(torch.Size(s).numel() for s in ours.values()) == 7_541_237_184  # the README's parameter count


def test_the_test_size_model_has_the_same_structure():
    """Same names once block and layer indices are dropped; same shapes where sizes are not scaled (vocabulary,
    patch grid, prefix tokens)."""
    def pattern(names):
        return {re.sub(r"\.(blocks|layers)\.\d+\.", r".\1.N.", n) for n in names}

    tiny = _meta_layout(tiny_config())
    assert pattern(tiny) == pattern(_released())
    assert tiny["language_model.model.embed_tokens.weight"][0] == 32064
    assert tiny["vision_backbone.featurizer.pos_embed"][1] == 256
    assert tiny["vision_backbone.featurizer.reg_token"][1] == 4
    assert tiny["vision_backbone.fused_featurizer.pos_embed"][1] == 256
