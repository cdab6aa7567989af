"""Strict loading of checkpoints in the released layout, and one clear error for each way one can be wrong."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tgrpo.policies.openvla.checkpoint import INDEX, CheckpointError, load_model, resolve_unnorm_key


def _copy(src, tmp_path):
    return shutil.copytree(src, tmp_path / "ck")


def _index(directory) -> dict:
    return json.loads((directory / INDEX).read_text())


def test_loads_strictly_with_every_tensor_as_stored(tiny_checkpoint):
    model, raw = load_model(tiny_checkpoint)
    stored = {}
    for file in sorted(set(_index(tiny_checkpoint)["weight_map"].values())):
        stored |= load_file(str(tiny_checkpoint / file))
    assert len(set(_index(tiny_checkpoint)["weight_map"].values())) > 1  # really sharded
    ours = model.state_dict()
    assert len(ours) == len(stored)
    # LayerScale is stored under OpenVLA's name and lands in timm's `gamma`
    name = "vision_backbone.featurizer.blocks.1.ls2"
    assert torch.equal(ours[f"{name}.gamma"], stored[f"{name}.scale_factor"])
    assert torch.equal(ours["language_model.lm_head.weight"], stored["language_model.lm_head.weight"])
    assert "libero_object_no_noops" in raw["norm_stats"]
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])


def _edit_shard(directory, edit):
    """Apply edit(tensors) to the shard holding the lm_head, keeping the index as it was."""
    file = _index(directory)["weight_map"]["language_model.lm_head.weight"]
    tensors = load_file(str(directory / file))
    edit(tensors)
    save_file(tensors, str(directory / file))


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no OpenVLA checkpoint directory"):
        load_model(tmp_path / "absent")


def test_missing_shard(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path)
    (ck / "model-00002-of-00004.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing shard .*model-00002-of-00004"):
        load_model(ck)


def test_missing_key(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path)
    index = _index(ck)
    del index["weight_map"]["projector.fc2.bias"]
    (ck / INDEX).write_text(json.dumps(index))
    file = _index(tiny_checkpoint)["weight_map"]["projector.fc2.bias"]
    tensors = load_file(str(ck / file))
    del tensors["projector.fc2.bias"]
    save_file(tensors, str(ck / file))
    with pytest.raises(CheckpointError, match="lacks 1 tensor.*'projector.fc2.bias'"):
        load_model(ck)


def test_unexpected_key(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path)
    _edit_shard(ck, lambda t: t.__setitem__("vision_backbone.featurizer.head.weight", torch.zeros(2, 2)))
    with pytest.raises(CheckpointError, match="OpenVLA does not, first 'vision_backbone.featurizer.head.weight'"):
        load_model(ck)


def test_timm_name_instead_of_the_released_one_is_a_mismatch(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path)
    file = _index(ck)["weight_map"]["vision_backbone.featurizer.blocks.0.ls1.scale_factor"]
    tensors = load_file(str(ck / file))
    tensors["vision_backbone.featurizer.blocks.0.ls1.gamma"] = tensors.pop(
        "vision_backbone.featurizer.blocks.0.ls1.scale_factor")
    save_file(tensors, str(ck / file))
    with pytest.raises(CheckpointError, match=r"lacks 'vision_backbone\.featurizer\.blocks\.0\.ls1\.scale_factor'"):
        load_model(ck)


def test_shape_mismatch(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path)
    head = "language_model.lm_head.weight"
    _edit_shard(ck, lambda t: t.__setitem__(head, t[head][:32000]))
    with pytest.raises(CheckpointError, match=r"'language_model.lm_head.weight' has shape \[32000, 32\], OpenVLA's is "
                                              r"\[32064, 32\]"):
        load_model(ck)


def test_not_an_openvla_config(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path)
    raw = json.loads((ck / "config.json").read_text())
    raw["vision_backbone_id"] = "siglip-vit-so400m"
    (ck / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="describes backbones 'siglip-vit-so400m'"):
        load_model(ck)


def test_unnorm_key_as_openvla_picks_it():
    stats = {"libero_object_no_noops": {}, "libero_goal_no_noops": {}, "bridge_orig": {}}
    assert resolve_unnorm_key(stats, "libero_object") == "libero_object_no_noops"  # the script's fallback
    assert resolve_unnorm_key(stats, "bridge_orig") == "bridge_orig"
    assert resolve_unnorm_key({"only": {}}, None) == "only"
    with pytest.raises(CheckpointError, match="unknown --unnorm-key 'libero_10'.*valid: bridge_orig, "
                                              "libero_goal_no_noops, libero_object_no_noops"):
        resolve_unnorm_key(stats, "libero_10")
    with pytest.raises(CheckpointError, match="unknown --unnorm-key None"):
        resolve_unnorm_key(stats, None)


def test_statistics_without_action_quantiles(tiny_checkpoint, tmp_path):
    from tgrpo.policies.openvla.policy import OpenVLAPolicy, OpenVLASettings

    ck = _copy(tiny_checkpoint, tmp_path)
    raw = json.loads((ck / "config.json").read_text())
    raw["norm_stats"]["libero_goal_no_noops"] = {"proprio": {}}
    (ck / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"norm_stats\['libero_goal_no_noops'\] has no action q01/q99"):
        OpenVLAPolicy.load(ck, settings=OpenVLASettings(unnorm_key="libero_goal"))
