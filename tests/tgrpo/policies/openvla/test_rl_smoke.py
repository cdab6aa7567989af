"""One RL iteration of the shared loop (`bench.runs.run_rl`) with the `openvla` policy at test size on the real
simulator with image observations: rollouts, reference log-probs with adapters disabled, a LoRA update, the merged
export that `eval --policy openvla` loads."""

import json

import pytest

from bench.runs import run_rl
from tgrpo.policies.openvla.policy import OpenVLAPolicy, OpenVLASettings
from tgrpo.rl.config import for_profile


@pytest.mark.libero
def test_one_tgrpo_iteration_with_openvla(tiny_checkpoint, tmp_path):
    cfg = for_profile("smoke", method="tgrpo", suite="libero_object", task_id=0, init_checkpoint=tiny_checkpoint,
                      out_dir=tmp_path / "run", policy="openvla", iterations=1, group_size=2, max_steps=4,
                      eval_episodes=0)
    record = run_rl(cfg, progress=False)
    row = record.metrics[-1]
    assert row["iteration"] == 1 and row["rollout/length_mean"] == 4
    assert row["loss/grad_norm"] > 0  # the adapters got a gradient
    provenance = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert provenance["policy"]["name"] == "openvla"
    assert provenance["policy"]["unnorm_key"] == "libero_object_no_noops"
    assert provenance["obs"]["center_crop"] is True and provenance["obs"]["mode"] == "image"
    exported = OpenVLAPolicy.load(record.policy_dir, settings=OpenVLASettings(unnorm_key="libero_object"))
    assert json.loads((record.policy_dir / "origin.json").read_text())["rl_run"]["iteration"] == 1
    assert exported.unnorm_key == "libero_object_no_noops"
