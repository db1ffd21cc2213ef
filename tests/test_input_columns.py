"""Column names: extra columns are kept under their own names and never change the checks.

Some names mean something to DuckDB (`rowid`, `file_row_number`, `filename`), DuckDB
names are case-insensitive, and a Parquet file can repeat a name. None of that may turn
off a row check, crash, or make one column stand for another.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import assert_ok, read_manifest, read_rejects, read_validated, reasons_by_row, validate, write_csv, write_file
from test_input_faults import assert_unreadable

ENGINE_NAMES = ["rowid", "file_row_number", "filename", "file_index", "ordinality", "_ordinal", "__omneo_row",
                "_cast_errors", "_load_errors", "_raw_1", "_text_1", "level_1", "converted", "e", "s", "doc", "line"]


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_extra_column_named_like_an_engine_internal_changes_no_check_csv(input_dir, run_dir, name):
    write_csv(input_dir, "profiles.csv", [["id", name], ["p1", "x"], ["not a uuid!", "y"], ["p3", "7"]])

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "profiles")) == {2: {"invalid_value"}}
    validated = read_validated(run_dir, "profiles")
    kept = name if name not in ("ordinality", "_ordinal", "_cast_errors", "_load_errors") else f"input_{name}"
    assert validated.select("id", kept, "source_row").rows() == [("p1", "x", 1), ("p3", "7", 3)]


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_extra_column_named_like_an_engine_internal_changes_no_check_parquet(input_dir, run_dir, name):
    # A rowid of 5 million on every row once made the chunked row checks skip every row.
    pq.write_table(
        pa.table({"id": ["p1", "not a uuid!", "p3"], name: pa.array([5_000_000] * 3, pa.int64())}),
        input_dir / "profiles.parquet",
    )

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "profiles")) == {2: {"invalid_value"}}
    validated = read_validated(run_dir, "profiles")
    kept = name if name not in ("ordinality", "_ordinal", "_cast_errors", "_load_errors") else f"input_{name}"
    assert validated.select("id", kept, "source_row").rows() == [("p1", 5_000_000, 1), ("p3", 5_000_000, 3)]


@pytest.mark.parametrize("name", ["rowid", "file_row_number", "Source_Row"])
def test_extra_column_named_like_an_engine_internal_changes_no_check_ndjson(input_dir, run_dir, name):
    write_file(input_dir, "profiles.ndjson", "".join(
        json.dumps({"id": i, name: 9}) + "\n" for i in ["p1", "not a uuid!", "p3"]))

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "profiles")) == {2: {"invalid_value"}}
    assert read_validated(run_dir, "profiles")["source_row"].to_list() == [1, 3]


@pytest.mark.parametrize(
    "name",
    ['quote"d', "it's", "dotted.name", "with space", "ünïcödé", "Ωmega", "a,b", "semi;colon", '"; DROP TABLE x; --',
     "tab\tname", "1starts_with_digit", "SELECT", "from"],
)
def test_extra_column_with_any_name_is_kept(input_dir, run_dir, name):
    pq.write_table(pa.table({"id": ["p1"], name: ["kept"]}), input_dir / "profiles.parquet")
    write_file(input_dir, "transactions.ndjson", json.dumps({"external_id": "T1", "transacted_at": "2026-01-01", name: 5}))

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles")[name].to_list() == ["kept"]
    assert read_validated(run_dir, "transactions")[name].to_list() == ["5"]


def test_provenance_names_in_another_case_are_kept_aside(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["id", "Source_Row", "SOURCE_FILE"], ["p1", "70", "elsewhere.csv"]])

    assert_ok(validate(input_dir, run_dir))

    row = read_validated(run_dir, "profiles").row(0, named=True)
    assert (row["source_file"], row["source_row"], row["input_Source_Row"], row["input_SOURCE_FILE"]) == (
        "profiles.csv", 1, "70", "elsewhere.csv")


@pytest.mark.parametrize(
    ("header", "fault"),
    [
        (["id", "region", "Region"], "differ only in letter case"),
        (["ID"], "in other letter case: rename it to 'id'"),
        (["id", "Email"], "in other letter case: rename it to 'email'"),
        (["id", "region", "region"], "repeats column 'region'"),
        (["id", " "], "empty column name"),
    ],
)
def test_csv_header_names_duckdb_cannot_hold_apart_stop_the_run(input_dir, run_dir, header, fault):
    write_csv(input_dir, "profiles.csv", [header, ["p1"] * len(header)])

    assert_unreadable(validate(input_dir, run_dir), run_dir, "profiles.csv", fault)


@pytest.mark.parametrize(
    ("names", "fault"),
    [
        (["id", "id"], "repeats column 'id'"),
        (["id", "region", "REGION"], "differ only in letter case"),
        (["Id"], "rename it to 'id'"),
        (["id", ""], "empty column name"),
    ],
)
def test_parquet_column_names_duckdb_cannot_hold_apart_stop_the_run(input_dir, run_dir, names, fault):
    table = pa.Table.from_arrays([pa.array(["p1"]) for _ in names], names=names)
    pq.write_table(table, input_dir / "profiles.parquet")

    assert_unreadable(validate(input_dir, run_dir), run_dir, "profiles.parquet", fault)


def test_ndjson_keys_in_another_case_on_another_line_stop_the_run(input_dir, run_dir):
    write_file(input_dir, "profiles.ndjson", '{"id": "p1", "region": "VIC"}\n{"id": "p2", "Region": "NSW"}\n')

    assert_unreadable(validate(input_dir, run_dir), run_dir, "profiles.ndjson", "differ only in letter case")


def test_parquet_file_row_number_column_keeps_true_row_numbers(input_dir, run_dir):
    # DuckDB cannot add its own row number beside a column of that name.
    pq.write_table(
        pa.table({"id": ["p1", "p2", "p3"], "file_row_number": [30, 20, 10]}), input_dir / "profiles.parquet",
        row_group_size=2,
    )

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles").select("id", "file_row_number", "source_row").rows() == [
        ("p1", 30, 1), ("p2", 20, 2), ("p3", 10, 3)]
    (entry,) = read_manifest(run_dir)["inputs"]
    assert entry["rows_read"] == 3
