"""`tgrpo-bench demos`: bad input exits 2; a real one-demo run writes the dataset, key poses, and resumes; a killed
run leaves no worker writing."""

import json
from pathlib import Path

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
    from tgrpo.envs.libero_env import official_init_states, task_info
    from tgrpo.rewards.keyposes import load_stage_poses

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
    doc = load_stage_poses("object", keys)
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


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait(condition, timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


@pytest.mark.libero
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGKILL"])
def test_a_killed_run_leaves_no_worker_writing(tmp_path, signame):
    """SIGTERM stops like Ctrl-C (exit 130, workers ended); after SIGKILL the orphaned worker notices and stops
    after its attempt in hand, so a resumed run never races a leftover writer."""
    import signal
    import subprocess
    import sys

    out, log = tmp_path / "demos", tmp_path / "stderr.txt"
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "demos", "--suite", "object", "--tasks", "0",
                             "--per-task", "50", "--workers", "1", "--out", str(out), "--keyposes",
                             str(tmp_path / "k"), "--no-progress"], stdout=subprocess.DEVNULL,
                            stderr=log.open("w"))
    try:
        attempts = lambda: list(out.glob("libero_object/*.parts/attempts.jsonl"))
        assert _wait(lambda: attempts() and attempts()[0].read_text().count("\n") >= 1, 240), "no attempt recorded"
        workers = [c for c in _children(proc.pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert workers, "the demo worker process was not found"
        proc.send_signal(getattr(signal, signame))
        rc = proc.wait(timeout=60)
        if signame == "SIGTERM":
            assert rc == 130 and "interrupted" in log.read_text()
        assert _wait(lambda: not any(_alive(w) for w in workers), 120), "a worker outlived its parent"
        lines = attempts()[0].read_text().count("\n")
        assert not _wait(lambda: attempts()[0].read_text().count("\n") > lines, 5)  # nothing writes on
    finally:
        proc.kill()
