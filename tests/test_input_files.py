"""Which files are read, and that each is read literally, by its own path.

DuckDB expands glob characters in every path it is given; a file named `profiles-[1].csv`
must never be read as `profiles-1.csv` (or as nothing).
"""

from __future__ import annotations

import gzip
import json

import polars as pl
import pytest

from conftest import assert_ok, read_manifest, read_validated, validate, write_csv, write_file, write_ndjson


@pytest.mark.parametrize("name", ["profiles-[1].csv", "profiles-*.csv", "profiles-?.csv", "profiles-[!1].csv"])
def test_file_with_glob_characters_is_read_by_its_own_name(input_dir, run_dir, name):
    write_csv(input_dir, "profiles-1.csv", [["id"], ["p-one"]])
    write_csv(input_dir, name, [["id"], ["p-literal"]])

    assert_ok(validate(input_dir, run_dir))

    rows = read_validated(run_dir, "profiles").select("source_file", "id").rows()
    assert sorted(rows) == sorted([("profiles-1.csv", "p-one"), (name, "p-literal")])
    entries = sorted((e["path"], e["rows_read"], e["rejected"]) for e in read_manifest(run_dir)["inputs"])
    assert entries == sorted([("profiles-1.csv", 1, 0), (name, 1, 0)])


def test_every_format_reads_a_glob_named_file_literally(input_dir, run_dir):
    (input_dir / "profiles").mkdir()
    pl.DataFrame({"id": ["p-parquet"]}).write_parquet(input_dir / "profiles" / "part-[0].parquet")
    pl.DataFrame({"id": ["p-wrong"]}).write_parquet(input_dir / "profiles" / "part-0.parquet")
    write_ndjson(input_dir, "profiles/part-[1].ndjson", [{"id": "p-ndjson"}])
    write_ndjson(input_dir, "profiles/part-1.ndjson", [{"id": "p-wrong-too"}])
    write_file(input_dir, "profiles/part-[2].json", json.dumps({"data": [{"id": "p-json"}]}))
    write_file(input_dir, "profiles/part-2.json", json.dumps({"data": [{"id": "p-json-wrong"}]}))
    write_file(input_dir, "profiles/part-[3].csv.gz", gzip.compress(b"id\np-gzip\n"))
    write_file(input_dir, "profiles/part-3.csv.gz", gzip.compress(b"id\np-gzip-wrong\n"))

    assert_ok(validate(input_dir, run_dir))

    by_file = dict(read_validated(run_dir, "profiles").select("source_file", "id").rows())
    assert {f: by_file[f] for f in by_file if "[" in f} == {
        "profiles/part-[0].parquet": "p-parquet",
        "profiles/part-[1].ndjson": "p-ndjson",
        "profiles/part-[2].json": "p-json",
        "profiles/part-[3].csv.gz": "p-gzip",
    }
    assert len(by_file) == 8


def test_input_folder_with_glob_characters_and_a_tilde(tmp_path, run_dir):
    folder = tmp_path / "exports [nightly] ~"
    write_csv(folder, "profiles.csv", [["id"], ["p1"]])

    assert_ok(validate(folder, run_dir))

    assert read_validated(run_dir, "profiles")["id"].to_list() == ["p1"]


@pytest.mark.parametrize("name", ["profiles.CSV.GZ", "profiles.csv.Gz", "profiles.NDJSON.GZ"])
def test_suffixes_are_read_in_any_letter_case(input_dir, run_dir, name):
    content = b"id\np1\n" if ".csv" in name.lower() else b'{"id": "p1"}\n'
    write_file(input_dir, name, gzip.compress(content))

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles")["id"].to_list() == ["p1"]


@pytest.mark.parametrize("name", ["Profiles.csv", "PROFILES-2026.CSV", "profiles-Part1.Parquet"])
def test_dataset_names_match_in_any_letter_case(input_dir, run_dir, name):
    # An optional dataset spelled Transactions.csv was silently not read at all.
    if name.lower().endswith(".parquet"):
        pl.DataFrame({"id": ["p1"]}).write_parquet(input_dir / name)
    else:
        write_csv(input_dir, name, [["id"], ["p1"]])

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles").select("id", "source_file").rows() == [("p1", name)]


def test_dataset_folder_matches_in_any_letter_case(input_dir, run_dir):
    write_csv(input_dir, "Profiles/part-0.csv", [["id"], ["p1"]])

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles")["source_file"].to_list() == ["Profiles/part-0.csv"]


@pytest.mark.parametrize(
    "name",
    ["profiles.tsv", "profiles.csv.zst", "profiles.csv.bz2", "transactions-2026.xlsx", "profiles.parquet.gz",
     "profiles/part-1.csv.zst", "profiles/sub/part-2.parquet.snappy"],
)
def test_file_named_for_a_dataset_in_a_format_not_read_stops_the_run(input_dir, run_dir, name):
    # It was silently skipped: its rows were simply missing from the night's run.
    write_csv(input_dir, "profiles/part-0.csv" if name.startswith("profiles/") else "profiles.csv", [["id"], ["p1"]])
    write_file(input_dir, name, b"PK\x03\x04 not read")

    from test_input_faults import assert_unreadable

    assert_unreadable(validate(input_dir, run_dir), run_dir, name, "not a format omneo-bulk reads")


def test_other_files_and_spark_markers_are_still_ignored(input_dir, run_dir):
    write_csv(input_dir, "profiles/part-0.csv", [["id"], ["p1"]])
    for name in ["profiles/_SUCCESS", "profiles/.part-0.csv.crc", "profiles/_committed_123", "README.md",
                 "campaigns.toml", ".profiles.csv.swp", "profiles_backup.txt", "notes-profiles.csv"]:
        write_file(input_dir, name, "ignored\n")

    assert_ok(validate(input_dir, run_dir))

    assert [e["path"] for e in read_manifest(run_dir)["inputs"]] == ["profiles/part-0.csv"]


@pytest.mark.parametrize("folder", ["profiles.csv", "Profiles.CSV", "profiles-2026-11.parquet"])
def test_a_folder_named_like_a_file_is_read_as_its_parts(input_dir, run_dir, folder):
    # What Spark's df.write.csv("profiles.csv") makes. It was skipped: the dataset had no
    # rows, and reconciliation then reported findings that were not there.
    suffix = ".parquet" if folder.endswith(".parquet") else ".csv"
    if suffix == ".csv":
        write_csv(input_dir, f"{folder}/part-00000-a1.c000.csv", [["id"], ["p1"], ["p2"]])
    else:
        (input_dir / folder).mkdir()
        pl.DataFrame({"id": ["p1", "p2"]}).write_parquet(input_dir / folder / "part-00000-a1.snappy.parquet")
    write_file(input_dir, f"{folder}/_SUCCESS", "")

    assert_ok(validate(input_dir, run_dir))

    assert [e["path"] for e in read_manifest(run_dir)["inputs"]] == [f"{folder}/part-00000-a1{'.c000' if suffix == '.csv' else '.snappy'}{suffix}"]
    assert read_validated(run_dir, "profiles")["id"].to_list() == ["p1", "p2"]


def test_a_broken_link_named_for_a_dataset_stops_the_run(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["id"], ["p1"]])
    (input_dir / "returns.csv").symlink_to(input_dir / "gone" / "returns.csv")

    from test_input_faults import assert_unreadable

    assert_unreadable(validate(input_dir, run_dir), run_dir, "returns.csv", "not a file that can be read")
