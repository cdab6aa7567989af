"""`tgrpo-bench eval` end to end on the real simulator: rows with provenance, crashes, resume, bad input."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.evaluate import EvalRequest, evaluate
from tgrpo.envs.observation import ObsConfig
from tgrpo.envs.protocol import MAX_POLICY_STEPS, Protocol
from tgrpo.policies.simple import ZeroPolicy

CLI = [sys.executable, "-m", "bench.cli"]
SHORT = Protocol(episode_start="restore", max_policy_steps={**MAX_POLICY_STEPS, "libero_object": 12})


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]


def _eval(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "eval", *args], check=False, capture_output=True, text=True, timeout=timeout)


@pytest.mark.libero
def test_random_policy_rows_carry_provenance(tmp_path):
    out = tmp_path / "run"
    proc = _eval("--policy", "random", "--suite", "object", "--tasks", "0", "--episodes", "2", "--obs", "state",
                 "--episode-start", "restore", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "libero_object" in proc.stdout and "Wilson" in proc.stdout
    rows = _rows(out)
    assert sorted(r["episode"] for r in rows) == [0, 1]
    for row in rows:
        p = row["provenance"]
        assert p["packages"]["mujoco"] == "2.3.7" and p["packages"]["robosuite"] == "1.4.0"
        assert p["protocol"]["num_wait_steps"] == 10 and p["protocol"]["episode_start"] == "restore"
        assert p["obs"]["mode"] == "state" and p["seeds"] == {"policy": 0, "env": 0}
        assert p["decoding"] == {"mode": "greedy"}  # the protocol's, unless --temperature says otherwise
        assert len(p["git_sha"]) == 40 and p["machine"]["cpu_count"] >= 1
        assert row["steps"] == 280 and row["success"] is False  # random actions never solve it in time
    summary = json.loads((out / "summary.json").read_text())
    assert summary["suites"]["libero_object"]["episodes"] == 2


class _KillOneWorker(ZeroPolicy):
    """Kills a simulator worker process (SIGKILL) on its second decision: a crash mid-episode."""

    def __init__(self):
        self.calls = 0

    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0):
        self.calls += 1
        if self.calls == 2:
            os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)
        return super().act(obs, instructions, slots, mode, temperature)


@pytest.mark.libero
def test_a_crashed_worker_becomes_a_failure_and_the_run_completes(tmp_path):
    request = EvalRequest("libero_object", (0,), (0, 1, 2), ObsConfig(mode="state"), tmp_path, SHORT, workers=2)
    summary = evaluate(request, _KillOneWorker(), progress=False)
    rows = _rows(tmp_path)
    assert sorted(r["episode"] for r in rows) == [0, 1, 2]
    errors = [r for r in rows if r["error"]]
    assert len(errors) == 1 and "crashed" in errors[0]["error"] and not errors[0]["success"]
    assert summary["tasks"][0]["episodes"] == 3 and summary["tasks"][0]["errors"] == 1


class _RecordsDecoding(ZeroPolicy):
    def __init__(self):
        self.seen = set()

    def act(self, obs, instructions, slots, mode="greedy", temperature=1.0):
        self.seen.add((mode, temperature))
        return super().act(obs, instructions, slots, mode, temperature)


@pytest.mark.libero
def test_a_sampled_evaluation_samples_and_says_so(tmp_path):
    request = EvalRequest("libero_object", (0,), (0,), ObsConfig(mode="state"), tmp_path, SHORT, workers=1,
                          temperature=0.5)
    policy = _RecordsDecoding()
    evaluate(request, policy, progress=False)
    assert policy.seen == {("sample", 0.5)}
    assert _rows(tmp_path)[0]["provenance"]["decoding"] == {"mode": "sample", "temperature": 0.5}


@pytest.mark.libero
def test_a_killed_run_resumes_without_redoing_finished_episodes(tmp_path):
    out = tmp_path / "run"
    args = [*CLI, "eval", "--policy", "zero", "--suite", "object", "--tasks", "0", "--episodes", "4", "--obs",
            "state", "--episode-start", "restore", "--workers", "1", "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    rows_file = out / "episodes.jsonl"
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and not (rows_file.exists() and rows_file.read_text().count("\n") >= 1):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers, as a kill -9 of the whole job would
    proc.wait()
    first = _rows(out)
    assert 1 <= len(first) < 4
    done = _eval(*args[4:])
    assert done.returncode == 0, done.stderr
    rows = _rows(out)
    assert sorted(r["episode"] for r in rows) == [0, 1, 2, 3]
    assert rows[: len(first)] == first  # finished rows untouched, nothing redone


@pytest.mark.parametrize("args,message", [
    (["--suite", "libero_90"], "valid: libero_spatial"),
    (["--tasks", "10"], "valid: 0..9"),
    (["--episodes", "51"], "at most 50 official init states"),
    (["--episode-ids", "3,50"], "valid: 0..49"),
    (["--policy", "openvla-99b"], "valid: zero, random"),
    (["--temperature", "-0.5"], "0 = greedy"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    base = {"--policy": "zero", "--suite": "object", "--out": str(tmp_path / "out")}
    flags = dict(zip(args[::2], args[1::2], strict=False))
    argv = [x for k, v in {**base, **flags}.items() for x in (k, v)]
    proc = _eval(*argv, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = _eval("--policy", "zero", "--suite", "object", "--tasks", "0", "--episodes", "1",
                 "--out", str(blocker / "sub"), timeout=120)
    assert proc.returncode == 2 and "not writable" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
