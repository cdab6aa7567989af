"""`--policy openvla` through the CLI and the harness on a synthetic checkpoint in the released layout: evaluation
end to end, RL training, the paper profile's plan, and one-line refusals (exit 2) for bad input."""

import json
import signal
import subprocess
import sys

import pytest

from bench.reproduce.plan import build_plan

CLI = [sys.executable, "-m", "bench.cli"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from tgrpo.policies.openvla.synthetic import write_synthetic_checkpoint

    return write_synthetic_checkpoint(tmp_path_factory.mktemp("openvla") / "tiny")


def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], check=False, capture_output=True, text=True, timeout=timeout)


def _main(argv: list[str]) -> int:
    """`tgrpo-bench ARGV` in this process (no interpreter start), SIGTERM's handler restored afterwards."""
    from bench.cli import main

    handler = signal.getsignal(signal.SIGTERM)
    try:
        return main(argv)
    finally:
        signal.signal(signal.SIGTERM, handler)


def _one_line_exit_2(capsys, argv: list[str], message: str) -> None:
    """`tgrpo-bench ARGV` exits 2 with one stderr line containing `message`."""
    code = _main(argv)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "robosuite" not in ln.lower()]
    assert code == 2 and len(lines) == 1, lines
    assert message in lines[0]


@pytest.mark.parametrize(("extra", "message"), [
    (["--unnorm-key", "bridge_orig"], ("unknown --unnorm-key 'bridge_orig' for this checkpoint; valid: "
                                       "libero_10_no_noops, libero_goal_no_noops")),
    (["--checkpoint", "/nonexistent/openvla"], "no OpenVLA checkpoint directory at /nonexistent/openvla"),
    (["--obs", "state"], "policy 'openvla' reads camera images: use --obs image"),
])
def test_eval_refuses_a_bad_checkpoint_or_key_in_one_line(checkpoint, tmp_path, capsys, extra, message):
    args = ["eval", "--policy", "openvla", "--checkpoint", str(checkpoint), "--suite", "object", "--tasks", "0",
            "--episodes", "1", "--out", str(tmp_path / "out"), *extra]
    _one_line_exit_2(capsys, args, message)


def test_eval_without_checkpoint_and_train_paper_without_init_are_refused(tmp_path, capsys):
    _one_line_exit_2(capsys, ["eval", "--policy", "openvla", "--suite", "object", "--out", str(tmp_path)],
                     "policy 'openvla' needs --checkpoint DIR")
    _one_line_exit_2(capsys, ["train", "--method", "tgrpo", "--suite", "object", "--task", "0", "--profile", "paper"],
                     "policy 'openvla' needs --init-checkpoint DIR")


@pytest.mark.slow
@pytest.mark.libero
def test_eval_openvla_one_episode(checkpoint, tmp_path):
    out = tmp_path / "eval"
    proc = _run("eval", "--policy", "openvla", "--checkpoint", str(checkpoint), "--unnorm-key", "libero_object",
                "--suite", "object", "--tasks", "0", "--episodes", "1", "--workers", "1", "--out", str(out),
                "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads((out / "run.json").read_text())
    assert run["policy"]["name"] == "openvla" and run["policy"]["unnorm_key"] == "libero_object_no_noops"
    assert run["obs"]["center_crop"] is True  # OpenVLA's script default for this policy
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["error"] is None


@pytest.mark.slow
@pytest.mark.libero
def test_train_openvla_one_iteration(checkpoint, tmp_path):
    out = tmp_path / "rl"
    proc = _run("train", "--method", "grpo", "--suite", "object", "--task", "0", "--profile", "smoke", "--policy",
                "openvla", "--init-checkpoint", str(checkpoint), "--iterations", "1", "--group-size", "2",
                "--no-eval", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["policy"] == "openvla"
    assert (out / "policy" / "model.safetensors.index.json").exists()


def test_paper_plan_needs_a_checkpoint_and_has_no_demo_or_sft_stage(checkpoint):
    with pytest.raises(ValueError, match="starts from a released OpenVLA fine-tune: give --checkpoint DIR"):
        build_plan("libero_object", "paper")
    plan = build_plan("libero_object", "paper", tasks=(0, 1), checkpoint=checkpoint)
    assert [s.kind for s in plan] == ["eval"] * 2 + ["rl"] * 4  # one evaluation per task; tgrpo and grpo per task
    assert all(not s.inputs and s.config["checkpoint"] == str(checkpoint) for s in plan)
    assert plan[0].config["obs"] == "image" and plan[0].config["policy"] == "openvla"
    assert any("tgrpo/policies/openvla" in s.code for s in plan) and not any("tgrpo/policies/tiny.py" in s.code
                                                                             for s in plan)
    swept = build_plan("libero_object", "paper", ("grpo",), (0,), settings=({"a1": 0.1},), checkpoint=checkpoint)
    assert [s.name for s in swept] == ["sft-libero_object-t0-paper", "grpo-libero_object-t0-s0-paper-a1=0.1"]


def test_reproduce_paper_dry_run(checkpoint, tmp_path, capsys):
    code = _main(["reproduce", "--suite", "object", "--profile", "paper", "--checkpoint", str(checkpoint), "--tasks",
                 "0", "--store", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| eval" in out and "| rl" in out and "| demos" not in out
    _one_line_exit_2(capsys, ["reproduce", "--suite", "object", "--profile", "paper", "--store", str(tmp_path),
                              "--dry-run"], "give --checkpoint DIR")


@pytest.mark.slow
@pytest.mark.libero
def test_paper_evaluation_stage_runs_the_checkpoint(checkpoint, tmp_path):
    """The paper plan's first stage (the released fine-tune's evaluation), cut to one episode of one task."""
    from bench.reproduce.stages import run_stage
    from bench.reproduce.store import Stage

    planned = build_plan("libero_object", "paper", tasks=(0,), checkpoint=checkpoint)[0]
    stage = Stage(planned.kind, planned.name, {**planned.config, "episodes": 1}, planned.inputs, planned.code)
    result = run_stage(stage, tmp_path, {}, progress=False)
    assert result["suites"]["libero_object"]["episodes"] == 1
    run = json.loads((tmp_path / "eval" / "run.json").read_text())
    assert run["policy"]["name"] == "openvla" and run["obs"]["center_crop"] is True
