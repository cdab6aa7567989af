"""The rows-file reader: every valid row is kept, each bad line is reported and (for the writer) quarantined."""

import json

from tgrpo.jsonl import parse_rows, read_rows

GOOD = [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}]


def _write(path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def _one_warning(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_torn_middle_lines_lose_no_valid_row_and_move_to_the_side_file(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    _write(path, [b'{"i": 0}\n', b'{"i": 1, "x": [1, 2\n', b'{"i": 1}\n', b"\xff\xfe garbage\n", b"[1, 2]\n",
                  b'{"i": 2}\n', b"\n", b'{"i": 3}\n'])
    assert read_rows(path, repair=True) == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}]
    assert "lines 2, 4, 5 are not a valid row" in _one_warning(capsys)
    assert path.read_bytes() == b'{"i": 0}\n{"i": 1}\n{"i": 2}\n{"i": 3}\n'  # valid lines, byte for byte
    side = [json.loads(line) for line in (tmp_path / "rows.jsonl.torn").read_text().splitlines()]
    assert [(s["line"], s["text"]) for s in side] == [(2, '{"i": 1, "x": [1, 2'), (4, "\\xff\\xfe garbage"),
                                                      (5, "[1, 2]")]
    assert all(s["file"] == "rows.jsonl" for s in side)
    assert not (tmp_path / "rows.jsonl.tmp").exists()
    assert read_rows(path, repair=True) == GOOD and capsys.readouterr().err == ""  # repaired once, quiet after


def test_a_torn_last_line_is_quarantined_and_the_next_append_starts_a_new_line(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    _write(path, [b'{"i": 0}\n', b'{"i": 1}\n', b'{"i": 2}\n', b'{"i": 3}\n', b'{"i": 4, "su'])
    assert read_rows(path, repair=True) == GOOD
    assert "line 5 is not a valid row" in _one_warning(capsys)
    assert json.loads((tmp_path / "rows.jsonl.torn").read_text())["text"] == '{"i": 4, "su'
    with path.open("a") as f:
        f.write('{"i": 4}\n')
    assert read_rows(path) == [*GOOD, {"i": 4}]


def test_a_last_row_without_its_newline_is_kept_and_terminated(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    _write(path, [b'{"i": 0}\n', b'{"i": 1}'])
    assert read_rows(path, repair=True) == [{"i": 0}, {"i": 1}]
    assert path.read_bytes() == b'{"i": 0}\n{"i": 1}\n' and capsys.readouterr().err == ""
    assert not (tmp_path / "rows.jsonl.torn").exists()


def test_a_reader_that_does_not_write_reports_and_leaves_the_file(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    data = b'{"i": 0}\n{"i": 1\n{"j": 5}\n{"i": 2}\n'
    path.write_bytes(data)
    assert read_rows(path, required=("i",)) == [{"i": 0}, {"i": 2}]
    err = _one_warning(capsys)
    assert "lines 2, 3 are not a valid row" in err and "skipped, 2 rows read" in err
    assert path.read_bytes() == data and not (tmp_path / "rows.jsonl.torn").exists()


def test_required_keys_and_line_numbers(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1, "b": 2}\n\n{"a": 1}\n"text"\n')
    parsed = parse_rows(path, required=("a", "b"))
    assert parsed.rows == [{"a": 1, "b": 2}] and parsed.numbers == [1]
    assert [(b.number, b.reason) for b in parsed.bad] == [(3, "lacks b"), (4, "a JSON str, not an object")]
    assert read_rows(tmp_path / "missing.jsonl") == []
