"""`tgrpo-bench plot`: smoothed curves against hand-computed means, a real PNG, and clear errors."""

import json

import numpy as np
import pytest

from bench.cli import main
from bench.learning_curves import curves, moving_average


def _run(tmp_path, name, values, method="tgrpo"):
    run = tmp_path / name
    run.mkdir()
    rows = [{"iteration": i + 1, "rollout/success_rate": v} for i, v in enumerate(values)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"iteration\": 9, \"rollo")
    (run / "config.json").write_text(json.dumps({"method": method, "suite": "libero_object", "task_id": 1}))
    return run


def test_moving_average_by_hand():
    np.testing.assert_allclose(moving_average(np.array([0.0, 1.0, 1.0, 0.0, 1.0]), 2), [0.0, 0.5, 1.0, 0.5, 0.5])
    np.testing.assert_allclose(moving_average(np.array([4.0, 2.0]), 5), [4.0, 3.0])


def test_plot_writes_a_png_with_one_curve_per_run(tmp_path, capsys):
    a = _run(tmp_path, "a", [0.0, 0.5, 1.0])
    b = _run(tmp_path, "b", [1.0, 1.0, 0.0], method="grpo")
    out = tmp_path / "curves" / "success.png"
    assert main(["plot", "--runs", str(a), str(b), "--smooth", "2", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = curves([a, b], "rollout/success_rate", 2)  # the torn last line is skipped
    np.testing.assert_allclose(data["tgrpo libero_object task 1 (a)"][1], [0.0, 0.25, 0.75])
    np.testing.assert_allclose(data["grpo libero_object task 1 (b)"][1], [1.0, 1.0, 0.5])
    assert "grpo libero_object task 1 (b): 3 iterations" in capsys.readouterr().out


def test_two_runs_of_one_method_and_task_are_two_curves(tmp_path):
    a, b = _run(tmp_path, "t1_seed0", [0.0, 1.0]), _run(tmp_path, "t1_seed1", [1.0, 1.0])
    assert len(curves([a, b], "rollout/success_rate", 1)) == 2


@pytest.mark.parametrize("extra,message", [(["--metric", "nope"], "no metric 'nope'"), (["--smooth", "0"], "--smooth")])
def test_bad_input_exits_2(tmp_path, capsys, extra, message):
    run = _run(tmp_path, "a", [0.0, 1.0])
    assert main(["plot", "--runs", str(run), "--out", str(tmp_path / "x.png"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_not_a_run_directory_exits_2(tmp_path, capsys):
    assert main(["plot", "--runs", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_unwritable_output_exits_2(tmp_path, capsys):
    run = _run(tmp_path, "a", [0.0, 1.0])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["plot", "--runs", str(run), "--out", str(blocker / "sub" / "x.png")]) == 2
    assert "cannot write" in capsys.readouterr().err
