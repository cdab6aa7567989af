"""The Ray executor against a real Ray cluster on this machine (a head and a second worker node on 127.0.0.1, one CPU
each): the smoke matrix of LIBERO-Object gives the local executor's results, and a worker node killed mid-run loses
no finished stage, its stage is retried on the other node and the run completes. `make test-ray`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.libero]

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
CLI = [sys.executable, "-m", "bench.cli", "reproduce", "--suite", "object", "--profile", "smoke", "--no-progress"]
NODE_ARGS = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=100000000",
             "--disable-usage-stats"]


def _session_pids(sid: int) -> list[int]:
    """Live processes of the session `sid` (a node started with start_new_session: everything it spawned)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _stop(node: subprocess.Popen) -> None:
    """End one node's processes by id (never `ray stop`, which ends every Ray process of the machine)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _session_pids(node.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while _session_pids(node.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    node.wait(timeout=10)


def _node_count(address: str) -> int:
    code = (f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    return int(proc.stdout.split()[-1]) if proc.returncode == 0 and proc.stdout.split() else 0


class Cluster:
    def __init__(self, root: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{s.getsockname()[1]}"
        self.root, self.nodes = root, []
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "MUJOCO_GL": "egl", "RAY_ADDRESS": ""}
        self.start("--head", f"--port={self.address.split(':')[1]}", "--include-dashboard=false",
                   f"--temp-dir={root / 'ray'}")
        self.worker = self.start(f"--address={self.address}")

    def start(self, *args: str) -> subprocess.Popen:
        log = (self.root / f"node{len(self.nodes)}.log").open("w")
        node = subprocess.Popen([str(RAY), "start", *args, *NODE_ARGS], cwd=REPO, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.nodes.append(node)
        deadline = time.monotonic() + 180
        while _node_count(self.address) < len(self.nodes):
            assert node.poll() is None and time.monotonic() < deadline, (self.root / f"node{len(self.nodes) - 1}.log"
                                                                       ).read_text()[-2000:]
            time.sleep(2)
        return node

    def raylet_pid(self, node: subprocess.Popen) -> int:
        for pid in _session_pids(node.pid):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                return pid
        raise AssertionError("the worker node has no raylet")


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="tgrpo-ray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    started = Cluster.__new__(Cluster)
    started.nodes = []
    try:
        started.__init__(root)
        yield started
    finally:
        for node in reversed(started.nodes):
            _stop(node)
        shutil.rmtree(root, ignore_errors=True)


def _reproduce(store: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, "--store", str(store), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _records(store: Path) -> dict[str, dict]:
    return {f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text()) for p in store.glob("*/*/stage.json")}


def _rows(file: Path) -> list[tuple]:
    """What an evaluation decides per episode (and the checkpoint's content hash), without times."""
    rows = [json.loads(line) for line in file.read_text().splitlines()]
    return sorted((r["task_id"], r["episode"], r["success"], r["steps"], r["error"], r["policy"]["checkpoint_sha256"])
                  for r in rows)


def _metrics(run: Path) -> list[dict]:
    """The RL run's per-iteration metrics without wall-clock fields."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if "time" not in k and not k.endswith("_s")} for line in lines]


def _results(store: Path, record: dict, directory: str) -> dict:
    """Everything a stage writes deterministically: its result summary and, for evaluations and RL, the episode rows
    and the per-iteration metrics."""
    stage_dir = store / directory
    out = {"result": record["result"]}
    if record["kind"] == "eval":
        out["rows"] = _rows(stage_dir / "eval" / "episodes.jsonl")
    if record["kind"] == "rl":
        out["rows"] = _rows(stage_dir / "run" / "eval" / "episodes.jsonl")
        out["metrics"] = _metrics(stage_dir / "run")
    return out


def test_ray_results_equal_the_local_executor_and_a_killed_node_loses_nothing(cluster, tmp_path):
    """(1) The smoke matrix (demos, SFT, SFT evaluation, tgrpo and grpo RL on task 0) dispatched to the two-node
    cluster equals the local executor's run stage by stage (tgrpo: the local run trains that method only).
    (2) The RL stages rerun from the finished SFT: the worker node is killed (its raylet, SIGKILL) while its RL stage
    runs; the stage is retried on the head, nothing finished is redone, the run completes."""
    local, distributed = tmp_path / "local", tmp_path / "store"
    _reproduce(distributed, "--methods", "tgrpo")
    distributed.rename(local)  # both runs write under the same path: checkpoints record their directories
    _reproduce(distributed, "--executor", "ray", "--address", cluster.address)
    local_records, ray_records = _records(local), _records(distributed)
    assert len(ray_records) == 5 and all(r["status"] == "done" for r in ray_records.values())
    assert set(local_records) < set(ray_records)  # same keys: same directories in both stores
    for directory, record in local_records.items():
        assert _results(distributed, ray_records[directory], directory) == _results(local, record, directory), \
            directory
    assert len({r["attempts"][-1]["node_id"] for r in ray_records.values()}) == 2  # both nodes ran stages

    killed_store = tmp_path / "killed"
    shutil.copytree(distributed, killed_store, ignore=shutil.ignore_patterns("rl", "libero_object-smoke"))
    before = _records(killed_store)
    driver = subprocess.Popen([*CLI, "--store", str(killed_store), "--executor", "ray", "--address", cluster.address],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim = _wait_for_stage_on(killed_store, cluster.worker, driver)
    time.sleep(5)  # into the stage: its directory holds a partial run
    os.kill(cluster.raylet_pid(cluster.worker), signal.SIGKILL)
    output, _ = driver.communicate(timeout=1800)
    assert driver.returncode == 0, output[-3000:]
    after = _records(killed_store)
    assert all(r["status"] == "done" for r in after.values()) and len(after) == 5
    for directory, record in before.items():
        assert after[directory]["finished_utc"] == record["finished_utc"], directory  # not redone
    attempts = after[victim]["attempts"]
    assert len(attempts) == 2 and attempts[0]["node_id"] != attempts[1]["node_id"]  # retried on the head
    assert (killed_store / "libero_object-smoke" / "report.md").exists()


def _wait_for_stage_on(store: Path, node: subprocess.Popen, driver: subprocess.Popen) -> str:
    """The store directory of the first RL stage whose latest attempt runs in a process of `node`."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and driver.poll() is None:
        for attempts in store.glob("rl/*/attempts.jsonl"):
            lines = attempts.read_text().splitlines()
            if lines and json.loads(lines[-1])["pid"] in _session_pids(node.pid):
                return f"rl/{attempts.parent.name}"
        time.sleep(0.5)
    raise AssertionError(f"no RL stage started on the worker node; driver: {driver.poll()}")


def test_a_stage_failing_on_its_own_is_recorded_not_retried_and_the_rest_runs(cluster, tmp_path):
    """Stages a -> b -> c and a -> d on the cluster, b raising: b failed after one attempt, c blocked, d done."""
    from bench.reproduce.ray_executor import connect, execute_ray
    from bench.reproduce.store import RunStore, Stage

    a = Stage("demos", "a", {"n": 1})
    b = Stage("sft", "b", {"n": 2}, (a,))
    plan = [a, b, Stage("rl", "c", {"n": 3}, (b,)), Stage("eval", "d", {"n": 4}, (a,))]

    def runner(stage, directory, inputs, progress):  # pickled by value: the nodes run this very function
        if stage.name == "b":
            raise RuntimeError("out of demos")
        return {"inputs": sorted(inputs)}

    store = RunStore(tmp_path)
    outcome = execute_ray(connect(cluster.address), plan, store, progress=False, runner=runner)
    assert [s.name for s in outcome.done] == ["a", "d"]
    assert [(s.name, e) for s, e in outcome.failed] == [("b", "RuntimeError: out of demos")]
    assert [s.name for s in outcome.blocked] == ["c"]
    failed = store.record(b)
    assert failed["status"] == "failed" and len(failed["attempts"]) == 1 and failed["attempts"][0]["executor"] == "ray"
    assert "out of demos" in (store.path(b) / "error.log").read_text()
    assert store.record(plan[3])["result"] == {"inputs": ["demos"]} and store.record(plan[2]) is None


def test_a_stage_no_node_can_hold_is_refused_with_one_line(cluster, tmp_path):
    """The small profile's demos ask for 2 CPUs; the nodes have 1: exit 2 before anything runs, no traceback."""
    proc = subprocess.run([*CLI[:-2], "small", "--store", str(tmp_path), "--executor", "ray", "--address",
                           cluster.address], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    lines = [ln for ln in proc.stderr.splitlines() if "robosuite" not in ln.lower()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no node of the Ray cluster can run demos" in lines[0] and "2 CPU" in lines[0]
    assert not list(tmp_path.iterdir())
