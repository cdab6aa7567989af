"""The reproduction harness's plan and store: keys follow inputs, reruns skip what is done, failures stay
isolated, corrupt records are refused with one line. (The pipeline itself on the real simulator: test-slow.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from bench.reproduce import plan as plan_module
from bench.reproduce import store as store_module
from bench.reproduce.execute import execute
from bench.reproduce.plan import build_plan
from bench.reproduce.report import stage_time
from bench.reproduce.store import RunStore, Stage, StoreError

CLI = [sys.executable, "-m", "bench.cli", "reproduce"]


def _keys(plan):
    return {f"{s.kind}/{s.name}": s.key for s in plan}


def test_plan_has_every_stage_and_stable_keys():
    plan = build_plan("libero_10", "smoke", ("tgrpo", "grpo"), (0, 3), (0, 1))
    kinds = [s.kind for s in plan]
    assert kinds == ["demos", "sft", "eval", "eval"] + ["rl"] * 8  # SFT eval per task; 2 methods x 2 tasks x 2 seeds
    assert _keys(plan) == _keys(build_plan("libero_10", "smoke", ("tgrpo", "grpo"), (0, 3), (0, 1)))
    assert len(set(_keys(plan).values())) == len(plan)


def test_rl_stages_run_seed_by_seed_with_every_method_beside_each_task():
    """A run cut short holds paired comparisons (both methods on one task and seed) before it holds a second seed."""
    rl = [s for s in build_plan("libero_object", "smoke", ("tgrpo", "grpo"), (1, 6), (0, 1)) if s.kind == "rl"]
    assert [(s.config["seed"], s.config["task"], s.config["method"]) for s in rl] == [
        (0, 1, "tgrpo"), (0, 1, "grpo"), (0, 6, "tgrpo"), (0, 6, "grpo"),
        (1, 1, "tgrpo"), (1, 1, "grpo"), (1, 6, "tgrpo"), (1, 6, "grpo")]


def test_preference_methods_get_one_training_and_evaluation_stage_each():
    plan = build_plan("libero_object", "smoke", ("dpo", "grape"), (1, 6), (0,))
    rl = [s for s in plan if s.kind == "rl"]
    assert [s.kind for s in plan[:3]] == ["demos", "sft", "eval"]  # the SFT baseline's evaluation too
    assert [(s.config["method"], s.config["task"]) for s in rl] == [("dpo", 1), ("grape", 1), ("dpo", 6), ("grape", 6)]
    assert "tgrpo/preference_losses.py" in rl[0].code


def test_a_changed_setting_changes_only_what_depends_on_it(monkeypatch):
    before = _keys(build_plan("libero_object", "smoke"))
    settings = plan_module.PROFILE_SETTINGS["smoke"]
    monkeypatch.setitem(plan_module.PROFILE_SETTINGS, "smoke", replace(settings, sft_epochs=3))
    after = _keys(build_plan("libero_object", "smoke"))
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == ["eval/sft-libero_object-t0-smoke", "rl/grpo-libero_object-t0-s0-smoke",
                       "rl/tgrpo-libero_object-t0-s0-smoke", "sft/libero_object-smoke"]  # demos kept


def test_a_code_change_changes_the_key(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "REPO_ROOT", tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    first = Stage("sft", "s", {"a": 1}, code=("pkg",)).key
    assert Stage("sft", "s", {"a": 1}, code=("pkg",)).key == first
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert Stage("sft", "s", {"a": 1}, code=("pkg",)).key != first


def _chain():
    a = Stage("demos", "a", {"n": 1})
    b = Stage("sft", "b", {"n": 2}, (a,))
    c = Stage("rl", "c", {"n": 3}, (b,))
    d = Stage("eval", "d", {"n": 4}, (a,))
    return [a, b, c, d]


def test_failure_is_recorded_dependents_blocked_and_the_rest_runs(tmp_path):
    store, plan, calls = RunStore(tmp_path), _chain(), []

    def runner(stage, directory, inputs, progress):
        calls.append(stage.name)
        if stage.name == "b":
            raise RuntimeError("out of demos")
        return {"ok": stage.name}

    outcome = execute(plan, store, progress=False, runner=runner)
    assert calls == ["a", "b", "d"] and not outcome.ok
    assert [s.name for s, _ in outcome.failed] == ["b"] and [s.name for s in outcome.blocked] == ["c"]
    record = store.record(plan[1])
    assert record["status"] == "failed" and record["error"] == "RuntimeError: out of demos"
    assert "out of demos" in (store.path(plan[1]) / "error.log").read_text()
    calls.clear()
    outcome = execute(plan, store, progress=False, runner=lambda s, d, i, p: calls.append(s.name) or {})
    assert calls == ["b", "c"] and outcome.ok  # finished stages are never redone
    assert [s.name for s in outcome.skipped] == ["a", "d"]


def test_the_local_executor_records_each_attempt_and_never_imports_ray(tmp_path):
    """A stage run twice (failed, then rerun) carries both attempts; the local path leaves Ray unimported."""
    code = f"""
import json, os, sys
from bench.reproduce.execute import execute
from bench.reproduce.store import RunStore, Stage
store, stage = RunStore({str(tmp_path)!r}), Stage("demos", "a", {{}})
def fail(s, d, i, p):
    raise RuntimeError("no")
execute([stage], store, progress=False, runner=fail)
execute([stage], store, progress=False, runner=lambda s, d, i, p: {{}})
print(json.dumps([store.record(stage)["attempts"], os.getpid(), "ray" in sys.modules]))
"""
    attempts, pid, imported = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                        check=True).stdout)
    assert [(a["executor"], a["pid"]) for a in attempts] == [("local", pid)] * 2 and not imported


def test_every_attempt_counts_in_the_stage_wall_clock(tmp_path, monkeypatch):
    """A killed attempt (its record left running) counts up to its last heartbeat, a failed one its recorded time,
    and the report's stage hours add them to the finishing attempt's."""
    monkeypatch.setattr(store_module, "BEAT_S", 0.02)
    store, stage = RunStore(tmp_path), Stage("demos", "a", {})

    def killed(s, d, i, p):
        time.sleep(0.3)
        raise KeyboardInterrupt  # as a session's end: no end time recorded

    def failed(s, d, i, p):
        time.sleep(0.2)
        raise RuntimeError("no")

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        execute([stage], store, progress=False, runner=killed)
    assert store.record(stage)["status"] == "running"
    execute([stage], store, progress=False, runner=failed)
    assert store.record(stage)["earlier_wall_s"] >= 0.2  # the killed attempt's beats (every 0.02 s of its 0.3 s)
    execute([stage], store, progress=False, runner=lambda s, d, i, p: {})
    elapsed = time.monotonic() - t0
    record = store.record(stage)
    assert record["status"] == "done" and len(record["attempts"]) == 3
    assert 0.4 <= record["earlier_wall_s"] <= elapsed + 0.1  # 0.3 s killed (to a beat) + 0.2 s failed; rounded to 0.1
    store._write(stage, {**record, "wall_s": 1800.0, "earlier_wall_s": 5400.0})  # hand-made: 0.5 h + 1.5 h
    assert stage_time([stage], store) == {"demos": 2.0}


def test_a_stage_another_process_runs_is_left_alone_and_its_dependents_wait(tmp_path):
    """A second process holds stage b's lock (as a second `make reproduce` on the same store would): this run leaves
    b's directory unwritten, blocks c behind it, runs the rest; once the holder exits, a rerun runs b and c."""
    store, plan, calls = RunStore(tmp_path), _chain(), []
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from bench.reproduce.store import RunStore
from tests.bench.test_reproduce import _chain
with RunStore({str(tmp_path)!r}).claim(_chain()[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    runner = lambda stage, directory, inputs, progress: calls.append(stage.name) or {}
    outcome = execute(plan, store, progress=False, runner=runner)
    assert calls == ["a", "d"] and [s.name for s in outcome.blocked] == ["c"]
    assert "another process is running this stage" in outcome.failed[0][1]
    assert store.record(plan[1]) is None and not (store.path(plan[1]) / "attempts.jsonl").exists()
    holder.communicate("\n", timeout=30)
    assert execute(plan, store, progress=False, runner=runner).ok and calls == ["a", "d", "b", "c"]


def _timed_runner(stage, directory, inputs, progress):
    """A module-level runner (jobs > 1 spawns processes): notes when it ran; stage b's process dies, e's raises."""
    import os
    import time

    start = time.time()
    time.sleep(1.0)
    if stage.name == "b":
        os._exit(3)
    if stage.name == "e":
        raise RuntimeError("out of demos")
    (directory / "ran.json").write_text(json.dumps([start, time.time(), os.getpid()]))
    return {}


def test_jobs_run_independent_stages_side_by_side_and_isolate_a_dead_one(tmp_path):
    """jobs=2 on a -> (b -> c, d, e): d runs beside b in another process; b's process dies (exit 3) and is recorded
    as failed with c blocked; e's exception is recorded as in the sequential walk; a runs before everything."""
    a = Stage("demos", "a", {"n": 1})
    b, d, e = Stage("sft", "b", {"n": 2}, (a,)), Stage("eval", "d", {"n": 4}, (a,)), Stage("eval", "e", {"n": 5}, (a,))
    c = Stage("rl", "c", {"n": 3}, (b,))
    store = RunStore(tmp_path)
    outcome = execute([a, b, c, d, e], store, progress=False, runner=_timed_runner, jobs=2)
    assert [s.name for s in outcome.done] == ["a", "d"] and [s.name for s in outcome.blocked] == ["c"]
    assert {s.name: err for s, err in outcome.failed} == {
        "b": "the stage process ended without a result (exit code 3)", "e": "RuntimeError: out of demos"}
    assert store.record(b)["status"] == "failed" and store.record(e)["status"] == "failed"
    ran = {s.name: json.loads((store.path(s) / "ran.json").read_text()) for s in (a, d)}
    attempts_b = [json.loads(x) for x in (store.path(b) / "attempts.jsonl").read_text().splitlines()]
    assert len({ran["a"][2], ran["d"][2], attempts_b[0]["pid"]}) == 3  # one process per stage
    started_b = (store.path(b) / "attempts.jsonl").stat().st_mtime
    assert ran["d"][0] < started_b + 0.9 and started_b < ran["d"][1]  # b and d overlapped
    assert ran["a"][1] <= min(ran["d"][0], started_b)  # both waited for a


def _sleeping_runner(stage, directory, inputs, progress):
    import os
    import time

    (directory / "pid").write_text(str(os.getpid()))
    time.sleep(120)
    return {}


def test_terminating_a_side_by_side_run_terminates_its_stage_processes(tmp_path):
    """SIGTERM to the walking process (a session ending) ends both running stage processes too: no orphan keeps
    writing the store, and the records stay `running`, to resume on a rerun."""
    import os
    import signal
    import time

    code = f"""
from bench.reproduce.execute import execute
from bench.reproduce.store import RunStore, Stage
from tests.bench.test_reproduce import _sleeping_runner
execute([Stage("eval", "x", {{}}), Stage("eval", "y", {{}})], RunStore({str(tmp_path)!r}), progress=False,
        runner=_sleeping_runner, jobs=2)
"""
    walker = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while len(pids := list(tmp_path.rglob("pid"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    stage_pids = [int(p.read_text()) for p in pids]
    assert len(stage_pids) == 2
    walker.send_signal(signal.SIGTERM)
    assert walker.wait(timeout=30) == 128 + signal.SIGTERM
    for pid in stage_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert {json.loads(p.read_text())["status"] for p in tmp_path.rglob("stage.json")} == {"running"}


def test_inputs_reach_the_runner_as_their_directories(tmp_path):
    store, plan, seen = RunStore(tmp_path), _chain(), {}
    execute(plan, store, progress=False, runner=lambda s, d, i, p: seen.setdefault(s.name, i) and {})
    assert seen["c"] == {"sft": store.path(plan[1])} and seen["a"] == {}


@pytest.mark.parametrize("content", ["{not json", "[]", '{"key": "other", "status": "done"}'])
def test_a_corrupt_record_is_refused(tmp_path, content):
    store, plan = RunStore(tmp_path), _chain()
    store.path(plan[0]).mkdir(parents=True)
    (store.path(plan[0]) / "stage.json").write_text(content)
    with pytest.raises(StoreError, match="delete .* to recompute that stage"):
        store.is_done(plan[0])


def test_cli_refuses_bad_input_with_one_line(tmp_path):
    cases = [["--suite", "nope"], ["--suite", "object", "--methods", "nope"], ["--suite", "object", "--profile", "x"],
             ["--suite", "object", "--profile", "paper"], ["--suite", "object", "--tasks", "10"],
             ["--suite", "object", "--seeds", "-1"], ["--suite", "object", "--setting", "a1=x"],
             ["--suite", "object", "--setting", "bogus=1"], ["--suite", "object", "--setting", "seed=3"],
             ["--suite", "object", "--setting", "a1"], ["--suite", "object", "--setting", "loss.clip_eps=1.5"],
             ["--suite", "object", "--setting", "stop_rule=never"], ["--suite", "object", "--report-only"],
             ["--suite", "object", "--jobs", "0"], ["--suite", "object", "--jobs", "2", "--executor", "ray"],
             ["--suite", "object", "--tasks", "auto:0"], ["--suite", "object", "--tasks", "1,x"],
             ["--suite", "object", "--tasks", "auto"],  # the smoke SFT learns only the RL tasks: no rule
             ["--suite", "object", "--report", "../elsewhere"], ["--suite", "object", "--report", ""]]
    for args in cases:
        proc = subprocess.run([*CLI, *args, "--store", str(tmp_path), "--dry-run"], capture_output=True, text=True,
                              check=False)
        lines = [ln for ln in proc.stderr.splitlines() if "robosuite" not in ln.lower()]
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)


def test_an_unreachable_ray_cluster_is_refused_with_one_line(tmp_path):
    """Port 1 on 127.0.0.1 refuses connections: exit 2 before any stage (one line also when Ray is not installed)."""
    proc = subprocess.run([*CLI, "--suite", "object", "--store", str(tmp_path), "--executor", "ray", "--address",
                           "127.0.0.1:1"], capture_output=True, text=True, check=False, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if "robosuite" not in ln.lower()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "Ray" in lines[0] and not list(tmp_path.iterdir())


def test_dry_run_shows_cached_stages(tmp_path):
    plan = build_plan("libero_object", "smoke")
    store = RunStore(tmp_path)
    store.begin(plan[0], {})
    store.finish(plan[0], {}, 1.0)
    proc = subprocess.run([*CLI, "--suite", "object", "--store", str(tmp_path), "--dry-run"], capture_output=True,
                          text=True, check=True)
    demos_line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("| demos"))
    assert "cached" in demos_line and json.loads((store.path(plan[0]) / "stage.json").read_text())["status"] == "done"


@pytest.mark.slow
@pytest.mark.libero
def test_smoke_pipeline_killed_mid_stage_resumes_without_redoing_finished_stages(tmp_path):
    """The real pipeline (simulator, expert demos, SFT, RL): SIGTERM while the first RL stage runs, rerun, done."""
    import signal
    import time

    args = [*CLI, "--suite", "object", "--store", str(tmp_path), "--methods", "tgrpo", "--no-progress"]
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 900
    rl_dir = None
    while time.monotonic() < deadline and proc.poll() is None:
        rl_dir = next(iter((tmp_path / "rl").glob("*/stage.json")), None) if (tmp_path / "rl").exists() else None
        if rl_dir is not None:
            break
        time.sleep(1)
    assert rl_dir is not None, (tmp_path / "first.log").read_text()[-2000:]
    time.sleep(5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130, (tmp_path / "first.log").read_text()[-2000:]
    finished = {p.parent.name: json.loads(p.read_text()) for p in tmp_path.glob("*/*/stage.json")}
    assert json.loads(rl_dir.read_text())["status"] == "running"
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    after = {p.parent.name: json.loads(p.read_text()) for p in tmp_path.glob("*/*/stage.json")}
    for name, record in finished.items():
        if record["status"] == "done":
            assert after[name]["finished_utc"] == record["finished_utc"], name  # not redone
    assert all(r["status"] == "done" for r in after.values()) and len(after) == 4
    assert (tmp_path / "libero_object-smoke" / "report.md").exists()


def test_report_only_runs_nothing_and_lists_what_is_unfinished(tmp_path):
    """One SFT evaluation finished by hand (3 of 50): its row is reported with the Wilson interval of 3/50
    ([2.1%, 16.2%], Wilson by hand), every other evaluation and RL stage is listed as unfinished, nothing runs."""
    plan = build_plan("libero_object", "smoke", ("tgrpo",), (0,), (0,))
    store = RunStore(tmp_path)
    sft_eval = next(s for s in plan if s.kind == "eval")
    store.begin(sft_eval, {})
    (store.path(sft_eval) / "eval").mkdir()
    (store.path(sft_eval) / "eval" / "summary.json").write_text(json.dumps({"tasks": [
        {"suite": "libero_object", "task_id": 0, "successes": 3, "episodes": 50, "success_rate": 0.06}]}))
    store.finish(sft_eval, {}, 1800.0)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = subprocess.run([*CLI, "--suite", "object", "--methods", "tgrpo", "--store", str(tmp_path), "--report-only",
                           "--no-progress"], capture_output=True, text=True, check=False)
    report = json.loads((tmp_path / "libero_object-smoke" / "report.json").read_text())
    rl = next(s for s in plan if s.kind == "rl")
    assert [(r["method"], r["successes"], r["episodes"]) for r in report["rows"]] == [("sft", 3, 50)]
    assert [round(100 * x, 1) for x in report["rows"][0]["wilson95"]] == [2.1, 16.2]
    assert report["unfinished"] == [rl.dir_name] and report["stage_hours"] == {"eval": 0.5}
    proc = subprocess.run([*CLI, "--suite", "object", "--methods", "tgrpo", "--store", str(tmp_path), "--report-only",
                           "--report", "t0_check"], capture_output=True, text=True, check=False)
    assert json.loads((tmp_path / "t0_check" / "report.json").read_text())["rows"] == report["rows"], proc.stderr
    assert "Unfinished: 1 of 2" in (tmp_path / "libero_object-smoke" / "report.md").read_text()
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                   if not {"libero_object-smoke", "t0_check"} & set(p.parts))
    assert after == before, "report-only must run no stage"
    assert "Traceback" not in proc.stderr


def test_report_summarises_each_finished_rl_run_from_its_metrics(tmp_path):
    """12 iterations whose success rates are 0 (first 6) then 1 (last 6), clip fraction 0.1 on even iterations and 0.3
    on odd ones: train success 0.4 over the first 10 and 0.6 over the last 10, mean clip fraction 0.2 (by hand); a
    metric the run never logs is None."""
    from bench.reproduce.report import write_report

    plan = build_plan("libero_object", "smoke", ("tgrpo",), (3,), (1,))
    rl = next(s for s in plan if s.kind == "rl")
    store = RunStore(tmp_path)
    store.begin(rl, {})
    run = store.path(rl) / "run"
    (run / "eval").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(
        {"iteration": i, "rollout/success_rate": float(i >= 6), "loss/clip_frac": 0.1 if i % 2 == 0 else 0.3,
         "loss/kl_mean": 0.01}) + "\n" for i in range(12)))
    (run / "eval" / "summary.json").write_text(json.dumps({"tasks": [
        {"suite": "libero_object", "task_id": 3, "successes": 2, "episodes": 2, "success_rate": 1.0}]}))
    store.finish(rl, {}, 36.0)
    markdown = write_report(plan, store, tmp_path / "out", {})
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["training"] == [{"task": 3, "method": "tgrpo", "setting": "default", "seed": 1, "iterations": 12,
                                   "train_success_first": 0.4, "train_success_last": 0.6, "loss/clip_frac": 0.2,
                                   "loss/kl_mean": 0.01, "loss/ratio_max": None}]
    assert "0.400 -> 0.600" in markdown and report["stage_hours"] == {"rl": 0.01}
