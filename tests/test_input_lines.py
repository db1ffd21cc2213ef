"""NDJSON lines: every line keeps its true number and is accepted or rejected on its own.

A line of several MB, a raw control character or a lone carriage return must never shift
the numbering of the lines after it, nor take a good neighbour down with it.
"""

from __future__ import annotations

import gzip
import json

import pytest

from conftest import assert_ok, read_manifest, read_rejects, read_validated, reasons_by_row, validate, write_file


def profile(number: int, **extra) -> str:
    return json.dumps({"id": f"p{number}", **extra})


def rows_and_reasons(run_dir) -> tuple[dict[str, int], dict[int, set[str]]]:
    validated = read_validated(run_dir, "profiles")
    return dict(validated.select("id", "source_row").rows()), reasons_by_row(read_rejects(run_dir, "profiles"))


@pytest.mark.parametrize(
    "bad_line",
    [
        '{"id": "p2", "first_name": "a\x1fb"}',  # the unit separator the old reader split on
        '{"id": "p2", "first_name": "a\x01b"}',  # raw control characters are not JSON
        '{"id": "p2", "first_name": "a\tb"}',
        '{"id": "p2"\x1f}',
        '\x1f',
    ],
    ids=["unit-separator-in-string", "soh-in-string", "tab-in-string", "unit-separator-outside", "only-control"],
)
def test_line_with_a_raw_control_character_is_rejected_alone(input_dir, run_dir, bad_line):
    write_file(input_dir, "profiles.ndjson", "\n".join([profile(1), bad_line, profile(3)]) + "\n")

    assert_ok(validate(input_dir, run_dir))

    rows, reasons = rows_and_reasons(run_dir)
    assert rows == {"p1": 1, "p3": 3}
    assert reasons == {2: {"malformed_json"}}


def test_line_of_several_megabytes_is_read_with_its_neighbours(input_dir, run_dir):
    long_name = "x" * (5 * 2**20)
    write_file(
        input_dir,
        "profiles.ndjson",
        "\n".join([profile(1), profile(2, first_name=long_name), profile(3), '{"id": "p4", "x": "' + "y" * 2**22, profile(5)])
        + "\n",
    )

    assert_ok(validate(input_dir, run_dir))

    rows, reasons = rows_and_reasons(run_dir)
    assert rows == {"p1": 1, "p2": 2, "p3": 3, "p5": 5}
    assert reasons == {4: {"malformed_json"}}
    assert read_validated(run_dir, "profiles").filter(source_row=2)["first_name"].to_list() == [long_name]


def test_lone_carriage_return_is_json_whitespace_not_a_line_break(input_dir, run_dir):
    # CR is whitespace inside a JSON document: the line is one object, and the next line
    # is line 2, not 3.
    write_file(input_dir, "profiles.ndjson", '{"id":\r"p1"}\n' + profile(2) + "\n")

    assert_ok(validate(input_dir, run_dir))

    rows, reasons = rows_and_reasons(run_dir)
    assert (rows, reasons) == ({"p1": 1, "p2": 2}, {})


def test_crlf_lines_blank_lines_a_bom_and_no_final_newline(input_dir, run_dir):
    content = "\ufeff" + profile(1) + "\r\n\r\n  \t\r\n" + profile(4) + "\r\nnot json\r\n" + profile(6)
    write_file(input_dir, "profiles.ndjson.gz", gzip.compress(content.encode("utf-8")))

    assert_ok(validate(input_dir, run_dir))

    rows, reasons = rows_and_reasons(run_dir)
    assert rows == {"p1": 1, "p4": 4, "p6": 6}
    assert reasons == {5: {"malformed_json"}}
    assert read_rejects(run_dir, "profiles")["value"].to_list() == ["not json"]
    (entry,) = read_manifest(run_dir)["inputs"]
    assert (entry["rows_read"], entry["accepted"], entry["rejected"]) == (4, 3, 1)


def test_lines_across_read_chunks_keep_their_numbers(input_dir, run_dir, monkeypatch):
    # Lines straddle the reader's chunk boundary (made tiny here), one of them many chunks long.
    import pipeline.scans

    monkeypatch.setattr(pipeline.scans, "LINE_CHUNK", 7)
    lines = [profile(n, first_name="n" * (n * 5)) for n in range(1, 40)]
    write_file(input_dir, "profiles.ndjson", "\n".join(lines) + "\n")

    assert_ok(validate(input_dir, run_dir))

    rows, reasons = rows_and_reasons(run_dir)
    assert rows == {f"p{n}": n for n in range(1, 40)}
    assert reasons == {}


@pytest.mark.parametrize("name", ["profiles.ndjson", "profiles.json"])
def test_object_that_repeats_a_key_is_malformed_json(input_dir, run_dir, name):
    # DuckDB reads the first "id", Python and JavaScript the last: no reading is safe.
    objects = ['{"id": "p1"}', '{"id": "p2", "email": "a@x", "id": "p9"}', '{"id": "p3", "x": {"y": 1, "y": 2}}']
    content = "\n".join(objects) + "\n" if name.endswith("ndjson") else '{"data": [' + ", ".join(objects) + "]}"
    write_file(input_dir, name, content)

    assert_ok(validate(input_dir, run_dir))

    rows, reasons = rows_and_reasons(run_dir)
    assert rows == {"p1": 1, "p3": 3}  # a key repeated deeper inside a value is not looked at
    assert reasons == {2: {"malformed_json"}}
    assert read_rejects(run_dir, "profiles")["detail"].to_list() == ['the object repeats the key "id"']
