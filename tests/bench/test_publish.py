"""Publishing a report: the report, its stages' rows (no checkpoints) and COMMAND.md; the comparison re-derived from
the published rows alone gives the report's numbers; refusals of an unfinished stage or a missing report."""

from __future__ import annotations

import json
import shlex

import pytest

from bench.cli import main as cli_main
from bench.reproduce.plan import build_plan
from bench.reproduce.publish import PublishError, publish
from bench.reproduce.report import write_report
from bench.reproduce.store import RunStore
from tests.bench.test_compare import _eval_dir, _run_dir


def _finished_store(tmp_path):
    """Task 1: SFT 10/50 (evaluation stage), TGRPO seed 0 30/50 (RL stage with a checkpoint that must not travel)."""
    plan = build_plan("libero_object", "small", ("tgrpo",), (1,), (0,))
    store = RunStore(tmp_path / "store")
    sft_eval, rl = (next(s for s in plan if s.kind == kind) for kind in ("eval", "rl"))
    for stage in (sft_eval, rl):
        store.begin(stage, {})
    _eval_dir(store.path(sft_eval) / "eval", {1: (10, 50)}, profile="small")
    run = _run_dir(store.path(rl) / "run", "tgrpo", {1: (30, 50)}, suite="libero_object")
    (run / "metrics.jsonl").write_text(json.dumps({"iteration": 1, "rollout/success_rate": 0.5}) + "\n")
    (run / "policy").mkdir()
    (run / "policy" / "weights.safetensors").write_bytes(b"\0" * 64)
    for stage in (sft_eval, rl):
        store.finish(stage, {}, 60.0)
    write_report(plan, store, store.root / "libero_object-small", {"profile": "small"})
    return store, plan


def test_published_rows_re_derive_the_report(tmp_path, monkeypatch):
    store, _ = _finished_store(tmp_path)
    monkeypatch.chdir(tmp_path)
    specs = publish(store, "libero_object-small", tmp_path / "docs" / "object", "make reproduce SUITE=object",
                    ours=None)
    published = tmp_path / "docs" / "stages"
    assert sorted(p.name for p in (tmp_path / "docs" / "object").iterdir()) == ["COMMAND.md", "report.json",
                                                                                "report.md"]
    assert not list(published.rglob("*.safetensors")) and len(list(published.rglob("stage.json"))) == 2
    command = (tmp_path / "docs" / "object" / "COMMAND.md").read_text()
    assert "make reproduce SUITE=object" in command and all(spec in command for spec in specs)
    assert cli_main(["compare", "--profile", "small", "--out", str(tmp_path / "re"), *specs]) == 0
    cells = {(c["method"], c["successes"], c["episodes"]) for c in
             json.loads((tmp_path / "re" / "compare.json").read_text())["cells"]}
    assert cells == {("sft", 10, 50), ("tgrpo", 30, 50)}  # the report's rows, from the published files alone
    assert shlex.split(command.split("```bash\n")[2].split("```")[0].replace("\\\n", " "))[-2:] == specs


def test_refuses_a_missing_report_and_an_unfinished_stage(tmp_path):
    store, plan = _finished_store(tmp_path)
    with pytest.raises(PublishError, match="holds no report.json"):
        publish(store, "libero_10-small", tmp_path / "out", "x")
    rl = next(s for s in plan if s.kind == "rl")
    store.fail(rl, "killed", 1.0)
    with pytest.raises(PublishError, match="stage not finished"):
        publish(store, "libero_object-small", tmp_path / "out", "x")
