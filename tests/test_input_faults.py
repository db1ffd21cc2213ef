"""A file that cannot be read at all stops the run: exit 1, one line naming the file.

No traceback unless --debug, and no manifest for a run that validated nothing.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import Result

from conftest import (
    assert_ok,
    read_manifest,
    read_rejects,
    read_validated,
    reasons_by_row,
    validate,
    write_csv,
    write_file,
)


def assert_unreadable(result: Result, run_dir: Path, names: str, fault: str) -> None:
    """Exit 1; stderr's first line is `error: …` naming the file and the fault; no traceback."""
    assert result.exit_code == 1, result.output
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error: "), result.stderr
    assert names in first, first
    assert fault.lower() in first.lower(), first
    assert "Traceback" not in result.output
    assert not (run_dir / "manifest.json").exists()


def test_missing_required_column_names_file_and_column(input_dir, run_dir):
    write_file(input_dir, "profiles.csv", "email,first_name\na@example.com,Ann\n")

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.csv", "missing required column")
    assert "'id'" in result.stderr


def test_binary_file_named_csv(input_dir, run_dir):
    write_file(input_dir, "profiles.csv", b"id\n\x00\x01\x02\xff\xfe binary \x00\n")

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.csv", "binary")


def test_latin1_file_is_not_utf8(input_dir, run_dir):
    write_file(input_dir, "profiles.csv", "id,first_name\np1,José\n".encode("latin-1"))

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.csv", "UTF-8")


def test_truncated_gzip(input_dir, run_dir):
    whole = gzip.compress(b"id,first_name\np1,Ann\np2,Bob\n")
    write_file(input_dir, "profiles.csv.gz", whole[: len(whole) // 2])

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.csv.gz", "gzip")


def test_gz_suffix_on_plain_text(input_dir, run_dir):
    write_file(input_dir, "profiles.csv.gz", "id\np1\n")

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.csv.gz", "gzip")


def test_json_object_that_is_not_a_list(input_dir, run_dir):
    write_file(input_dir, "profiles.json", '{"foo": 1}')

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.json", "not a list")


def test_json_string_document_is_not_a_list(input_dir, run_dir):
    write_file(input_dir, "profiles.json", '"just a string"')

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.json", "not a list")


def test_invalid_json_document(input_dir, run_dir):
    write_file(input_dir, "profiles.json", '{"data": [{"id": "p1"},')

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.json", "profiles.json")
    assert any(word in result.stderr.lower() for word in ("malformed", "invalid json", "not valid json"))


def test_dataset_folder_without_data_files(input_dir, run_dir):
    write_file(input_dir, "profiles/README.txt", "parts go here\n")

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles/", "no data files")


def test_input_folder_that_does_not_exist(tmp_path, run_dir):
    missing = tmp_path / "no-such-folder"

    result = validate(missing, run_dir)

    assert_unreadable(result, run_dir, str(missing), "does not exist")


def test_empty_csv_file(input_dir, run_dir):
    write_file(input_dir, "profiles.csv", b"")

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.csv", "empty")


def test_unreadable_file_writes_no_outputs(input_dir, run_dir):
    # The good file is read first; the bad one must still stop the run before any output.
    write_file(input_dir, "benefit_definitions.csv", "id,handle,name\n1,h,Name\n")
    write_file(input_dir, "profiles.csv", "email\na@example.com\n")

    result = validate(input_dir, run_dir)

    assert result.exit_code == 1
    assert not (run_dir / "validated").exists()
    assert not (run_dir / "rejects").exists()


def test_debug_shows_the_traceback(input_dir, run_dir):
    write_file(input_dir, "profiles.csv", "email\na@example.com\n")
    command = [sys.executable, "-m", "pipeline.cli", "validate",
               "--input", str(input_dir), "--out", str(run_dir), "--debug"]

    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert completed.returncode != 0
    assert "Traceback" in completed.stderr
    assert "profiles.csv" in completed.stderr


def test_without_debug_the_same_fault_is_one_line(input_dir, run_dir):
    write_file(input_dir, "profiles.csv", "email\na@example.com\n")
    command = [sys.executable, "-m", "pipeline.cli", "validate",
               "--input", str(input_dir), "--out", str(run_dir)]

    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    lines = [line for line in completed.stderr.splitlines() if not line.startswith("hint: ")]
    assert lines == [line for line in lines if line.startswith("error: profiles.csv: ")]
    assert len(lines) == 1


def test_unterminated_quote_that_swallows_later_lines_stops_naming_the_line(input_dir, run_dir):
    # DuckDB reads from the open quote to the end of the file as one broken record, so
    # p3 and p4 were lost without a fault.
    write_file(input_dir, "profiles.csv", 'id,first_name\np1,Ann\np2,"Bo\np3,Cy\np4,Di\n')

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.csv", "line 3: a quote opened in column 'first_name' is never closed")
    assert "the 2 lines after it cannot be read" in result.stderr


def test_unterminated_quote_in_a_large_gzip_file_counts_every_lost_line(input_dir, run_dir):
    lines = ["id,first_name", "p1,Ann", '"p2,Bo'] + [f"p{n},Name{n}" for n in range(3, 100_003)]
    write_file(input_dir, "profiles.csv.gz", gzip.compress(("\n".join(lines)).encode()))

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.csv.gz", "line 3: a quote opened in column 'id' is never closed")
    assert "the 100000 lines after it cannot be read" in result.stderr


@pytest.mark.parametrize("ending", ["\n", ""], ids=["newline", "no-newline"])
def test_unterminated_quote_on_the_last_line_is_that_rows_fault(input_dir, run_dir, ending):
    write_file(input_dir, "profiles.csv", 'id,first_name\np1,Ann\n\np3,"Cy' + ending)

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "profiles")) == {2: {"malformed_row"}}
    assert read_validated(run_dir, "profiles")["id"].to_list() == ["p1"]


@pytest.mark.parametrize(
    ("encoding", "name"),
    [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32")],
)
def test_utf16_or_utf32_file_is_named_with_the_fix(input_dir, run_dir, encoding, name):
    # Excel's "Unicode text" and PowerShell's Out-File write UTF-16; without a BOM too.
    write_file(input_dir, "profiles.csv", "id,first_name\np1,José\n".encode(encoding))

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.csv", f"{name} text, not UTF-8; re-export the file as UTF-8")


def test_utf16_inside_gzip_is_named_too(input_dir, run_dir):
    write_file(input_dir, "profiles.ndjson.gz", gzip.compress('{"id": "p1"}\n'.encode("utf-16")))

    assert_unreadable(validate(input_dir, run_dir), run_dir, "profiles.ndjson.gz", "UTF-16 text")


def test_stray_quote_after_a_value_over_two_lines_stops_nothing(input_dir, run_dir):
    # DuckDB calls this an "unterminated quote" too, but reads on from the next record.
    write_file(input_dir, "profiles.csv", 'id,first_name,last_name\np1,"two\nlines"junk,x\np2,Bo,Y\np3,Cy,Z\n')

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "profiles")) == {1: {"malformed_row"}}
    assert read_validated(run_dir, "profiles")["id"].to_list() == ["p2", "p3"]


@pytest.mark.parametrize("bom", ["", "\ufeff"], ids=["plain", "with-bom"])
def test_header_repeated_inside_the_file_is_no_record(input_dir, run_dir, bom):
    # `cat profiles-1.csv profiles-2.csv`: read as a record, the second header was a
    # profile whose id is "id".
    write_file(input_dir, "profiles.csv", f"id,email\np1,a@x\n{bom}id,email\np2,b@x\n")

    assert_ok(validate(input_dir, run_dir))

    (reject,) = read_rejects(run_dir, "profiles").rows(named=True)
    assert (reject["source_row"], reject["check"], reject["reason"], reject["value"]) == (
        2, "repeated_header", "malformed_row", "id,email")
    assert read_validated(run_dir, "profiles").select("id", "source_row").rows() == [("p1", 1), ("p2", 3)]


def test_csv_record_over_two_megabytes_is_read(input_dir, run_dir):
    # DuckDB's default maximum line size (2 MB) rejected a valid record with a big
    # attributes object as a malformed row.
    attributes = json.dumps({"notes": "n" * (3 * 2**20)})
    write_csv(input_dir, "profiles.csv", [["id", "attributes"], ["p1", attributes], ["p2", "{}"]])

    assert_ok(validate(input_dir, run_dir))

    assert read_rejects(run_dir, "profiles").height == 0
    assert read_validated(run_dir, "profiles")["attributes"].to_list() == [attributes, "{}"]


@pytest.mark.parametrize("crlf_first", [True, False], ids=["crlf-then-lf", "lf-then-crlf"])
def test_csv_with_mixed_line_endings_stops_naming_the_line(input_dir, run_dir, crlf_first):
    # DuckDB's strict parser gave up with "state machine reached an invalid state".
    first, then = ("\r\n", "\n") if crlf_first else ("\n", "\r\n")
    rows = ["id,first_name"] + [f"p{n},N{n}" for n in range(1, 6)]
    write_file(input_dir, "profiles.csv", first.join(rows[:3]) + first + then.join(rows[3:]) + then)

    result = validate(input_dir, run_dir)

    other, one = ("LF", "CRLF") if crlf_first else ("CRLF", "LF")
    assert_unreadable(result, run_dir, "profiles.csv", f"line 4 ends in {other} but line 1 in {one}: mixed line endings")


def test_parquet_file_with_damaged_data_stops_naming_it(input_dir, run_dir):
    # The footer is sound, so the file is found and described; its pages are read later.
    pq.write_table(pa.table({"id": [f"p{n}" for n in range(20_000)]}), input_dir / "profiles.parquet",
                   compression="none")
    damaged = bytearray((input_dir / "profiles.parquet").read_bytes())
    for at in range(1_000, 60_000, 7):
        damaged[at] ^= 0xFF
    (input_dir / "profiles.parquet").write_bytes(bytes(damaged))

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "profiles.parquet", "profiles.parquet: cannot be read")
    assert "internal error" not in result.output
    assert str(input_dir) not in result.stderr


def test_parquet_file_with_no_columns_stops(input_dir, run_dir):
    pq.write_table(pa.table({}), input_dir / "profiles.parquet")

    assert_unreadable(validate(input_dir, run_dir), run_dir, "profiles.parquet", "has no columns")


def test_parquet_file_with_no_rows_or_row_groups_is_zero_rows(input_dir, run_dir):
    pq.write_table(pa.table({"id": pa.array([], pa.string())}), input_dir / "profiles.parquet")
    pq.write_table(pa.table({"external_id": pa.array([], pa.string()), "transacted_at": pa.array([], pa.string())}),
                   input_dir / "transactions.parquet", row_group_size=1)

    assert_ok(validate(input_dir, run_dir))

    assert [(e["path"], e["rows_read"]) for e in read_manifest(run_dir)["inputs"]] == [
        ("profiles.parquet", 0), ("transactions.parquet", 0)]


def test_csv_header_with_a_quoted_line_break_is_read_as_one_record(input_dir, run_dir):
    # The header was read as its first line only: two names for three columns, so every
    # row was a malformed_row.
    write_file(input_dir, "profiles.csv", 'id,"store\nnote",region\np1,a,VIC\np2,b,NSW\n')

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles").select("id", "store\nnote", "region", "source_row").rows() == [
        ("p1", "a", "VIC", 1), ("p2", "b", "NSW", 2)]


def test_parquet_timestamp_duckdb_cannot_hold_stops_naming_the_file(input_dir, run_dir):
    # 10^15 seconds after 1970 is beyond DuckDB's timestamps: it cannot read the column.
    stamps = pa.array([1_767_225_600, 10**15], pa.timestamp("s"))
    pq.write_table(pa.table({"external_id": ["T1", "T2"], "transacted_at": stamps}), input_dir / "transactions.parquet")

    result = validate(input_dir, run_dir)

    assert_unreadable(result, run_dir, "transactions.parquet", "transactions.parquet: cannot be read (Conversion Error")
    assert "internal error" not in result.output
