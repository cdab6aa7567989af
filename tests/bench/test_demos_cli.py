"""`tgrpo-bench demos`: bad input exits 2; a real one-demo run writes the dataset, key poses, and resumes."""

import json

import numpy as np
import pytest

from bench.cli import main


@pytest.mark.parametrize("argv,message", [
    (["demos", "--suite", "nope"], "unknown suite"),
    (["demos", "--suite", "object", "--tasks", "12"], "out of range"),
    (["demos", "--suite", "object", "--per-task", "0"], "--per-task"),
    (["demos", "--suite", "object", "--workers", "0"], "--workers"),
    (["demos", "--suite", "object", "--no-wrist"], "--no-wrist"),
])
def test_bad_input_exits_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "d"), "--keyposes", str(tmp_path / "k")]) == 2
    assert message in capsys.readouterr().err


def test_unwritable_output_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demos", "--suite", "object", "--out", str(blocker / "sub"), "--no-progress"]) == 2
    assert "cannot create" in capsys.readouterr().err


@pytest.mark.libero
def test_one_demo_dataset_keyposes_and_resume(tmp_path, capsys):
    from tgrpo.data.hdf5 import LiberoDataset
    from tgrpo.data.keyposes import load_keyposes
    from tgrpo.envs.libero_env import official_init_states, task_info

    out, keys = tmp_path / "demos", tmp_path / "keyposes"
    argv = ["demos", "--suite", "object", "--tasks", "0", "--per-task", "1", "--out", str(out),
            "--keyposes", str(keys), "--no-progress"]
    assert main(argv) == 0
    name = task_info("libero_object", 0).name
    path = out / "libero_object" / f"{name}_demo.hdf5"
    with LiberoDataset(path) as ds:
        assert len(ds) == 1 and ds.language_instruction == task_info("libero_object", 0).instruction
        demo = ds[0]
        assert demo.dones[-1] == 1 and demo.rewards.sum() == 1
        assert set(demo.obs) >= {"ee_pos", "ee_ori", "ee_states", "gripper_states", "joint_states"}
        assert "agentview_rgb" not in demo.obs  # state-only by default
        assert demo.actions.shape == (len(demo), 7) and demo.states.shape[0] == len(demo)
        assert demo.stage_index is not None and demo.stage_index[0] == 0
        assert isinstance(demo.attrs["seed"], (int, np.integer))
        init = ds.init_states()
    official = official_init_states("libero_object", 0)
    assert np.abs(official[:, 1:] - init[0][None, 1:]).max(axis=1).min() > 1e-3  # not an evaluation state
    doc = load_keyposes("object", keys)
    stages = doc["tasks"][name]["stages"]
    labels = [s["label"] for s in stages]
    assert labels[:4] == ["pick_place/approach", "pick_place/descend", "pick_place/grasp", "pick_place/lift"]
    lift = next(s for s in stages if s["stage"] == "lift")
    assert np.linalg.norm(lift["rel_object"]["mean"][:2]) < 0.03  # grasped at the object
    capsys.readouterr()
    assert main(argv) == 0  # resume: nothing left to do
    assert "already complete" in capsys.readouterr().out
    assert json.loads(path.with_name(f"{name}.parts").joinpath("attempts.jsonl").read_text().splitlines()[0])[
        "success"]
