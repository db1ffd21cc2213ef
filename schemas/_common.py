"""Types and checks shared by the dataset schemas.

Each schema module declares one pandera model; these are the pieces they have in common.
"""

from __future__ import annotations

from dataclasses import dataclass
import pandera.polars as pa
import polars as pl

from pipeline import zones

Timestamp = pl.Datetime(time_unit="us", time_zone="UTC")
StrList = pl.List(pl.Utf8)


# tzdata (a declared dependency) makes this the same list on every machine.
IANA_TIMEZONES = zones.usable()

# How a text column is cast besides its dtype; read by pipeline.coerce. A JSON object
# (`attributes`) or any JSON text (`claim_condition`): a struct or map in Parquet, or an
# object in NDJSON, becomes its JSON text.
JSON_OBJECT = {"format": "json_object"}
JSON_TEXT = {"format": "json"}


def optional(**kwargs) -> pa.Field:
    """A column that may be absent from the file and may be null."""
    return pa.Field(nullable=True, required=False, **kwargs)


# A money amount beyond a trillion is a broken export, not a sale; NaN and infinity fail the
# range too. The bound also lets spend be summed as an exact decimal (profile_context.sql).
MONEY_LIMIT = 1e12


def money() -> pa.Field:
    """An optional money amount (negative for refunds) within ±MONEY_LIMIT."""
    return optional(ge=-MONEY_LIMIT, le=MONEY_LIMIT)


@pa.check("timezone", name="valid_timezone")
def valid_timezone(cls, data) -> pl.LazyFrame:
    """timezone is an IANA name such as Australia/Melbourne (shared by every model with one)."""
    column = pl.col(data.key)
    return data.lazyframe.select(column.is_null() | column.is_in(sorted(IANA_TIMEZONES)))


@dataclass(frozen=True)
class Reference:
    """A column whose value must name an accepted row of another dataset."""

    column: str
    dataset: str
    target: str
    reason: str
