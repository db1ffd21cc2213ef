"""The SQL screen in front of pandera never lets a failing row through.

For every dataset's model, random typed rows (bounds, NaN, infinities, odd text, every time
zone name and some that are not) are validated by pandera over all rows; every row it
rejects must be one the screen (`pipeline.prechecks.suspects`) flags.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import duckdb
import pandera.polars as pa
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import prechecks
from pipeline.validate import _checked_part
from schemas import DATASETS
from schemas._common import IANA_TIMEZONES

NUMBERS = st.one_of(st.none(), st.integers(-5, 40), st.integers(1890, 2110), st.sampled_from([-10**12, 10**12]))
FLOATS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([-1e12, 1e12, -1e12 - 1, 1e12 + 1, 0.0, -0.0]))
TEXT = st.one_of(st.none(), st.text(max_size=70), st.sampled_from(["", "a", "completed", "voided", "benefit", "x" * 64,
                                                                   "A" * 65, "ab-c_9", "-ab", "a b", "é", "a\n"]))
ZONES = st.one_of(st.none(), st.sampled_from(sorted(IANA_TIMEZONES)), st.sampled_from(["localtime", "UTC ", "utc", ""]))


def values_for(name: str, dtype: pl.DataType):
    if name == "timezone":
        return ZONES
    if isinstance(dtype, pl.Datetime):
        return st.one_of(st.none(), st.datetimes(timezones=st.just(timezone.utc)))
    if dtype in (pl.Float32, pl.Float64):
        return FLOATS
    if dtype.is_integer():
        return NUMBERS
    return TEXT


SCREENED = [name for name, dataset in DATASETS.items() if prechecks.suspects(_checked_part(dataset.schema)) is not None]


def test_the_big_datasets_are_screened():
    # benefit_definitions keeps every row in pandera: its rules are Python (JsonLogic, dates).
    assert set(SCREENED) >= {"profiles", "benefits", "redemptions", "redemption_items", "returns", "transactions"}


@pytest.mark.parametrize("name", SCREENED)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_row_pandera_rejects_is_flagged(name, data):
    schema = _checked_part(DATASETS[name].schema)
    columns = {col: column.dtype.type for col, column in schema.columns.items()}
    rows = data.draw(st.lists(st.fixed_dictionaries({col: values_for(col, dtype) for col, dtype in columns.items()}),
                              min_size=1, max_size=30))
    frame = pl.DataFrame(rows, schema=columns, strict=False)

    try:
        schema.validate(frame, lazy=True)
        failing = set()
    except pa.errors.SchemaErrors as errors:
        failing = set(errors.failure_cases["index"].drop_nulls().to_list())

    con = duckdb.connect()
    con.register("typed", frame.with_row_index("row").to_arrow())
    flagged = {r for (r,) in con.execute(f"SELECT row FROM typed WHERE {prechecks.suspects(schema)}").fetchall()}

    assert failing <= flagged, [rows[i] for i in sorted(failing - flagged)]


def test_nan_and_infinity_are_flagged_for_money():
    schema = _checked_part(DATASETS["transactions"].schema)
    moment = datetime(2026, 11, 22, tzinfo=timezone.utc)
    frame = pl.DataFrame({"external_id": ["a", "b", "c"], "transacted_at": [moment] * 3,
                          "total": [math.nan, math.inf, 5.0], "status": [None] * 3},
                         schema={"external_id": pl.Utf8, "transacted_at": pl.Datetime("us", "UTC"),
                                 "total": pl.Float64, "status": pl.Utf8})
    con = duckdb.connect()
    con.register("typed", frame.with_row_index("row").to_arrow())
    flagged = {r for (r,) in con.execute(f"SELECT row FROM typed WHERE {prechecks.suspects(schema)}").fetchall()}
    assert flagged == {0, 1}
