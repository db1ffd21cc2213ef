"""Every declared column against every physical type a Parquet or NDJSON file can give it.

A value is accepted (and read as the text it stands for, then as the declared type) or
rejected `invalid_type` naming its column; nothing crashes. One validate run holds the
whole matrix: a folder of parts per dataset, one Parquet part per physical type in which
every declared column has that type, and one NDJSON part with a line per JSON kind.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import assert_ok, read_rejects, read_validated, validate, write_csv, write_file, write_ndjson
from schemas import DATASETS

UTC = dt.timezone.utc
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5)

# What each declared column is, as the matrix sees it.
TEXT, JSON_OBJECT, JSON_TEXT, WHOLE, NUMBER, BOOLEAN, TIMESTAMP, LIST = (
    "text", "json_object", "json", "whole", "number", "boolean", "timestamp", "list")
ALL = {TEXT, JSON_OBJECT, JSON_TEXT, WHOLE, NUMBER, BOOLEAN, TIMESTAMP, LIST}
# Scalars with a text: accepted wherever their text parses.
NUMERIC_ONE = {TEXT, JSON_TEXT, WHOLE, NUMBER, BOOLEAN, LIST}  # the value 1 (reads as true, too)


def declared_kind(column) -> str:
    fmt = (column.metadata or {}).get("format")
    if fmt == "json_object":
        return JSON_OBJECT
    if fmt == "json":
        return JSON_TEXT
    dtype = column.dtype.type
    if dtype == pl.Utf8:
        return TEXT
    if dtype == pl.Int64:
        return WHOLE
    if dtype == pl.Float64:
        return NUMBER
    if dtype == pl.Boolean:
        return BOOLEAN
    if isinstance(dtype, pl.Datetime):
        return TIMESTAMP
    if isinstance(dtype, pl.List):
        return LIST
    raise AssertionError(f"no kind for {column.name}: {dtype}")


def one(value, arrow_type: pa.DataType) -> pa.Array:
    """A column of two rows: the value, then null."""
    return pa.array([value, None], arrow_type)


# name → (column of [value, null], the declared kinds that accept the value)
PARQUET_TYPES: dict[str, tuple[pa.Array, set[str]]] = {
    "int8": (one(1, pa.int8()), NUMERIC_ONE),
    "int16": (one(1, pa.int16()), NUMERIC_ONE),
    "int32": (one(1, pa.int32()), NUMERIC_ONE),
    "int64": (one(1, pa.int64()), NUMERIC_ONE),
    "uint8": (one(1, pa.uint8()), NUMERIC_ONE),
    "uint16": (one(1, pa.uint16()), NUMERIC_ONE),
    "uint32": (one(1, pa.uint32()), NUMERIC_ONE),
    "uint64_small": (one(1, pa.uint64()), NUMERIC_ONE),
    # Beyond a 64-bit whole number: text keeps every digit, a number is a double.
    "uint64_huge": (one(2**64 - 1, pa.uint64()), {TEXT, JSON_TEXT, NUMBER, LIST}),
    "float16": (one(1.5, pa.float16()), {TEXT, JSON_TEXT, NUMBER, LIST}),
    "float32": (one(0.5, pa.float32()), {TEXT, JSON_TEXT, NUMBER, LIST}),
    "float64_whole": (one(12345.0, pa.float64()), {TEXT, JSON_TEXT, WHOLE, NUMBER, LIST}),
    "float64": (one(0.1, pa.float64()), {TEXT, JSON_TEXT, NUMBER, LIST}),
    # NaN has no text and no whole number; as a number it is kept, for the range rule.
    "float64_nan": (one(float("nan"), pa.float64()), {NUMBER}),
    "float64_inf": (one(float("inf"), pa.float64()), {NUMBER}),
    "decimal": (one(decimal.Decimal("12.50"), pa.decimal128(10, 2)), {TEXT, JSON_TEXT, NUMBER, LIST}),
    "decimal_whole": (one(decimal.Decimal("7.00"), pa.decimal128(10, 2)), {TEXT, JSON_TEXT, WHOLE, NUMBER, LIST}),
    "decimal_wide": (one(decimal.Decimal(10**30), pa.decimal128(38, 0)), {TEXT, JSON_TEXT, NUMBER, LIST}),
    "decimal256": (one(decimal.Decimal("1.5"), pa.decimal256(40, 1)), {TEXT, JSON_TEXT, NUMBER, LIST}),
    "bool": (one(True, pa.bool_()), {TEXT, JSON_TEXT, BOOLEAN, LIST}),
    "string": (one("abc", pa.string()), {TEXT, JSON_TEXT, LIST}),
    "large_string": (one("abc", pa.large_string()), {TEXT, JSON_TEXT, LIST}),
    "dictionary": (pa.array(["abc", None]).dictionary_encode(), {TEXT, JSON_TEXT, LIST}),
    "string_timestamp": (one("2026-01-02 03:04:05", pa.string()), {TEXT, JSON_TEXT, TIMESTAMP, LIST}),
    "binary_utf8": (one(b"abc", pa.binary()), {TEXT, JSON_TEXT, LIST}),
    "binary_not_utf8": (one(b"\xff\xfe", pa.large_binary()), set()),
    "fixed_binary": (one(b"ab", pa.binary(2)), {TEXT, JSON_TEXT, LIST}),
    "uuid": (pa.array([uuid.UUID(int=1).bytes, None], pa.uuid()), {TEXT, JSON_TEXT, LIST}),
    "json": (pa.array(['{"a": 1}', None], pa.json_()), {JSON_OBJECT, JSON_TEXT}),
    "date32": (one(WHEN.date(), pa.date32()), {TIMESTAMP}),
    "date64": (one(WHEN.date(), pa.date64()), {TIMESTAMP}),
    **{f"timestamp_{unit}": (one(WHEN, pa.timestamp(unit)), {TIMESTAMP}) for unit in ("s", "ms", "us", "ns")},
    **{
        f"timestamptz_{unit}": (one(WHEN.replace(tzinfo=UTC), pa.timestamp(unit, "UTC")), {TIMESTAMP})
        for unit in ("s", "ms", "us", "ns")
    },
    "timestamptz_perth": (one(WHEN.replace(tzinfo=UTC), pa.timestamp("ms", "Australia/Perth")), {TIMESTAMP}),
    "time32": (one(dt.time(1, 2), pa.time32("ms")), set()),
    "time64": (one(dt.time(1, 2), pa.time64("us")), set()),
    "time64_ns": (one(dt.time(1, 2), pa.time64("ns")), set()),
    "duration": (one(dt.timedelta(days=1), pa.duration("us")), set()),
    "struct": (one({"a": 1}, pa.struct([("a", pa.int64())])), {JSON_OBJECT, JSON_TEXT}),
    "map": (one([("k", 1)], pa.map_(pa.string(), pa.int64())), {JSON_OBJECT, JSON_TEXT}),
    "list_string": (one(["vip", "app"], pa.list_(pa.string())), {LIST, JSON_TEXT}),
    "large_list_string": (one(["vip"], pa.large_list(pa.large_string())), {LIST, JSON_TEXT}),
    "fixed_list_string": (one(["a", "b"], pa.list_(pa.string(), 2)), {LIST, JSON_TEXT}),
    "list_int": (one([1, 2], pa.list_(pa.int64())), {LIST, JSON_TEXT}),
    "list_double": (one([1.0, 2.5], pa.list_(pa.float64())), {LIST, JSON_TEXT}),
    "list_with_null": (one(["a", None], pa.list_(pa.string())), {JSON_TEXT}),
    "list_struct": (one([{"a": 1}], pa.list_(pa.struct([("a", pa.int64())]))), {JSON_TEXT}),
    "list_list": (one([["a"]], pa.list_(pa.list_(pa.string()))), {JSON_TEXT}),
    # A column with no value at all: every row is null, in every declared type.
    "null": (pa.nulls(2), ALL),
}
# INT96 is how Spark and Impala wrote timestamps; pyarrow writes it on request only.
INT96 = "timestamp_int96"

# NDJSON: one line per kind of JSON value, every declared column set to it.
JSON_VALUES: list[tuple[object, set[str]]] = [
    ("abc", {TEXT, JSON_TEXT, LIST}),
    ("", {TEXT, JSON_TEXT, LIST}),
    ("2026-01-02T03:04:05Z", {TEXT, JSON_TEXT, TIMESTAMP, LIST}),
    (1, NUMERIC_ONE),
    (7, {TEXT, JSON_TEXT, WHOLE, NUMBER, LIST}),
    (12345.0, {TEXT, JSON_TEXT, WHOLE, NUMBER, LIST}),
    (0.5, {TEXT, JSON_TEXT, NUMBER, LIST}),
    (123456789012345678901234, {TEXT, JSON_TEXT, NUMBER, LIST}),
    (True, {TEXT, JSON_TEXT, BOOLEAN, LIST}),
    ({"a": 1}, {JSON_OBJECT, JSON_TEXT}),
    (["vip", "app"], {LIST, JSON_TEXT}),
    ([1, 2.0, True], {LIST, JSON_TEXT}),
    ([None], {JSON_TEXT}),
    ([["a"]], {JSON_TEXT}),
    ([{"a": 1}], {JSON_TEXT}),
    (None, ALL),
]


def write_matrix(input_dir: Path) -> None:
    for name, dataset in DATASETS.items():
        columns = dataset.columns
        folder = input_dir / name
        folder.mkdir()
        for type_name, (array, _) in PARQUET_TYPES.items():
            table = pa.table({column: array for column in columns})
            pq.write_table(table, folder / f"{type_name}.parquet")
        pq.write_table(
            pa.table({column: one(WHEN, pa.timestamp("ns")) for column in columns}),
            folder / f"{INT96}.parquet",
            use_deprecated_int96_timestamps=True,
        )
        write_ndjson(folder, "json.ndjson", [{column: value for column in columns} for value, _ in JSON_VALUES])


def expected_rejects() -> set[tuple[str, str, int, str]]:
    """(dataset, file, row, column) of every invalid_type reject the matrix must give."""
    expected = set()
    for name, dataset in DATASETS.items():
        for column_name, column in dataset.schema.columns.items():
            kind = declared_kind(column)
            for type_name, (_, accepted) in PARQUET_TYPES.items():
                if kind not in accepted:
                    expected.add((name, f"{name}/{type_name}.parquet", 1, column_name))
            if kind != TIMESTAMP:
                expected.add((name, f"{name}/{INT96}.parquet", 1, column_name))
            for line, (_, accepted) in enumerate(JSON_VALUES, 1):
                if kind not in accepted:
                    expected.add((name, f"{name}/json.ndjson", line, column_name))
    return expected


def test_every_declared_column_accepts_or_rejects_every_physical_type(input_dir, run_dir):
    write_matrix(input_dir)

    result = validate(input_dir, run_dir)

    assert_ok(result)
    found = set()
    for name in DATASETS:
        rejects = read_rejects(run_dir, name)
        typed = rejects.filter(pl.col("reason") == "invalid_type")
        assert typed.filter(pl.col("column") == "").height == 0
        found |= {(name, r["source_file"], r["source_row"], r["column"]) for r in typed.iter_rows(named=True)}
        # The null row of every Parquet part: nothing is a type fault.
        assert typed.filter(pl.col("source_row") == 2, pl.col("source_file").str.ends_with(".parquet")).height == 0
    expected = expected_rejects()
    assert sorted(found - expected) == [], "rejected but should be accepted"
    assert sorted(expected - found) == [], "accepted but should be rejected"


def test_a_type_reject_names_what_the_file_holds(input_dir, run_dir):
    pq.write_table(pa.table({"id": ["p1"], "birth_day": pa.array([{"a": 1}])}), input_dir / "profiles.parquet")
    write_ndjson(input_dir, "transactions.ndjson", [{"external_id": {"pos": 1}, "transacted_at": "2026-01-01"}])

    assert_ok(validate(input_dir, run_dir))

    (profile,) = read_rejects(run_dir, "profiles").rows(named=True)
    assert (profile["column"], profile["reason"], profile["value"]) == ("birth_day", "invalid_type", '{"a":1}')
    assert profile["detail"] == "expected a whole number, got a STRUCT(a BIGINT) value"
    (sale,) = read_rejects(run_dir, "transactions").rows(named=True)
    assert (sale["column"], sale["reason"], sale["value"]) == ("external_id", "invalid_type", '{"pos":1}')
    assert sale["detail"] == "expected text, got a JSON object"


# Canonical values --------------------------------------------------------------------


def test_text_columns_read_numbers_as_their_canonical_text(input_dir, run_dir):
    # The POS export's numeric external_id, a pandas id column with nulls (float64), a
    # boolean, a decimal and a UUID, each in a text column.
    pq.write_table(
        pa.table({
            "external_id": pa.array([12345, 2**63 - 1, 7], pa.int64()),
            "transacted_at": pa.array([WHEN] * 3, pa.timestamp("us", "UTC")),
            "profile_id": pa.array([12345.0, None, -0.0], pa.float64()),
            "location_external_id": pa.array([0.1, 1e300, 2.5e-7], pa.float64()),
            "redeem_code": pa.array([True, False, None]),
            "status_note": pa.array(["x", "y", "z"]),
        }),
        input_dir / "transactions.parquet",
    )
    pq.write_table(
        pa.table({
            "id": pa.array([uuid.UUID(int=2**128 - 1).bytes], pa.uuid()),
            "email": pa.array([decimal.Decimal("12.50")], pa.decimal128(10, 2)),
            "first_name": pa.array([decimal.Decimal("7.00")], pa.decimal128(10, 2)),
            "last_name": pa.array([0.1], pa.float32()),
            "gender": pa.array([2**64 - 1], pa.uint64()),
        }),
        input_dir / "profiles.parquet",
    )

    assert_ok(validate(input_dir, run_dir))

    sales = read_validated(run_dir, "transactions")
    assert sales.select("external_id", "profile_id", "location_external_id", "redeem_code").rows() == [
        ("12345", "12345", "0.1", "true"),
        ("9223372036854775807", None, "1e+300", "false"),
        ("7", "0", "2.5e-07", None),
    ]
    profile = read_validated(run_dir, "profiles").row(0, named=True)
    assert (profile["id"], profile["email"], profile["first_name"], profile["last_name"], profile["gender"]) == (
        "ffffffff-ffff-ffff-ffff-ffffffffffff", "12.5", "7", "0.1", "18446744073709551615")


def test_ndjson_numbers_in_text_columns_read_as_canonical_text(input_dir, run_dir):
    write_file(
        input_dir,
        "transactions.ndjson",
        '{"external_id": 12345, "transacted_at": "2026-01-01"}\n'
        '{"external_id": 12345.0, "transacted_at": "2026-01-01"}\n'
        '{"external_id": 123456789012345678901234, "transacted_at": "2026-01-01"}\n'
        '{"external_id": 1.50, "transacted_at": "2026-01-01"}\n'
        '{"external_id": true, "transacted_at": "2026-01-01"}\n'
        '{"external_id": "0012", "transacted_at": "2026-01-01"}\n',
    )

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "transactions")["external_id"].to_list() == [
        "12345", "12345", "123456789012345678901234", "1.5", "true", "0012"]


def test_whole_numbers_from_every_numeric_type(input_dir, run_dir):
    write_csv(input_dir, "redemptions.csv", [["id", "profile_id", "created_at"], [1, "p1", "2026-01-01"]])
    pq.write_table(
        pa.table({
            "redemption_id": pa.array([1, 1, 1, 1, 1], pa.int8()),
            "count": pa.array([1.0, 2.5, float("nan"), 2.0**63, 3], pa.float64()),
        }),
        input_dir / "returns.parquet",
    )

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "returns").select("redemption_id", "count", "source_row").rows() == [
        (1, 1, 1), (1, 3, 5)]
    rejects = read_rejects(run_dir, "returns")
    assert rejects.select("source_row", "column", "reason").rows() == [
        (2, "count", "invalid_type"), (3, "count", "invalid_type"), (4, "count", "invalid_type")]


def test_float32_numbers_read_as_written(input_dir, run_dir):
    # 0.1 as float32 is 0.100000001490116...; read through its own shortest text it is 0.1.
    pq.write_table(
        pa.table({"external_id": ["T1"], "transacted_at": ["2026-01-01"], "total": pa.array([0.1], pa.float32())}),
        input_dir / "transactions.parquet",
    )

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "transactions")["total"].to_list() == [0.1]


def test_lists_and_objects_from_parquet(input_dir, run_dir):
    pq.write_table(
        pa.table({
            "id": ["p1", "p2"],
            "tags": pa.array([[1, 2], [3]], pa.list_(pa.int64())),
            "statuses": pa.array([["verified"], []], pa.list_(pa.string())),
            "attributes": pa.array([{"comms": {"email_promo": True}}, None]),
        }),
        input_dir / "profiles.parquet",
    )

    assert_ok(validate(input_dir, run_dir))

    validated = read_validated(run_dir, "profiles")
    assert validated.select("tags", "statuses").rows() == [(["1", "2"], ["verified"]), (["3"], [])]
    assert json.loads(validated["attributes"][0]) == {"comms": {"email_promo": True}}


def test_claim_condition_as_an_ndjson_object_or_a_parquet_struct(input_dir, run_dir):
    rule = {"==": [{"var": "birth_month"}, 11]}
    write_ndjson(input_dir, "benefit_definitions-1.ndjson", [
        {"id": 1, "handle": "a", "name": "A", "claim_condition": rule},
        {"id": 2, "handle": "b", "name": "B", "claim_condition": json.dumps(rule)},
    ])

    assert_ok(validate(input_dir, run_dir))

    conditions = read_validated(run_dir, "benefit_definitions")["claim_condition"].to_list()
    assert [json.loads(c) for c in conditions] == [rule, rule]


@pytest.mark.parametrize(
    ("array", "instant"),
    [
        (pa.array([WHEN], pa.timestamp("ns")), dt.datetime(2026, 1, 1, 16, 4, 5, tzinfo=UTC)),
        (pa.array([WHEN.replace(tzinfo=UTC)], pa.timestamp("ms", "UTC")), WHEN.replace(tzinfo=UTC)),
        (pa.array([WHEN.date()], pa.date32()), dt.datetime(2026, 1, 1, 13, 0, tzinfo=UTC)),
    ],
    ids=["naive", "utc", "date"],
)
def test_parquet_timestamps_without_zone_are_wall_times(input_dir, run_dir, array, instant):
    # A TIMESTAMP or DATE without a zone is read like text without an offset: in
    # --naive-timezone (Melbourne, UTC+11 in January).
    pq.write_table(pa.table({"external_id": ["T1"], "transacted_at": array}), input_dir / "transactions.parquet")

    assert_ok(validate(input_dir, run_dir, "--naive-timezone", "Australia/Melbourne"))

    assert read_validated(run_dir, "transactions")["transacted_at"].to_list() == [instant]


@pytest.mark.parametrize("text", ["1_000", "1,000", "0x10", "1.5e", "12 34", "--1", "1e3.5"])
def test_number_text_outside_plain_decimal_notation_is_invalid_type(input_dir, run_dir, text):
    # DuckDB's DOUBLE cast reads "1_000" as 1000: a digit separator the CSV never meant.
    write_csv(input_dir, "transactions.csv", [["external_id", "transacted_at", "total"], ["T1", "2026-01-01", text]])

    assert_ok(validate(input_dir, run_dir))

    (reject,) = read_rejects(run_dir, "transactions").rows(named=True)
    assert (reject["column"], reject["reason"], reject["value"]) == ("total", "invalid_type", text)


@pytest.mark.parametrize(("text", "number"), [(" 12.5 ", 12.5), ("-3", -3.0), ("+.5", 0.5), ("5.", 5.0), ("1e3", 1000.0),
                                              ("-2.5E-2", -0.025)])
def test_number_text_in_decimal_notation_is_read(input_dir, run_dir, text, number):
    write_csv(input_dir, "transactions.csv", [["external_id", "transacted_at", "total"], ["T1", "2026-01-01", text]])

    assert_ok(validate(input_dir, run_dir))

    assert read_validated(run_dir, "transactions")["total"].to_list() == [number]
