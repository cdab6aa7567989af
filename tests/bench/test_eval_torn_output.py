"""A torn or corrupt output directory: every valid row survives, only missing episodes re-run, a corrupt run.json is
one line and exit 2 with nothing touched."""

import json
import subprocess
import sys

import pytest

from bench.evaluate import EvalRequest, evaluate
from bench.results import CorruptRunFile, ResultStore
from tgrpo.envs.observation import ObsConfig
from tgrpo.envs.protocol import MAX_POLICY_STEPS, Protocol
from tgrpo.policies.simple import ZeroPolicy

SHORT = Protocol(episode_start="restore", max_policy_steps={**MAX_POLICY_STEPS, "libero_object": 12})


@pytest.mark.libero
def test_a_torn_middle_row_is_quarantined_and_only_missing_episodes_rerun(tmp_path, capsys):
    request = EvalRequest("libero_object", (0,), (0, 1, 2, 3), ObsConfig(mode="state"), tmp_path, SHORT, workers=2)
    evaluate(request, ZeroPolicy(), progress=False)
    rows_file = tmp_path / "episodes.jsonl"
    lines = rows_file.read_bytes().splitlines(keepends=True)
    assert len(lines) == 4
    torn = lines[1][: len(lines[1]) // 2]  # a row cut in the middle, then more rows after it
    rows_file.write_bytes(lines[0] + torn + b"\n" + lines[2] + lines[3][:-1][:40])  # and a torn last line
    capsys.readouterr()

    summary = evaluate(request, ZeroPolicy(), progress=False)

    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "lines 2, 4 are not a valid row" in warning[0], warning
    after = rows_file.read_bytes().splitlines(keepends=True)
    assert after[:2] == [lines[0], lines[2]]  # the valid rows stay, byte for byte: not re-run
    redone = {json.loads(line)["episode"] for line in after[2:]}
    assert len(after) == 4 and redone == {json.loads(lines[1])["episode"], json.loads(lines[3])["episode"]}
    side = [json.loads(line) for line in (tmp_path / "episodes.jsonl.torn").read_text().splitlines()]
    assert [(s["line"], s["text"].encode()) for s in side] == [(2, torn), (4, lines[3][:40])]
    assert summary["tasks"][0]["episodes"] == 4
    assert [json.loads(line)["sim_warnings"] for line in after] == [{}] * 4  # ordinary episodes: no MuJoCo warning


CORRUPT_RUN_FILES = {"random bytes": bytes(range(256)) * 3, "a list": b"[]", "truncated": b'{"suite": "libero_ob',
                     "empty": b""}


@pytest.mark.parametrize("content", CORRUPT_RUN_FILES.values(), ids=CORRUPT_RUN_FILES.keys())
def test_a_corrupt_run_file_is_one_line_and_exit_2_with_nothing_touched(tmp_path, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_bytes(content)
    rows = b'{"suite": "libero_object", "task_id": 0, "episode": 0}\n{"torn'
    (out / "episodes.jsonl").write_bytes(rows)
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "eval", "--policy", "zero", "--suite", "object",
                           "--tasks", "0", "--episodes", "1", "--obs", "state", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{out / 'run.json'} is corrupt" in lines[0] and "another --out" in lines[0], lines
    assert sorted(p.name for p in out.iterdir()) == ["episodes.jsonl", "run.json"]
    assert (out / "run.json").read_bytes() == content and (out / "episodes.jsonl").read_bytes() == rows


def test_a_corrupt_run_file_is_refused_by_the_store(tmp_path):
    (tmp_path / "run.json").write_text('"a string"')
    with pytest.raises(CorruptRunFile, match="a JSON str, not a run configuration"):
        ResultStore(tmp_path).begin({"policy": "zero"})
