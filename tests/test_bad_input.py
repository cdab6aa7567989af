"""Hostile and corrupt input through the real CLI: one line on stderr, exit code 2, nothing written, nothing lost.

Every case runs ``python -m bench.cli ...`` in a subprocess whose working directory is a fresh temporary folder
(default output paths such as results/ and runs/ land there), after its setup wrote the bad input into that
folder. The folder's files are compared before and after: a rejected command writes nothing and removes nothing.
No case reaches a simulator: validation comes before any environment is built.

To add a case, append a ``Case`` to ``CASES``: an id, the CLI arguments (paths relative to the folder), a piece of
text the one stderr line must contain, and optionally a setup that writes files into the folder and returns
environment overrides (a value of None removes the variable).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tgrpo.rewards.messages_server import MessagesServer, Reply, message_body
from tests.tgrpo.rewards.test_llm import GOOD

ROOT = Path(__file__).resolve().parents[1]
TEST_KEY = "sk-bad-input-test-0f3a9c1d2e4b5a6978"  # a recognisable fake key: it must appear in no output or file
# Random bytes (fixed, so a failure reproduces): not JSON, not a zip/pickle, not HDF5.
JUNK = hashlib.sha256(b"tgrpo-bench bad input").digest() * 64

Setup = Callable[[Path], dict | None]


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    message: str
    setup: Setup | None = None


def run_cli(args: tuple[str, ...], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`tgrpo-bench ARGS` in cwd with no Anthropic settings inherited; env entries set (None: removed)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=full, check=False,
                          capture_output=True, text=True, timeout=300)


def own_lines(stderr: str) -> list[str]:
    """stderr without robosuite's import-time macro warnings: the LLM path reads the task's BDDL through LIBERO
    before it knows whether it needs the API (the prompt's hash keys the cache), and robosuite warns on import."""
    return [line for line in stderr.splitlines() if not line.startswith("[robosuite WARNING] ")]


def snapshot(root: Path) -> dict[str, str]:
    """Every file (sha256) and folder under root."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


# ----- setups: each writes one kind of bad input


def tiny_checkpoint(directory: Path) -> Path:
    """A real, loadable tiny checkpoint (a small architecture) in directory."""
    from tgrpo.policies.action_tokenizer import NormStats
    from tgrpo.policies.tiny import TinyConfig, TinyPolicy, TinyVLA

    cfg = TinyConfig(state_dim=8, d_model=16, n_layers=1, n_heads=2, words=["pick", "up"])
    stats = NormStats(q01=(-1.0,) * 6 + (0.0,), q99=(1.0,) * 7)
    TinyPolicy(TinyVLA(cfg), cfg, stats).save(directory)
    return directory


def ckpt_junk_weights(root: Path) -> None:
    (tiny_checkpoint(root / "ckpt") / "model.pt").write_bytes(JUNK)


def ckpt_truncated_weights(root: Path) -> None:
    weights = tiny_checkpoint(root / "ckpt") / "model.pt"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def ckpt_policy_json(text: str) -> Setup:
    def setup(root: Path) -> None:
        (tiny_checkpoint(root / "ckpt") / "policy.json").write_text(text)
    return setup


def ckpt_other_architecture(root: Path) -> None:
    """policy.json describes a wider model than model.pt holds."""
    meta_file = tiny_checkpoint(root / "ckpt") / "policy.json"
    meta = json.loads(meta_file.read_text())
    meta["config"]["d_model"] = 32
    meta_file.write_text(json.dumps(meta))


def default_init_checkpoint_junk(root: Path) -> None:
    """The SFT checkpoint `train` falls back to without --init-checkpoint, with junk weights."""
    (tiny_checkpoint(root / "runs" / "sft" / "libero_object_state_smoke" / "best") / "model.pt").write_bytes(JUNK)


def run_to_resume(trainer_pt: Callable[[Path], None]) -> Setup:
    """A valid init checkpoint and a run directory `run` whose last/trainer.pt trainer_pt writes."""
    def setup(root: Path) -> None:
        tiny_checkpoint(root / "ckpt")
        (root / "run" / "last").mkdir(parents=True)
        trainer_pt(root / "run" / "last" / "trainer.pt")
    return setup


class _RunsACommand:
    """Unpickling this runs `touch pwned` (in the command's working folder, which the snapshot covers)."""

    def __reduce__(self):
        return os.system, ("touch pwned",)


def malicious_pickle(path: Path) -> None:
    import torch

    torch.save({"model": {}, "optimizer": _RunsACommand(), "iteration": 1}, path)


def demos_file(data: bytes | None) -> Setup:
    """demos/libero_object/task.hdf5 holding data, or (None) a real HDF5 file cut in half."""
    def setup(root: Path) -> None:
        path = root / "demos" / "libero_object" / "task_demo.hdf5"
        path.parent.mkdir(parents=True)
        if data is not None:
            path.write_bytes(data)
            return
        import h5py
        import numpy as np

        with h5py.File(path, "w") as f:
            f.create_dataset("data/demo_0/actions", data=np.zeros((200, 7)))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return setup


def spec_file(text: str | bytes) -> Setup:
    def setup(root: Path) -> None:
        (root / "specs").mkdir()
        target = root / "specs" / "libero_object.json"
        target.write_bytes(text if isinstance(text, bytes) else text.encode())
    return setup


def api_key(root: Path) -> dict:
    return {"ANTHROPIC_API_KEY": TEST_KEY}


def closed_endpoint(root: Path) -> dict:
    """A key, and a base URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {"ANTHROPIC_API_KEY": TEST_KEY, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}


EVAL = ("eval", "--policy", "zero", "--suite", "object", "--obs", "state")
EVAL_TINY = ("eval", "--policy", "tiny", "--checkpoint", "ckpt", "--suite", "object", "--obs", "state",
             "--tasks", "0", "--episodes", "1")
TRAIN_RL = ("train", "--method", "tgrpo", "--suite", "object", "--task", "0", "--profile", "smoke")
TRAIN_DPO = ("train", "--method", "dpo", "--suite", "object", "--task", "0", "--profile", "smoke")
TRAIN_SFT = ("train", "--method", "sft", "--suite", "object", "--profile", "smoke", "--demos", "demos")
LLM = ("rewards", "generate", "--suite", "object", "--tasks", "0", "--source", "llm", "--cache-dir", "cache",
       "--out", "out", "--max-retries", "0", "--timeout", "5")

CASES = [
    # eval: arguments (rejected before run.json or any env)
    Case("eval-seed-negative", (*EVAL, "--seed", "-1"), "--seed must be >= 0"),
    Case("eval-tasks-empty", (*EVAL, "--tasks", ""), "no task id(s) given"),
    Case("eval-tasks-comma", (*EVAL, "--tasks", ","), "no task id(s) given"),
    Case("eval-tasks-duplicate", (*EVAL, "--tasks", "1,1"), "task id(s) [1] given more than once"),
    Case("eval-episode-ids-empty", (*EVAL, "--episode-ids", ""), "no episode index(es) given"),
    Case("eval-episode-ids-duplicate", (*EVAL, "--episode-ids", "0,0"), "episode index(es) [0] given more than once"),
    Case("eval-temperature-nan", (*EVAL, "--temperature", "nan"), "--temperature must be a finite number"),
    Case("eval-temperature-inf", (*EVAL, "--temperature", "inf"), "--temperature must be a finite number"),
    Case("eval-episodes-51", (*EVAL, "--episodes", "51"), "at most 50 official init states"),
    # eval: a corrupt tiny checkpoint
    Case("eval-ckpt-junk-weights", EVAL_TINY, "ckpt/model.pt does not hold the weights", ckpt_junk_weights),
    Case("eval-ckpt-truncated-weights", EVAL_TINY, "ckpt/model.pt does not hold the weights",
         ckpt_truncated_weights),
    Case("eval-ckpt-policy-json-list", EVAL_TINY, "ckpt/policy.json is not a tiny policy description",
         ckpt_policy_json("[]")),
    Case("eval-ckpt-policy-json-no-norm-stats", EVAL_TINY, "ckpt/policy.json is not a tiny policy description",
         ckpt_policy_json('{"config": {}}')),
    Case("eval-ckpt-policy-json-junk", EVAL_TINY, "ckpt/policy.json is not a tiny policy description",
         ckpt_policy_json("{not json")),
    Case("eval-ckpt-other-architecture", EVAL_TINY, "ckpt/model.pt does not hold the weights",
         ckpt_other_architecture),
    # train: arguments and a corrupt init checkpoint (rejected before the run directory exists)
    Case("train-seed-negative", (*TRAIN_RL, "--seed", "-1"), "--seed must be >= 0"),
    Case("train-temperature-nan", (*TRAIN_RL, "--temperature", "nan"), "--temperature must be a finite number"),
    Case("train-init-ckpt-junk-weights", (*TRAIN_RL, "--init-checkpoint", "ckpt"),
         "ckpt/model.pt does not hold the weights", ckpt_junk_weights),
    Case("train-init-ckpt-policy-json-list", (*TRAIN_RL, "--init-checkpoint", "ckpt"),
         "ckpt/policy.json is not a tiny policy description", ckpt_policy_json("[]")),
    Case("train-default-init-ckpt-junk-weights", TRAIN_RL,
         "runs/sft/libero_object_state_smoke/best/model.pt does not hold the weights", default_init_checkpoint_junk),
    # train: options of the other family (preference methods count rounds; RL has no --rounds)
    Case("train-rl-rounds", (*TRAIN_RL, "--rounds", "2"), "--rounds and --beta are options of the preference methods"),
    Case("train-dpo-iterations", (*TRAIN_DPO, "--iterations", "2", "--init-checkpoint", "ckpt"),
         "method 'dpo' takes no iterations", ckpt_junk_weights),
    Case("train-dpo-beta-nan", (*TRAIN_DPO, "--beta", "nan"), "--beta must be a finite number"),
    Case("train-dpo-beta-zero", (*TRAIN_DPO, "--beta", "0", "--init-checkpoint", "ckpt"), "beta must be > 0",
         ckpt_junk_weights),
    # train: resuming a run directory whose trainer state is hostile or corrupt (never unpickled, nothing written)
    Case("train-resume-malicious-pickle", (*TRAIN_RL, "--init-checkpoint", "ckpt", "--out", "run"),
         "holds objects other than tensors and plain data", run_to_resume(malicious_pickle)),
    Case("train-resume-junk-state", (*TRAIN_RL, "--init-checkpoint", "ckpt", "--out", "run"),
         "is not a trainer state this project wrote", run_to_resume(lambda p: p.write_bytes(JUNK))),
    # train sft: a corrupt demonstrations file
    Case("train-sft-demos-junk", TRAIN_SFT, "task_demo.hdf5 cannot be opened as an HDF5 file", demos_file(JUNK)),
    Case("train-sft-demos-truncated", TRAIN_SFT, "task_demo.hdf5 cannot be opened as an HDF5 file",
         demos_file(None)),
    # rewards validate: a corrupt spec file (rejected before any simulation)
    Case("rewards-validate-specs-junk", ("rewards", "validate", "--suite", "object", "--tasks", "0", "--specs",
                                         "specs"), "is not a readable stage spec file", spec_file(JUNK)),
    Case("rewards-validate-specs-list", ("rewards", "validate", "--suite", "object", "--tasks", "0", "--specs",
                                         "specs"), "is not a stage spec file", spec_file("[]")),
    # rewards generate --source llm: no API to ask
    Case("rewards-llm-no-key", LLM, "ANTHROPIC_API_KEY is not set"),
    Case("rewards-llm-unreachable", LLM, "could not reach the Messages API", closed_endpoint),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path):
    env = case.setup(tmp_path) if case.setup else None
    before = snapshot(tmp_path)
    proc = run_cli(case.args, tmp_path, env)
    lines = own_lines(proc.stderr)
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and case.message in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert TEST_KEY not in proc.stdout + proc.stderr
    assert snapshot(tmp_path) == before


def test_rewards_check_reports_a_corrupt_spec_file_as_invalid(tmp_path):
    """`check` is a report: the corrupt file is one INVALID line (exit 1), not a traceback."""
    spec_file(JUNK)(tmp_path)
    before = snapshot(tmp_path)
    proc = run_cli(("rewards", "check", "--suite", "object", "--specs", "specs"), tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("libero_object: INVALID: "), proc.stdout
    assert "libero_object.json is not a readable stage spec file" in lines[0]
    assert "Traceback" not in proc.stderr
    assert snapshot(tmp_path) == before


def test_llm_answers_that_are_not_messages_are_rejected_per_task_and_the_rest_go_on(tmp_path):
    """HTTP 200 with HTML, with non-JSON, with JSON of the wrong shape: each task is recorded as rejected, the
    next task is still asked, the good answer (task 0, asked last) is written."""
    bad = [Reply(200, "<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"),
           Reply(200, "upstream connect error"),  # claims application/json
           Reply(200, {"type": "message", "content": "not a list of blocks"}),
           Reply(200, [])]
    with MessagesServer([*bad, Reply(200, message_body(json.dumps(GOOD)))]) as srv:
        args = ("rewards", "generate", "--suite", "object", "--tasks", "1,2,3,4,0", "--source", "llm",
                "--model", "claude-x", "--base-url", srv.base_url, "--cache-dir", "cache", "--out", "out",
                "--max-retries", "0")
        proc = run_cli(args, tmp_path, api_key(tmp_path))
        assert len(srv.requests) == 5  # every task was asked
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    failed = [line for line in proc.stderr.splitlines() if ": FAILED: " in line]
    assert [line.split(":")[0] for line in failed] == [f"libero_object/{t}" for t in (1, 2, 3, 4)]
    assert all("answer was rejected: HTTP 200" in line for line in failed), failed
    assert "text/html" in failed[0] and "502 Bad Gateway" in failed[0]
    assert "libero_object/0: 1 sub-plan(s), 4 stages" in proc.stdout
    written = json.loads((tmp_path / "out" / "libero_object.json").read_text())
    assert list(written["tasks"]) == ["0"]
    files = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert TEST_KEY not in proc.stdout + proc.stderr + files
