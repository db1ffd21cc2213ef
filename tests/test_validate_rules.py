"""The validate stage, one rule or format per test, on inputs of a few rows.

Each test writes its files in tmp_path, runs `omneo-bulk validate`, and reads back
validated/, rejects/ and manifest.json. Expected values are worked out by hand in comments.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import datetime, timezone

import polars as pl
import pytest

from conftest import (
    DATASET_NAMES,
    REJECT_COLUMNS,
    assert_ok,
    read_manifest,
    read_rejects,
    read_validated,
    reasons_by_row,
    sha256_file,
    validate,
    write_csv,
    write_file,
    write_ndjson,
)

UTC = timezone.utc
DEFINITION_HEADER = ["id", "handle", "name"]
BENEFIT_HEADER = ["id", "profile_id", "benefit_definition_id", "issued_at"]


def only_reject(run_dir, dataset):
    """The single reject row of a dataset, as a dict."""
    rejects = read_rejects(run_dir, dataset)
    assert rejects.height == 1, rejects
    return rejects.row(0, named=True)


# Malformed records -----------------------------------------------------------------


def test_too_many_fields_is_malformed_row(input_dir, run_dir):
    write_file(input_dir, "profiles.csv", "id,email\np1,a@x\np2,b@x,surplus\np3,c@x\n")

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["source_row"], reject["reason"]) == (2, "malformed_row")
    assert read_validated(run_dir, "profiles")["id"].to_list() == ["p1", "p3"]


def test_too_few_fields_is_malformed_row(input_dir, run_dir):
    write_file(input_dir, "profiles.csv", "id,email,first_name\np1,a@x,Ann\np2,b@x\np3,c@x,Cy\n")

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["source_row"], reject["reason"]) == (2, "malformed_row")


def test_stray_quote_is_malformed_row(input_dir, run_dir):
    write_file(input_dir, "profiles.csv", 'id,email,first_name\np1,a@x,Ann\np2,"b@x"junk,Bo\np3,c@x,Cy\n')

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["source_row"], reject["reason"]) == (2, "malformed_row")
    assert read_validated(run_dir, "profiles")["source_row"].to_list() == [1, 3]


def test_quoted_newlines_and_commas_do_not_shift_rows(input_dir, run_dir):
    # Record 1 spans two lines; record 2 is malformed; record 3 has a comma and a quote.
    write_file(
        input_dir,
        "profiles.csv",
        'id,first_name,last_name\np1,"two\nlines",x\np2,a,b,c\np3,"a, ""b""",z\n',
    )

    assert_ok(validate(input_dir, run_dir))

    validated = read_validated(run_dir, "profiles")
    assert validated.select("id", "first_name", "source_row").rows() == [
        ("p1", "two\nlines", 1),
        ("p3", 'a, "b"', 3),
    ]
    assert only_reject(run_dir, "profiles")["source_row"] == 2


def test_blank_line_keeps_rows_in_file_order(input_dir, run_dir):
    # p2 (malformed) comes before p3 in the file, so its source_row must be smaller.
    write_file(input_dir, "profiles.csv", "id,first_name,last_name\np1,a,b\n\np2,a,b,c\np3,a,b\n")

    assert_ok(validate(input_dir, run_dir))

    rows = dict(read_validated(run_dir, "profiles").select("id", "source_row").rows())
    malformed_row = only_reject(run_dir, "profiles")["source_row"]
    assert rows["p1"] < malformed_row < rows["p3"]


def test_blank_line_inside_quoted_field_keeps_rows_in_file_order(input_dir, run_dir):
    # Record 1 holds a paragraph break inside quotes; record 2 is malformed; record 3 is fine.
    write_file(input_dir, "profiles.csv", 'id,first_name,last_name\np1,"para\n\ngraph",x\np2,a,b,c\np3,a,b\n')

    assert_ok(validate(input_dir, run_dir))

    rows = dict(read_validated(run_dir, "profiles").select("id", "source_row").rows())
    assert (rows["p1"], only_reject(run_dir, "profiles")["source_row"], rows["p3"]) == (1, 2, 3)


def test_ndjson_line_that_is_not_an_object_is_malformed_json(input_dir, run_dir):
    write_file(input_dir, "profiles.ndjson", '{"id": "p1"}\n[1, 2]\n{"id": "p3"}\n')

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["source_row"], reject["reason"]) == (2, "malformed_json")


def test_ndjson_line_that_is_not_json_is_malformed_json(input_dir, run_dir):
    write_file(input_dir, "profiles.ndjson", '{"id": "p1"}\nnot json at all\n{"id": "p3"}\n')

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["source_row"], reject["reason"]) == (2, "malformed_json")


def test_json_array_element_that_is_not_an_object_is_malformed_json(input_dir, run_dir):
    write_file(input_dir, "profiles.json", '[{"id": "p1"}, 5, {"id": "p3"}]')

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["source_row"], reject["reason"]) == (2, "malformed_json")


# Types -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["5.5", "five", "5e0", "5,0"])
def test_int_that_is_not_whole_is_invalid_type(input_dir, run_dir, text):
    write_csv(input_dir, "profiles.csv", [["id", "birth_day"], ["p1", text]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["column"], reject["reason"], reject["value"]) == ("birth_day", "invalid_type", text)


@pytest.mark.parametrize(("text", "number"), [("5", 5), ("5.0", 5), ("+7", 7), (" 9 ", 9)])
def test_int_with_zero_fraction_is_accepted(input_dir, run_dir, text, number):
    write_csv(input_dir, "profiles.csv", [["id", "birth_day"], ["p1", text]])

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles")["birth_day"].to_list() == [number]


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("FALSE", False), ("yes", True), ("No", False), ("1", True), ("0", False),
     ("t", True), ("f", False), ("Y", True), ("n", False)],
)
def test_boolean_spellings(input_dir, run_dir, text, value):
    write_csv(input_dir, "benefit_definitions.csv", [[*DEFINITION_HEADER, "is_published"], [1, "h", "N", text]])

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "benefit_definitions")["is_published"].to_list() == [value]


def test_boolean_that_is_not_a_spelling_is_invalid_type(input_dir, run_dir):
    write_csv(input_dir, "benefit_definitions.csv", [[*DEFINITION_HEADER, "is_published"], [1, "h", "N", "maybe"]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "benefit_definitions")
    assert (reject["column"], reject["reason"]) == ("is_published", "invalid_type")


@pytest.mark.parametrize("text", ["yesterday", "2026-02-30 10:00:00", "2026-13-01T00:00:00Z", "01/02/2026"])
def test_timestamp_that_does_not_parse_is_invalid_type(input_dir, run_dir, text):
    write_csv(input_dir, "profiles.csv", [["id", "joined_at"], ["p1", text]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["column"], reject["reason"]) == ("joined_at", "invalid_type")


def test_naive_timestamp_is_utc_by_default(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["id", "joined_at"], ["p1", "2026-04-05 01:30:00"]])

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles")["joined_at"].to_list() == [datetime(2026, 4, 5, 1, 30, tzinfo=UTC)]


def test_naive_timestamp_is_read_in_naive_timezone(input_dir, run_dir):
    # Melbourne keeps daylight time (UTC+11) until 03:00 on Sunday 5 April 2026, so
    # 01:30 local is 14:30 UTC the day before.
    write_csv(input_dir, "profiles.csv", [["id", "joined_at"], ["p1", "2026-04-05 01:30:00"]])

    assert_ok(validate(input_dir, run_dir, "--naive-timezone", "Australia/Melbourne"))

    assert read_validated(run_dir, "profiles")["joined_at"].to_list() == [datetime(2026, 4, 4, 14, 30, tzinfo=UTC)]


def test_naive_timestamp_after_dst_ends_uses_standard_time(input_dir, run_dir):
    # After 03:00 on 5 April 2026 Melbourne is UTC+10: 12:00 local is 02:00 UTC.
    write_csv(input_dir, "profiles.csv", [["id", "joined_at"], ["p1", "2026-04-05 12:00:00"]])

    assert_ok(validate(input_dir, run_dir, "--naive-timezone", "Australia/Melbourne"))

    assert read_validated(run_dir, "profiles")["joined_at"].to_list() == [datetime(2026, 4, 5, 2, 0, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-04-05T01:30:00+11:00", datetime(2026, 4, 4, 14, 30, tzinfo=UTC)),
        ("2026-04-05T01:30:00Z", datetime(2026, 4, 5, 1, 30, tzinfo=UTC)),
        ("2026-04-04T20:30:00-05:00", datetime(2026, 4, 5, 1, 30, tzinfo=UTC)),
        ("2026-04-05 01:30:00+1100", datetime(2026, 4, 4, 14, 30, tzinfo=UTC)),
    ],
)
def test_offset_timestamp_is_converted_to_utc(input_dir, run_dir, text, instant):
    # An explicit offset wins over --naive-timezone.
    write_csv(input_dir, "profiles.csv", [["id", "joined_at"], ["p1", text]])

    assert_ok(validate(input_dir, run_dir, "--naive-timezone", "Australia/Perth"))

    assert read_validated(run_dir, "profiles")["joined_at"].to_list() == [instant]


@pytest.mark.parametrize(
    ("text", "tags"),
    [("vip, gold", ["vip", "gold"]), ('["vip","gold"]', ["vip", "gold"]), ("solo", ["solo"])],
)
def test_tags_comma_separated_or_json_array(input_dir, run_dir, text, tags):
    write_csv(input_dir, "profiles.csv", [["id", "tags"], ["p1", text]])

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles")["tags"].to_list() == [tags]


@pytest.mark.parametrize("text", ["[1, 2]", '"text"', "{not json", "42"])
def test_attributes_that_are_not_a_json_object_are_invalid_type(input_dir, run_dir, text):
    write_csv(input_dir, "profiles.csv", [["id", "attributes"], ["p1", text]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["column"], reject["reason"]) == ("attributes", "invalid_type")


def test_attributes_json_object_is_accepted(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["id", "attributes"], ["p1", '{"comms": {"email_promo": true}}']])

    assert_ok(validate(input_dir, run_dir))

    (text,) = read_validated(run_dir, "profiles")["attributes"].to_list()
    assert json.loads(text) == {"comms": {"email_promo": True}}


# Required values, ranges, allowed values --------------------------------------------


def test_empty_required_field_is_missing_value(input_dir, run_dir):
    write_csv(input_dir, "benefits.csv", [BENEFIT_HEADER, [10, "p1", 1, None]])
    write_csv(input_dir, "benefit_definitions.csv", [DEFINITION_HEADER, [1, "h", "N"]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "benefits")
    assert (reject["source_row"], reject["column"], reject["reason"]) == (1, "issued_at", "missing_value")


@pytest.mark.parametrize(
    ("dataset", "header", "row", "column"),
    [
        ("profiles", ["id", "birth_day"], ["p1", 0], "birth_day"),
        ("profiles", ["id", "birth_day"], ["p1", 32], "birth_day"),
        ("profiles", ["id", "birth_month"], ["p1", 0], "birth_month"),
        ("profiles", ["id", "birth_month"], ["p1", 13], "birth_month"),
        ("returns", ["redemption_id", "count"], [1, 0], "count"),
        ("redemption_items", ["redemption_id", "type", "item_id", "count"], [1, "benefit", 5, -1], "count"),
        ("benefit_definitions", [*DEFINITION_HEADER, "max_redemptions"], [1, "h", "N", 0], "max_redemptions"),
        ("benefit_definitions", [*DEFINITION_HEADER, "period"], [1, "h", "N", -1], "period"),
        (
            "benefit_definitions",
            [*DEFINITION_HEADER, "total_allocations", "total_allocations_remaining"],
            [1, "h", "N", 10, 11],
            "total_allocations_remaining",
        ),
        ("transactions", ["external_id", "transacted_at", "total"], ["T1", "2026-01-01", "1e13"], "total"),
        ("redemptions", ["id", "profile_id", "created_at", "total"], [1, "p1", "2026-01-01", "-2e12"], "total"),
    ],
)
def test_value_outside_its_range_is_out_of_range(input_dir, run_dir, dataset, header, row, column):
    # Rows that reference redemption 1 get one, so the range is the only fault.
    write_csv(input_dir, "redemptions.csv", [["id", "profile_id", "created_at"], [1, "p1", "2026-01-01"]])
    write_csv(input_dir, f"{dataset}.csv", [header, row])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, dataset)
    assert (reject["source_row"], reject["column"], reject["reason"]) == (1, column, "out_of_range")


@pytest.mark.parametrize(
    ("dataset", "header", "row"),
    [
        ("profiles", ["id", "birth_day", "birth_month"], ["p1", 31, 12]),
        ("profiles", ["id", "birth_day", "birth_month"], ["p1", 1, 1]),
        ("returns", ["redemption_id", "count"], [1, 1]),
        ("benefit_definitions", [*DEFINITION_HEADER, "max_redemptions", "period"], [1, "h", "N", 1, 0]),
        (
            "benefit_definitions",
            [*DEFINITION_HEADER, "total_allocations", "total_allocations_remaining"],
            [1, "h", "N", 10, 10],
        ),
    ],
)
def test_value_at_the_edge_of_its_range_is_accepted(input_dir, run_dir, dataset, header, row):
    write_csv(input_dir, "redemptions.csv", [["id", "profile_id", "created_at"], [1, "p1", "2026-01-01"]])
    write_csv(input_dir, f"{dataset}.csv", [header, row])

    assert_ok(validate(input_dir, run_dir))

    assert read_rejects(run_dir, dataset).height == 0
    assert read_validated(run_dir, dataset).height == 1


def test_unknown_timezone_is_invalid_timezone(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["id", "timezone"], ["p1", "Australia/Melbourne"], ["p2", "Mars/Olympus"]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["source_row"], reject["column"], reject["check"], reject["reason"], reject["value"]) == (
        2, "timezone", "valid_timezone", "invalid_timezone", "Mars/Olympus")


@pytest.mark.parametrize(
    ("dataset", "header", "row", "column", "bad"),
    [
        ("redemption_items", ["redemption_id", "type", "item_id"], [1, "voucher", 5], "type", "voucher"),
        ("transactions", ["external_id", "transacted_at", "status"], ["t1", "2026-01-01", "pending"], "status",
         "pending"),
        ("profiles", ["id"], ["not a uuid!"], "id", "not a uuid!"),
    ],
)
def test_value_outside_allowed_set_is_invalid_value(input_dir, run_dir, dataset, header, row, column, bad):
    write_csv(input_dir, "redemptions.csv", [["id", "profile_id", "created_at"], [1, "p1", "2026-01-01"]])
    write_csv(input_dir, f"{dataset}.csv", [header, row])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, dataset)
    assert (reject["column"], reject["reason"], reject["value"]) == (column, "invalid_value", bad)


def test_claim_period_end_before_start_is_date_order(input_dir, run_dir):
    write_csv(
        input_dir,
        "benefit_definitions.csv",
        [
            [*DEFINITION_HEADER, "claim_period_start_at", "claim_period_end_at"],
            [1, "a", "A", "2026-01-01", "2026-02-01"],
            [2, "b", "B", "2026-03-01", "2026-02-01"],
            [3, "c", "C", "2026-03-01", "2026-03-01"],
        ],
    )

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "benefit_definitions")
    assert (reject["source_row"], reject["reason"]) == (2, "date_order")
    assert reject["column"] in {"claim_period_start_at", "claim_period_end_at"}


# Unique keys -------------------------------------------------------------------------


def test_repeated_key_keeps_first_and_rejects_later(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["id", "email"], ["p1", "first@x"], ["p2", "b@x"], ["p1", "second@x"]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["source_row"], reject["column"], reject["reason"]) == (3, "id", "duplicate_key")
    assert read_validated(run_dir, "profiles").filter(pl.col("id") == "p1")["email"].to_list() == ["first@x"]


def test_repeated_key_across_parts_keeps_first_file(input_dir, run_dir):
    write_csv(input_dir, "profiles-1.csv", [["id", "email"], ["p1", "one@x"]])
    write_csv(input_dir, "profiles-2.csv", [["id", "email"], ["p1", "two@x"]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "profiles")
    assert (reject["source_file"], reject["source_row"], reject["reason"]) == ("profiles-2.csv", 1, "duplicate_key")


def test_repeated_key_of_an_invalid_row_does_not_count(input_dir, run_dir):
    # Row 1 is rejected for its time zone, so row 2 is the first valid p1 and is kept.
    write_csv(input_dir, "profiles.csv", [["id", "timezone"], ["p1", "Nowhere/Land"], ["p1", "UTC"]])

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "profiles")) == {1: {"invalid_timezone"}}
    assert read_validated(run_dir, "profiles")["source_row"].to_list() == [2]


def test_repeated_key_of_a_row_with_unknown_reference_does_not_count(input_dir, run_dir):
    # Row 1 names an unknown definition, so row 2 is the first otherwise-valid benefit 10.
    write_csv(input_dir, "benefit_definitions.csv", [DEFINITION_HEADER, [1, "h", "N"]])
    write_csv(input_dir, "benefits.csv", [BENEFIT_HEADER, [10, "p1", 99, "2026-01-01"], [10, "p1", 1, "2026-01-01"]])

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "benefits")) == {1: {"unknown_definition"}}
    assert read_validated(run_dir, "benefits")["source_row"].to_list() == [2]


def test_definition_handle_is_unique(input_dir, run_dir):
    write_csv(input_dir, "benefit_definitions.csv", [DEFINITION_HEADER, [1, "birthday", "A"], [2, "birthday", "B"]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "benefit_definitions")
    assert (reject["source_row"], reject["column"], reject["reason"]) == (2, "handle", "duplicate_key")


# JsonLogic claim conditions -----------------------------------------------------------


def test_unsupported_jsonlogic_operator_is_invalid_rule(input_dir, run_dir):
    write_csv(
        input_dir,
        "benefit_definitions.csv",
        [
            [*DEFINITION_HEADER, "claim_condition"],
            [1, "ok", "OK", '{"==": [{"var": "birth_month"}, 4]}'],
            [2, "bad", "Bad", '{"no_such_operator": [1, 2]}'],
        ],
    )

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "benefit_definitions")
    assert (reject["source_row"], reject["column"], reject["reason"]) == (2, "claim_condition", "invalid_rule")
    assert "no_such_operator" in reject["detail"]


def test_claim_condition_nested_too_deep_is_invalid_rule_and_one_a_level_less_is_accepted(input_dir, run_dir):
    # 900 levels crashed the whole run with an internal RecursionError: one data row.
    def nested(levels: int) -> str:
        return '{"!": ' * levels + "true" + "}" * levels

    write_csv(input_dir, "benefit_definitions.csv", [[*DEFINITION_HEADER, "claim_condition"],
                                                     [1, "deep", "D", nested(900)], [2, "ok", "K", nested(256)]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "benefit_definitions")
    assert (reject["source_row"], reject["column"], reject["reason"]) == (1, "claim_condition", "invalid_rule")
    assert "nests 900 levels deep" in reject["detail"]


def test_a_long_claim_condition_is_explained_from_the_whole_rule(input_dir, run_dir):
    # A reject's value keeps 500 characters; the detail was worked out from that cut text,
    # so a long rule with one unknown operator was "not valid JSON".
    rule = '{"and": [' + ", ".join(['{"==": [{"var": "birth_month"}, 4]}'] * 20) + ', {"no_such_operator": [1]}]}'
    assert len(rule) > 500
    write_csv(input_dir, "benefit_definitions.csv", [[*DEFINITION_HEADER, "claim_condition"], [1, "long", "L", rule]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "benefit_definitions")
    assert reject["reason"] == "invalid_rule"
    assert "no_such_operator" in reject["detail"], reject["detail"]


def test_claim_condition_that_does_not_parse_is_invalid_rule(input_dir, run_dir):
    write_csv(input_dir, "benefit_definitions.csv", [[*DEFINITION_HEADER, "claim_condition"], [1, "h", "N", '{"==": [1']])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "benefit_definitions")
    assert (reject["column"], reject["reason"]) == ("claim_condition", "invalid_rule")


# References ---------------------------------------------------------------------------


def test_benefit_with_unknown_definition_is_rejected(input_dir, run_dir):
    write_csv(input_dir, "benefit_definitions.csv", [DEFINITION_HEADER, [1, "h", "N"]])
    write_csv(input_dir, "benefits.csv", [BENEFIT_HEADER, [10, "p1", 1, "2026-01-01"], [11, "p1", 99, "2026-01-01"]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "benefits")
    assert (reject["source_row"], reject["column"], reject["reason"], reject["value"]) == (
        2, "benefit_definition_id", "unknown_definition", "99")


def test_benefit_of_a_rejected_definition_is_unknown_definition(input_dir, run_dir):
    write_csv(input_dir, "benefit_definitions.csv", [[*DEFINITION_HEADER, "period"], [1, "h", "N", -5]])
    write_csv(input_dir, "benefits.csv", [BENEFIT_HEADER, [10, "p1", 1, "2026-01-01"]])

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "benefits")) == {1: {"unknown_definition"}}


@pytest.mark.parametrize("dataset", ["redemption_items", "returns"])
def test_row_naming_unknown_redemption_is_rejected(input_dir, run_dir, dataset):
    write_csv(input_dir, "redemptions.csv", [["id", "profile_id", "created_at"], [1, "p1", "2026-01-01"]])
    rows = {
        "redemption_items": [["redemption_id", "type", "item_id"], [1, "benefit", 5], [2, "benefit", 6]],
        "returns": [["redemption_id", "count"], [1, 1], [2, 1]],
    }[dataset]
    write_csv(input_dir, f"{dataset}.csv", rows)

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, dataset)
    assert (reject["source_row"], reject["column"], reject["reason"]) == (2, "redemption_id", "unknown_redemption")


def test_item_of_a_rejected_redemption_cascades_to_unknown_redemption(input_dir, run_dir):
    write_csv(
        input_dir,
        "redemptions.csv",
        [["id", "profile_id", "created_at"], [1, "p1", "2026-01-01"], [2, "p1", "not a time"]],
    )
    write_csv(input_dir, "redemption_items.csv", [["redemption_id", "type", "item_id"], [1, "benefit", 5], [2, "benefit", 6]])

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "redemptions")) == {2: {"invalid_type"}}
    assert reasons_by_row(read_rejects(run_dir, "redemption_items")) == {2: {"unknown_redemption"}}


def test_reference_fault_is_reported_with_other_faults(input_dir, run_dir):
    # One reject row per fault: a bad time zone AND an unknown definition.
    write_csv(input_dir, "benefit_definitions.csv", [DEFINITION_HEADER, [1, "h", "N"]])
    write_csv(input_dir, "benefits.csv", [[*BENEFIT_HEADER, "timezone"], [10, "p1", 99, "2026-01-01", "Nowhere/Land"]])

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "benefits")) == {1: {"invalid_timezone", "unknown_definition"}}


# Several faults in one row --------------------------------------------------------------


def test_row_with_two_faults_has_two_reject_rows_and_counts_once(input_dir, run_dir):
    write_csv(
        input_dir,
        "profiles.csv",
        [["id", "birth_day", "timezone"], ["p1", 40, "Mars/Base"], ["p2", 3, "UTC"]],
    )

    assert_ok(validate(input_dir, run_dir))

    rejects = read_rejects(run_dir, "profiles")
    assert sorted(rejects.select("source_row", "column", "reason").rows()) == [
        (1, "birth_day", "out_of_range"),
        (1, "timezone", "invalid_timezone"),
    ]
    (entry,) = read_manifest(run_dir)["inputs"]
    assert (entry["rows_read"], entry["accepted"], entry["rejected"]) == (2, 1, 1)


def test_value_of_wrong_type_is_not_also_reported_missing(input_dir, run_dir):
    # A required value that does not parse is one fault (invalid_type), not two.
    write_csv(input_dir, "benefit_definitions.csv", [DEFINITION_HEADER, [1, "h", "N"]])
    write_csv(input_dir, "benefits.csv", [BENEFIT_HEADER, ["ten", "p1", 1, "2026-01-01"]])

    assert_ok(validate(input_dir, run_dir))

    reject = only_reject(run_dir, "benefits")
    assert (reject["column"], reject["reason"], reject["value"]) == ("id", "invalid_type", "ten")


# Formats and file layouts --------------------------------------------------------------


def test_extra_columns_are_kept(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["region", "id", "loyalty_note"], ["VIC", "p1", "likes, commas"]])

    assert_ok(validate(input_dir, run_dir))

    validated = read_validated(run_dir, "profiles")
    assert validated.select("id", "region", "loyalty_note").rows() == [("p1", "VIC", "likes, commas")]


def test_validated_columns_are_declared_plus_extra_plus_source(input_dir, run_dir):
    from schemas import DATASETS

    write_csv(input_dir, "profiles.csv", [["id", "region"], ["p1", "VIC"]])

    assert_ok(validate(input_dir, run_dir))

    expected = set(DATASETS["profiles"].columns) | {"region", "source_file", "source_row"}
    assert set(read_validated(run_dir, "profiles").columns) == expected


@pytest.mark.parametrize("name", ["source_row", "source_file", "ordinality"])
def test_extra_column_with_an_internal_name_keeps_provenance(input_dir, run_dir, name):
    # e.g. a validated/ file fed back in as input carries source_file and source_row.
    write_csv(input_dir, "profiles.csv", [["id", name], ["p1", "7"]])

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles").select("id", "source_file", "source_row").rows() == [
        ("p1", "profiles.csv", 1)
    ]
    (entry,) = read_manifest(run_dir)["inputs"]
    assert (entry["rows_read"], entry["accepted"], entry["rejected"]) == (1, 1, 0)


def test_reject_file_has_the_contract_columns(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["id", "birth_day"], ["p1", 99]])

    assert_ok(validate(input_dir, run_dir))

    assert read_rejects(run_dir, "profiles").columns == REJECT_COLUMNS
    assert only_reject(run_dir, "profiles")["dataset"] == "profiles"


def test_gzipped_csv_is_read(input_dir, run_dir):
    write_file(input_dir, "profiles.csv.gz", gzip.compress(b"id,email\np1,a@x\np2,b@x\n"))

    assert_ok(validate(input_dir, run_dir))

    validated = read_validated(run_dir, "profiles")
    assert validated.select("id", "source_file", "source_row").rows() == [
        ("p1", "profiles.csv.gz", 1),
        ("p2", "profiles.csv.gz", 2),
    ]


def test_parquet_is_read_with_native_types(input_dir, run_dir):
    write_csv(input_dir, "benefit_definitions.csv", [DEFINITION_HEADER, [1, "h", "N"]])
    pl.DataFrame(
        {
            "id": [10, 11],
            "profile_id": ["p1", "p2"],
            "benefit_definition_id": [1, 7],
            "issued_at": [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)],
            "channel": ["pos", "web"],
        }
    ).write_parquet(input_dir / "benefits.parquet")

    assert_ok(validate(input_dir, run_dir))

    validated = read_validated(run_dir, "benefits")
    assert validated.select("id", "issued_at", "channel", "source_row").rows() == [
        (10, datetime(2026, 1, 1, tzinfo=UTC), "pos", 1)
    ]
    assert reasons_by_row(read_rejects(run_dir, "benefits")) == {2: {"unknown_definition"}}


def test_parquet_money_that_is_not_finite_is_out_of_range(input_dir, run_dir):
    # CSV text "NaN" is not a number at all; a Parquet double column can hold one.
    pl.DataFrame(
        {
            "external_id": ["T1", "T2", "T3"],
            "transacted_at": [datetime(2026, 1, 1, tzinfo=UTC)] * 3,
            "total": [12.5, float("nan"), float("inf")],
        }
    ).write_parquet(input_dir / "transactions.parquet")

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "transactions")["total"].to_list() == [12.5]
    assert reasons_by_row(read_rejects(run_dir, "transactions")) == {2: {"out_of_range"}, 3: {"out_of_range"}}


def test_parquet_text_values_are_parsed_like_csv(input_dir, run_dir):
    pl.DataFrame({"id": ["p1", "p2"], "birth_day": ["5", "5.5"]}).write_parquet(input_dir / "profiles.parquet")

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles")["birth_day"].to_list() == [5]
    assert reasons_by_row(read_rejects(run_dir, "profiles")) == {2: {"invalid_type"}}


def test_ndjson_rows_are_numbered_by_line_and_blank_lines_skipped(input_dir, run_dir):
    write_file(input_dir, "profiles.ndjson", '{"id": "p1"}\n\n{"id": "p3"}\n[1]\n{"id": "p5"}\n')

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles")["source_row"].to_list() == [1, 3, 5]
    assert reasons_by_row(read_rejects(run_dir, "profiles")) == {4: {"malformed_json"}}
    (entry,) = read_manifest(run_dir)["inputs"]
    assert (entry["rows_read"], entry["accepted"], entry["rejected"]) == (4, 3, 1)


def test_ndjson_empty_string_stays_empty_string(input_dir, run_dir):
    write_ndjson(input_dir, "profiles.ndjson", [{"id": "p1", "email": "", "first_name": None}])

    assert_ok(validate(input_dir, run_dir))

    row = read_validated(run_dir, "profiles").row(0, named=True)
    assert (row["email"], row["first_name"]) == ("", None)


def test_csv_empty_field_is_null(input_dir, run_dir):
    write_file(input_dir, "profiles.csv", "id,email\np1,\n")

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles")["email"].to_list() == [None]


def test_ndjson_lists_and_objects_are_typed(input_dir, run_dir):
    write_ndjson(input_dir, "profiles.jsonl", [{"id": "p1", "tags": ["vip", "gold"], "attributes": {"a": {"b": 1}},
                                                "birth_day": 7}])

    assert_ok(validate(input_dir, run_dir))

    row = read_validated(run_dir, "profiles").row(0, named=True)
    assert (row["tags"], json.loads(row["attributes"]), row["birth_day"]) == (["vip", "gold"], {"a": {"b": 1}}, 7)


def test_api_list_json_splits_nested_items(input_dir, run_dir):
    write_file(
        input_dir,
        "redemptions.json",
        json.dumps(
            {
                "data": [
                    {"id": 1, "profile_id": "p1", "created_at": "2026-01-01T00:00:00Z",
                     "items": [{"type": "benefit", "item_id": 5}, {"type": "reward", "item_id": 6, "count": 2}]},
                    {"id": 2, "profile_id": "p2", "created_at": "2026-01-02T00:00:00Z",
                     "items": [{"type": "point", "item_id": 7}]},
                ],
                "meta": {"total": 2},
            }
        ),
    )

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "redemptions")["id"].to_list() == [1, 2]
    items = read_validated(run_dir, "redemption_items")
    # Item rows are numbered by a running ordinal through the file: 1, 2 (redemption 1), 3.
    assert items.select("redemption_id", "type", "item_id", "source_file", "source_row").rows() == [
        (1, "benefit", 5, "redemptions.json", 1),
        (1, "reward", 6, "redemptions.json", 2),
        (2, "point", 7, "redemptions.json", 3),
    ]


def test_nested_item_of_rejected_redemption_is_unknown_redemption(input_dir, run_dir):
    write_file(
        input_dir,
        "redemptions.json",
        json.dumps({"data": [
            {"id": 1, "profile_id": "p1", "created_at": "2026-01-01", "items": [{"type": "benefit", "item_id": 5}]},
            {"id": 2, "profile_id": "p1", "created_at": "never", "items": [{"type": "benefit", "item_id": 6}]},
        ]}),
    )

    assert_ok(validate(input_dir, run_dir))

    assert reasons_by_row(read_rejects(run_dir, "redemption_items")) == {2: {"unknown_redemption"}}
    entries = {e["dataset"]: e for e in read_manifest(run_dir)["inputs"]}
    assert (entries["redemption_items"]["rows_read"], entries["redemption_items"]["rejected"]) == (2, 1)


def test_api_list_with_no_rows_is_zero_rows(input_dir, run_dir):
    # What the API returns when there is nothing to export; like a header-only CSV, not a fault.
    write_file(input_dir, "profiles.json", '{"data": []}')

    assert_ok(validate(input_dir, run_dir))

    (entry,) = read_manifest(run_dir)["inputs"]
    assert (entry["rows_read"], entry["accepted"], entry["rejected"]) == (0, 0, 0)


def test_header_only_csv_is_zero_rows(input_dir, run_dir):
    write_file(input_dir, "profiles.csv", "id,email\n")

    assert_ok(validate(input_dir, run_dir))

    (entry,) = read_manifest(run_dir)["inputs"]
    assert (entry["rows_read"], entry["accepted"], entry["rejected"]) == (0, 0, 0)


def test_plain_json_array_is_read(input_dir, run_dir):
    write_file(input_dir, "profiles.json", json.dumps([{"id": "p1"}, {"id": "p2", "region": "NSW"}]))

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "profiles").select("id", "region").rows() == [("p1", None), ("p2", "NSW")]


def test_csv_parts_are_read_as_one_dataset(input_dir, run_dir):
    write_csv(input_dir, "profiles-1.csv", [["id", "email"], ["p1", "a@x"], ["p2", "b@x"]])
    write_csv(input_dir, "profiles-2.csv", [["email", "id"], ["c@x", "p3"]])  # columns in another order

    assert_ok(validate(input_dir, run_dir))

    validated = read_validated(run_dir, "profiles")
    assert validated.select("id", "email", "source_file", "source_row").rows() == [
        ("p1", "a@x", "profiles-1.csv", 1),
        ("p2", "b@x", "profiles-1.csv", 2),
        ("p3", "c@x", "profiles-2.csv", 1),
    ]
    assert [e["path"] for e in read_manifest(run_dir)["inputs"]] == ["profiles-1.csv", "profiles-2.csv"]


def test_folder_of_parquet_parts_is_read(input_dir, run_dir):
    write_csv(input_dir, "benefit_definitions.csv", [DEFINITION_HEADER, [1, "h", "N"]])
    (input_dir / "benefits").mkdir()
    for part, ids in enumerate([[10, 11], [12]]):
        pl.DataFrame(
            {"id": ids, "profile_id": ["p1"] * len(ids), "benefit_definition_id": [1] * len(ids),
             "issued_at": ["2026-01-01 00:00:00"] * len(ids)}
        ).write_parquet(input_dir / "benefits" / f"part-{part}.parquet")

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "benefits").select("id", "source_file", "source_row").rows() == [
        (10, "benefits/part-0.parquet", 1),
        (11, "benefits/part-0.parquet", 2),
        (12, "benefits/part-1.parquet", 1),
    ]
    paths = [e["path"] for e in read_manifest(run_dir)["inputs"] if e["dataset"] == "benefits"]
    assert paths == ["benefits/part-0.parquet", "benefits/part-1.parquet"]


def test_every_dataset_gets_output_files_even_without_input(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["id"], ["p1"]])

    assert_ok(validate(input_dir, run_dir))

    for name in DATASET_NAMES:
        expected_rows = 1 if name == "profiles" else 0
        assert read_validated(run_dir, name).height == expected_rows, name
        assert read_rejects(run_dir, name).height == 0, name


# Manifest and reject ratio ---------------------------------------------------------------


def test_manifest_counts_add_up_per_file(input_dir, run_dir):
    # profiles: 4 rows, row 2 (bad month) and row 4 (duplicate p1) rejected.
    write_csv(input_dir, "profiles.csv", [["id", "birth_month"], ["p1", 1], ["p2", 13], ["p3", 2], ["p1", 3]])
    write_csv(input_dir, "benefit_definitions.csv", [DEFINITION_HEADER, [1, "h", "N"]])

    assert_ok(validate(input_dir, run_dir))

    entries = {e["path"]: e for e in read_manifest(run_dir)["inputs"]}
    assert set(entries) == {"profiles.csv", "benefit_definitions.csv"}
    assert (entries["profiles.csv"]["rows_read"], entries["profiles.csv"]["accepted"],
            entries["profiles.csv"]["rejected"]) == (4, 2, 2)
    assert (entries["benefit_definitions.csv"]["accepted"], entries["benefit_definitions.csv"]["rejected"]) == (1, 0)
    for entry in entries.values():
        assert entry["accepted"] + entry["rejected"] == entry["rows_read"]


def test_manifest_sha256_is_of_the_input_bytes(input_dir, run_dir):
    path = write_file(input_dir, "profiles.csv.gz", gzip.compress(b"id\np1\n"))

    assert_ok(validate(input_dir, run_dir))

    (entry,) = read_manifest(run_dir)["inputs"]
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry["dataset"] == "profiles"


def test_manifest_lists_outputs_with_hash_and_rows(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["id", "birth_day"], ["p1", 1], ["p2", 50]])

    assert_ok(validate(input_dir, run_dir))

    outputs = {o["path"]: o for o in read_manifest(run_dir)["outputs"]}
    for name in DATASET_NAMES:
        for kind in ("validated", "rejects"):
            assert f"{kind}/{name}.parquet" in outputs
    for path, output in outputs.items():
        assert output["sha256"] == sha256_file(run_dir / path), path
        assert output["rows"] == pl.read_parquet(run_dir / path).height, path


def test_manifest_records_run_and_stage(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["id"], ["p1"]])

    assert_ok(validate(input_dir, run_dir, "--as-of", "2026-04-05 01:30:00", "--naive-timezone", "Australia/Melbourne"))

    manifest = read_manifest(run_dir)
    assert manifest["run_id"]
    assert manifest["version"]
    assert datetime.fromisoformat(manifest["as_of"]) == datetime(2026, 4, 4, 14, 30, tzinfo=UTC)
    (stage,) = [s for s in manifest["stages"] if s["stage"] == "validate"]
    assert stage["seconds"] >= 0


def test_reject_ratio_above_limit_exits_1_and_still_writes_outputs(input_dir, run_dir):
    # 1 of 4 rows rejected = 25%, above the 20% limit.
    write_csv(input_dir, "profiles.csv", [["id", "birth_day"], ["p1", 1], ["p2", 2], ["p3", 99], ["p4", 4]])

    result = validate(input_dir, run_dir, "--max-reject-ratio", "0.2")

    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    assert read_validated(run_dir, "profiles").height == 3
    assert read_rejects(run_dir, "profiles").height == 1
    assert read_manifest(run_dir)["inputs"][0]["rejected"] == 1


def test_reject_ratio_at_limit_exits_0(input_dir, run_dir):
    # 1 of 4 rows rejected = exactly 25%: not above the limit.
    write_csv(input_dir, "profiles.csv", [["id", "birth_day"], ["p1", 1], ["p2", 2], ["p3", 99], ["p4", 4]])

    result = validate(input_dir, run_dir, "--max-reject-ratio", "0.25")

    assert_ok(result)


def test_reject_ratio_is_over_all_datasets(input_dir, run_dir):
    # profiles: 1 of 2 rejected (50%); with 8 good definitions it is 1 of 10 = 10% overall.
    write_csv(input_dir, "profiles.csv", [["id", "birth_day"], ["p1", 1], ["p2", 99]])
    write_csv(input_dir, "benefit_definitions.csv", [DEFINITION_HEADER] + [[i, f"h{i}", "N"] for i in range(1, 9)])

    assert_ok(validate(input_dir, run_dir, "--max-reject-ratio", "0.1"))


def test_redemption_item_count_defaults_to_one(input_dir, run_dir):
    # contract §2: redemption_items.count defaults to 1, whether the column is absent or empty.
    write_csv(input_dir, "redemptions.csv", [["id", "profile_id", "created_at"], [1, "p1", "2026-11-01 10:00:00"]])
    write_csv(input_dir, "redemption_items.csv",
              [["id", "redemption_id", "type", "item_id", "count"], [10, 1, "benefit", 5, ""], [11, 1, "benefit", 6, 3]])
    write_csv(input_dir, "returns.csv", [["redemption_id", "count"]])

    assert_ok(validate(input_dir, run_dir))

    items = read_validated(run_dir, "redemption_items").sort("id")
    assert items["count"].to_list() == [1, 3]
