"""LIBERO-layout HDF5: our writer/reader round trip, and reading a file built by hand in the official layout."""

import json

import h5py
import numpy as np
import pytest

from tgrpo.data.hdf5 import Demo, LiberoDataset, merge_demo_files, sorted_demo_keys, write_demo_file


def _demo(t=6, s=12, images=True, seed=3) -> Demo:
    rng = np.random.default_rng(seed)
    obs = {
        "ee_pos": rng.normal(size=(t, 3)), "ee_ori": rng.normal(size=(t, 3)), "ee_states": rng.normal(size=(t, 6)),
        "gripper_states": rng.normal(size=(t, 2)), "joint_states": rng.normal(size=(t, 7)),
    }
    if images:
        obs["agentview_rgb"] = rng.integers(0, 256, size=(t, 8, 8, 3), dtype=np.uint8)
        obs["eye_in_hand_rgb"] = rng.integers(0, 256, size=(t, 8, 8, 3), dtype=np.uint8)
    dones = np.zeros(t, dtype=np.uint8)
    dones[-1] = 1
    return Demo(actions=rng.uniform(-1, 1, size=(t, 7)), states=rng.normal(size=(t, s)), rewards=dones.copy(),
                dones=dones, obs=obs, robot_states=rng.normal(size=(t, 9)),
                attrs={"seed": seed, "stage_transitions": json.dumps([{"step": 0, "index": 0}])},
                stage_index=np.arange(t) // 2)


def test_round_trip_one_file(tmp_path):
    demo = _demo()
    path = write_demo_file(tmp_path / "d.hdf5", demo, {"problem_info": {"language_instruction": "do it"}})
    with LiberoDataset(path) as ds:
        assert len(ds) == 1 and ds.language_instruction == "do it"
        back = ds[0]
    np.testing.assert_array_equal(back.actions, demo.actions)
    np.testing.assert_array_equal(back.states, demo.states)
    np.testing.assert_array_equal(back.stage_index, demo.stage_index)
    for key, value in demo.obs.items():
        np.testing.assert_array_equal(back.obs[key], value)
        assert back.obs[key].dtype == value.dtype
    assert back.attrs["seed"] == 3 and back.attrs["num_samples"] == 6
    np.testing.assert_array_equal(back.attrs["init_state"], demo.states[0])
    assert back.stage_transitions == [{"step": 0, "index": 0}]


def test_merge_keeps_order_and_totals(tmp_path):
    demos = [_demo(t=3 + k, seed=k, images=False) for k in range(12)]
    parts = [write_demo_file(tmp_path / f"p{k}.hdf5", d) for k, d in enumerate(demos)]
    out = merge_demo_files(parts, tmp_path / "task_demo.hdf5", {"problem_info": {"language_instruction": "x"}})
    with LiberoDataset(out) as ds:
        assert ds.keys[:3] == ["demo_0", "demo_1", "demo_2"] and ds.keys[-1] == "demo_11"  # numeric, not string
        assert ds.num_demos == 12 and ds.attrs["total"] == sum(len(d) for d in demos)
        for k, back in enumerate(ds):
            np.testing.assert_array_equal(back.actions, demos[k].actions)
        assert ds.init_states().shape == (12, 12)
    assert not (tmp_path / "task_demo.hdf5.tmp").exists()


def test_reads_a_file_in_the_official_layout(tmp_path):
    """Built with plain h5py the way LIBERO's create_dataset.py writes (string attrs, demo_<k>, obs/...)."""
    path = tmp_path / "KITCHEN_SCENE1_open_the_drawer_demo.hdf5"
    t = 5
    with h5py.File(path, "w") as f:
        grp = f.create_group("data")
        grp.attrs["env_name"] = "Libero_Kitchen_Tabletop_Manipulation"
        grp.attrs["problem_info"] = json.dumps({"problem_name": "libero_kitchen_tabletop_manipulation",
                                                "domain_name": "robosuite",
                                                "language_instruction": "open the top drawer of the cabinet"})
        grp.attrs["macros_image_convention"] = "opengl"
        grp.attrs["bddl_file_name"] = "libero/bddl_files/x.bddl"
        grp.attrs["env_args"] = json.dumps({"type": 1, "env_name": "x", "env_kwargs": {"control_freq": 20}})
        for i in (0, 1, 10):
            ep = grp.create_group(f"demo_{i}")
            obs = ep.create_group("obs")
            obs.create_dataset("agentview_rgb", data=np.full((t, 128, 128, 3), i, dtype=np.uint8))
            obs.create_dataset("eye_in_hand_rgb", data=np.zeros((t, 128, 128, 3), dtype=np.uint8))
            obs.create_dataset("gripper_states", data=np.zeros((t, 2)))
            obs.create_dataset("joint_states", data=np.zeros((t, 7)))
            obs.create_dataset("ee_states", data=np.zeros((t, 6)))
            obs.create_dataset("ee_pos", data=np.full((t, 3), float(i)))
            obs.create_dataset("ee_ori", data=np.zeros((t, 3)))
            ep.create_dataset("actions", data=np.full((t, 7), float(i)))
            ep.create_dataset("states", data=np.full((t, 47), float(i)))
            ep.create_dataset("robot_states", data=np.zeros((t, 9)))
            ep.create_dataset("rewards", data=np.array([0, 0, 0, 0, 1], dtype=np.uint8))
            ep.create_dataset("dones", data=np.array([0, 0, 0, 0, 1], dtype=np.uint8))
            ep.attrs["num_samples"] = t
            ep.attrs["model_file"] = "<mujoco/>"
            ep.attrs["init_state"] = np.full(47, float(i))
        grp.attrs["num_demos"] = 3
        grp.attrs["total"] = 3 * t
    with LiberoDataset(path) as ds:
        assert ds.language_instruction == "open the top drawer of the cabinet"
        assert ds.env_args["env_kwargs"]["control_freq"] == 20
        assert ds.keys == ["demo_0", "demo_1", "demo_10"]
        last = ds[2]
        assert last.actions.shape == (t, 7) and last.actions[0, 0] == 10.0
        assert last.obs["agentview_rgb"].shape == (t, 128, 128, 3) and last.obs["agentview_rgb"][0, 0, 0, 0] == 10
        assert last.stage_index is None and last.attrs["model_file"] == "<mujoco/>"
        assert last.rewards.tolist() == [0, 0, 0, 0, 1]


def test_rejects_inconsistent_lengths(tmp_path):
    demo = _demo()
    demo.rewards = demo.rewards[:-1]
    with pytest.raises(ValueError, match="rewards"):
        write_demo_file(tmp_path / "bad.hdf5", demo)


def test_not_a_libero_file(tmp_path):
    path = tmp_path / "x.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("foo", data=[1])
    with pytest.raises(ValueError, match="no 'data' group"):
        LiberoDataset(path)


def test_sorted_demo_keys_ignores_other_groups():
    assert sorted_demo_keys(["demo_2", "mask", "demo_10", "demo_1"]) == ["demo_1", "demo_2", "demo_10"]


def test_executed_actions_round_trip_and_shape_check(tmp_path):
    demo = _demo(images=False)
    demo.executed_actions = demo.actions + 0.01
    with LiberoDataset(write_demo_file(tmp_path / "d.hdf5", demo)) as ds:
        np.testing.assert_array_equal(ds[0].executed_actions, demo.actions + 0.01)
    assert _demo(images=False).executed_actions is None
    demo.executed_actions = demo.actions[:-1]
    with pytest.raises(ValueError, match="executed_actions"):
        write_demo_file(tmp_path / "e.hdf5", demo)
