"""A redemption's nested `items`: split into redemption_items, or the redemption rejected.

Whatever `items` holds, its redemption and every item end up accepted or rejected with a
reason naming the file, row and column; nothing is dropped.
"""

from __future__ import annotations

import json

import pytest

from conftest import assert_ok, read_manifest, read_rejects, read_validated, reasons_by_row, validate, write_file

REDEMPTION = {"profile_id": "p1", "created_at": "2026-01-01T00:00:00Z"}


def write_redemptions(folder, *redemptions) -> None:
    write_file(folder, "redemptions.json", json.dumps({"data": [dict(REDEMPTION, id=i, **r) for i, r in redemptions]}))


@pytest.mark.parametrize(
    "items",
    [{"type": "benefit", "item_id": 5}, "benefit:5", 5, True],
    ids=["object", "string", "number", "boolean"],
)
def test_items_that_are_not_a_list_reject_their_redemption(input_dir, run_dir, items):
    write_redemptions(input_dir, (1, {"items": [{"type": "benefit", "item_id": 4}]}), (2, {"items": items}))

    assert_ok(validate(input_dir, run_dir))

    reject = read_rejects(run_dir, "redemptions").row(0, named=True)
    assert (reject["source_file"], reject["source_row"], reject["column"], reject["reason"]) == (
        "redemptions.json", 2, "items", "invalid_type")
    assert json.loads(reject["value"]) == items
    assert read_validated(run_dir, "redemptions")["id"].to_list() == [1]
    entry = {e["dataset"]: e for e in read_manifest(run_dir)["inputs"]}["redemptions"]
    assert (entry["rows_read"], entry["accepted"], entry["rejected"]) == (2, 1, 1)


@pytest.mark.parametrize("items", [None, []], ids=["null", "empty"])
def test_items_null_or_empty_is_a_redemption_without_items(input_dir, run_dir, items):
    write_redemptions(input_dir, (1, {"items": items}))

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "redemptions")["id"].to_list() == [1]
    assert read_validated(run_dir, "redemption_items").height == 0


def test_item_that_is_not_an_object_is_a_malformed_item(input_dir, run_dir):
    write_redemptions(input_dir, (1, {"items": [{"type": "benefit", "item_id": 5}, 7, None, ["x"]]}))

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "redemption_items")) == {
        2: {"malformed_json"}, 3: {"malformed_json"}, 4: {"malformed_json"}}
    assert read_validated(run_dir, "redemption_items")["item_id"].to_list() == [5]


def test_ndjson_redemption_items_object_is_rejected_too(input_dir, run_dir):
    write_file(
        input_dir,
        "redemptions.ndjson",
        json.dumps(dict(REDEMPTION, id=1, items={"type": "benefit", "item_id": 5})) + "\n",
    )

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "redemptions")) == {1: {"invalid_type"}}


def test_parquet_items_list_of_structs_become_redemption_items(input_dir, run_dir):
    # A data-lake export of the API's redemptions keeps items nested; they were kept as an
    # extra column and never became redemption_items.
    import pyarrow as pa
    import pyarrow.parquet as pq

    item = pa.struct([("type", pa.string()), ("item_id", pa.int64()), ("count", pa.int64())])
    pq.write_table(
        pa.table({
            "id": [1, 2, 3],
            "profile_id": ["p1", "p2", "p3"],
            "created_at": ["2026-01-01"] * 3,
            "items": pa.array([[{"type": "benefit", "item_id": 5, "count": 2}], None,
                               [{"type": "reward", "item_id": 6, "count": None}, {"type": "point", "item_id": 7,
                                                                                  "count": 1}]], pa.list_(item)),
        }),
        input_dir / "redemptions.parquet",
    )

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "redemptions")["id"].to_list() == [1, 2, 3]
    items = read_validated(run_dir, "redemption_items")
    assert items.select("redemption_id", "type", "item_id", "count", "source_row", "source_parent_row").rows() == [
        (1, "benefit", 5, 2, 1, 1), (3, "reward", 6, 1, 2, 3), (3, "point", 7, 1, 3, 3)]


def test_csv_items_column_of_json_text_becomes_redemption_items(input_dir, run_dir):
    write_file(
        input_dir,
        "redemptions.csv",
        "id,profile_id,created_at,items\n"
        '1,p1,2026-01-01,"[{""type"": ""benefit"", ""item_id"": 5}]"\n'
        '2,p2,2026-01-01,"{""type"": ""benefit"", ""item_id"": 6}"\n'
        "3,p3,2026-01-01,not json\n"
        "4,p4,2026-01-01,\n",
    )

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "redemptions")["id"].to_list() == [1, 4]
    rejects = read_rejects(run_dir, "redemptions")
    assert rejects.select("source_row", "column", "reason").rows() == [(2, "items", "invalid_type"),
                                                                       (3, "items", "invalid_type")]
    assert rejects["detail"].to_list() == ["expected a list (JSON array) of items, got a JSON object",
                                           "expected a list (JSON array) of items, got text that is not JSON"]
    assert read_validated(run_dir, "redemption_items").select("redemption_id", "item_id").rows() == [(1, 5)]
