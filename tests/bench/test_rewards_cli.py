"""`tgrpo-bench rewards`: generate (rules, LLM against a local Messages API server), check, bad input."""

import json
import os
import secrets
import subprocess
import sys

import pytest

from tests.tgrpo.rewards.messages_server import MessagesServer, Reply, message_body
from tests.tgrpo.rewards.test_llm import GOOD
from tgrpo.rewards.schema import SPECS_DIR

CLI = [sys.executable, "-m", "bench.cli", "rewards"]


def _run(*args, env=None, timeout=300):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("ANTHROPIC_BASE_URL", None)
    return subprocess.run([*CLI, *args], check=False, capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def test_generate_rules_reproduces_the_committed_files(tmp_path):
    proc = _run("generate", "--suite", "object", "--source", "rules", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "libero_object/9: 1 sub-plan(s), 5 stages" in proc.stdout
    assert json.loads((tmp_path / "libero_object.json").read_text()) == \
        json.loads((SPECS_DIR / "libero_object.json").read_text())


def test_check_accepts_the_committed_specs_and_flags_a_broken_file(tmp_path):
    proc = _run("check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": ok (rules") == 40
    doc = json.loads((SPECS_DIR / "libero_goal.json").read_text())
    doc["tasks"]["4"]["subplans"][0]["stages"][0]["predicate"]["entity"] = "teapot_1"
    (tmp_path / "libero_goal.json").write_text(json.dumps(doc))
    proc = _run("check", "--suite", "goal", "--specs", str(tmp_path))
    assert proc.returncode == 1
    assert "libero_goal/4: INVALID" in proc.stdout and "unknown entity 'teapot_1'" in proc.stdout
    assert "libero_goal/3: ok" in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["generate", "--suite", "kitchen"], "unknown suite 'kitchen'"),
    (["generate", "--suite", "goal", "--tasks", "12"], "out of range"),
    (["validate", "--suite", "goal", "--episodes", "0"], "--episodes must be 1..50"),
    (["generate", "--suite", "goal", "--source", "llm", "--max-retries", "-1"], "--max-retries"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = _run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_generate_llm_against_a_local_server_then_offline(tmp_path):
    key = "sk-cli-" + secrets.token_hex(12)
    cache, out = tmp_path / "cache", tmp_path / "out"
    good = json.dumps(GOOD)  # names alphabet_soup_1 / basket_1 / basket_1_contain_region: valid for object task 0
    with MessagesServer([Reply(200, message_body(good)), Reply(200, message_body("no JSON here"))]) as srv:
        proc = _run("generate", "--suite", "object", "--tasks", "0,1", "--source", "llm", "--model", "claude-x",
                    "--base-url", srv.base_url, "--cache-dir", str(cache), "--out", str(out),
                    env={"ANTHROPIC_API_KEY": key})
        assert len(srv.requests) == 2
    assert proc.returncode == 1  # task 1's answer was not JSON
    assert "libero_object/0: 1 sub-plan(s), 4 stages" in proc.stdout
    assert "libero_object/1: FAILED" in proc.stderr and "not valid JSON" in proc.stderr
    written = json.loads((out / "libero_object.json").read_text())
    assert list(written["tasks"]) == ["0"] and written["tasks"]["0"]["source"]["kind"] == "llm"
    for text in [proc.stdout, proc.stderr, *(p.read_text() for p in tmp_path.rglob("*") if p.is_file())]:
        assert key not in text
    # offline, no key, no server: the cached answers replay bit-identically
    out2 = tmp_path / "out2"
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    proc = subprocess.run([*CLI, "generate", "--suite", "object", "--tasks", "0", "--source", "llm", "--model",
                           "claude-x", "--cache-dir", str(cache), "--out", str(out2), "--offline"],
                          check=False, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (out2 / "libero_object.json").read_bytes() == (out / "libero_object.json").read_bytes()
