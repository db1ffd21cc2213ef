"""Timestamps: accepted only in the documented forms, read to the right instant.

YYYY-MM-DD, optionally followed by T or a space and HH:MM[:SS[.fraction]], optionally
followed by an offset (Z, ±HH, ±HH:MM, ±HHMM, at most ±14:59). Anything else (a zone
name, an abbreviation, `infinity`, a five-digit year) is an invalid_type reject, never a
reading hours off.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import assert_ok, read_rejects, read_validated, validate, write_csv

UTC = timezone.utc


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22 09:00:00 UTC",
        "2026-11-22 09:00:00 Australia/Perth",
        "2026-11-22 09:00:00 AWST",
        "2026-11-22T09:00:00 GMT+8",
        "infinity",
        "-infinity",
        "epoch",
        "now",
        "today",
        "12026-11-22 09:00:00",
        "0000-01-01",
        "-2026-01-01",
        "2026-01-01 BC",
        "2026-11-22 09:00:00+25:00",
        "2026-11-22 09:00:00+15:00",
        "2026-11-22 09:00:00+11:60",
        "2026-11-22 09:00:00+1",
        "2026-12-31 23:59:60",
        "2026-12-31 24:00:00",
        "2026-12-31 10:60:00",
        "2026-1-3 10:00",
        "2026-01-03 1:00",
        "2026-01-03 10",
        "2026-01-03T",
        "2026-01-03t10:00:00",
        "2026-01-03 10:00:00z",
        "2026-01-03Z",
        "2026-01-03 10:00:00.1234567890",
        "2026-01-03 10:00:00,5",
        "20260103T100000Z",
        "2026-W01-1",
        "2026-003",
        "1767434400",
        "2026-02-29",
    ],
)
def test_timestamp_outside_the_documented_forms_is_invalid_type(input_dir, run_dir, text):
    write_csv(input_dir, "profiles.csv", [["id", "joined_at"], ["p1", text], ["p2", "2026-01-01"]])

    assert_ok(validate(input_dir, run_dir))

    (reject,) = read_rejects(run_dir, "profiles").rows(named=True)
    assert (reject["source_row"], reject["column"], reject["reason"], reject["value"]) == (
        1, "joined_at", "invalid_type", text)
    assert read_validated(run_dir, "profiles")["id"].to_list() == ["p2"]


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-11-22", datetime(2026, 11, 21, 13, 0, tzinfo=UTC)),
        ("2026-11-22 09:00", datetime(2026, 11, 21, 22, 0, tzinfo=UTC)),
        ("2026-11-22T09:00:00", datetime(2026, 11, 21, 22, 0, tzinfo=UTC)),
        ("  2026-11-22 09:00:00  ", datetime(2026, 11, 21, 22, 0, tzinfo=UTC)),
        ("2026-11-22 09:00:00.5", datetime(2026, 11, 21, 22, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-22T09:00:00.123456789Z", datetime(2026, 11, 22, 9, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-22T09:00:00Z", datetime(2026, 11, 22, 9, 0, tzinfo=UTC)),
        ("2026-11-22T09:00:00+08", datetime(2026, 11, 22, 1, 0, tzinfo=UTC)),
        ("2026-11-22T09:00:00+08:00", datetime(2026, 11, 22, 1, 0, tzinfo=UTC)),
        ("2026-11-22 09:00:00+0800", datetime(2026, 11, 22, 1, 0, tzinfo=UTC)),
        ("2026-11-22 09:00:00 +0800", datetime(2026, 11, 22, 1, 0, tzinfo=UTC)),  # Ruby's Time#to_s
        ("2026-11-22 09:00:00-09:30", datetime(2026, 11, 22, 18, 30, tzinfo=UTC)),
        ("2026-11-22 09:00:00+14:00", datetime(2026, 11, 21, 19, 0, tzinfo=UTC)),
        ("2028-02-29 09:00", datetime(2028, 2, 28, 22, 0, tzinfo=UTC)),
        ("9999-12-31 23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("1899-12-31 23:00:00Z", datetime(1899, 12, 31, 23, 0, tzinfo=UTC)),
    ],
)
def test_documented_timestamp_forms_read_to_the_right_instant(input_dir, run_dir, text, instant):
    # No offset: a wall time in --naive-timezone (Melbourne, UTC+11 in November).
    write_csv(input_dir, "profiles.csv", [["id", "joined_at"], ["p1", text]])

    assert_ok(validate(input_dir, run_dir, "--naive-timezone", "Australia/Melbourne"))

    assert read_validated(run_dir, "profiles")["joined_at"].to_list() == [instant]


def test_timestamp_beyond_year_9999_or_before_year_1_once_converted_is_invalid_type(input_dir, run_dir):
    # Valid text, but the instant is in year 0 (a naive time read in Melbourne) or in
    # year 10000 (an offset west of UTC): no later stage could hold it.
    write_csv(
        input_dir,
        "profiles.csv",
        [["id", "joined_at"], ["p1", "0001-01-01 05:00:00"], ["p2", "9999-12-31 23:00:00-05:00"], ["p3", "0001-01-02"]],
    )

    assert_ok(validate(input_dir, run_dir, "--naive-timezone", "Australia/Melbourne"))

    assert read_rejects(run_dir, "profiles").select("source_row", "reason").rows() == [
        (1, "invalid_type"), (2, "invalid_type")]


def test_parquet_infinite_timestamps_are_invalid_type(input_dir, run_dir):
    # DuckDB reads the largest int64 microsecond value as `infinity`.
    stamps = pa.array([2**63 - 1, -(2**63) + 1, 1_767_225_600_000_000], pa.timestamp("us", "UTC"))
    pq.write_table(pa.table({"external_id": ["T1", "T2", "T3"], "transacted_at": stamps}), input_dir / "transactions.parquet")

    assert_ok(validate(input_dir, run_dir))

    assert read_rejects(run_dir, "transactions").select("source_row", "column", "reason").rows() == [
        (1, "transacted_at", "invalid_type"), (2, "transacted_at", "invalid_type")]
    assert read_validated(run_dir, "transactions")["transacted_at"].to_list() == [datetime(2026, 1, 1, tzinfo=UTC)]


def test_wall_time_in_a_dst_gap_is_read_after_the_gap(input_dir, run_dir):
    # 02:30 on 4 October 2026 does not exist in Melbourne (clocks go from 02:00 to 03:00):
    # it is read as 03:30 daylight time, 16:30 UTC the day before, as DuckDB's ICU does.
    write_csv(input_dir, "profiles.csv", [["id", "joined_at"], ["p1", "2026-10-04 02:30:00"]])

    assert_ok(validate(input_dir, run_dir, "--naive-timezone", "Australia/Melbourne"))

    assert read_validated(run_dir, "profiles")["joined_at"].to_list() == [datetime(2026, 10, 3, 16, 30, tzinfo=UTC)]
