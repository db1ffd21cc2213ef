"""Schema of the profiles export: one row per Omneo customer profile.

`id` is Omneo's profile UUID; lists and attributes arrive as JSON text in CSV.
"""

import pandera.polars as pa
import polars as pl

from schemas._common import JSON_OBJECT, StrList, Timestamp, optional, valid_timezone

KEY = "id"
REFERENCES = ()


class Profiles(pa.DataFrameModel):
    """A customer profile as exported from Omneo."""

    id: pl.Utf8 = pa.Field(nullable=False, str_matches=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    email: pl.Utf8 = optional()
    first_name: pl.Utf8 = optional()
    last_name: pl.Utf8 = optional()
    gender: pl.Utf8 = optional()
    birth_day: pl.Int64 = optional(ge=1, le=31)
    birth_month: pl.Int64 = optional(ge=1, le=12)
    birth_year: pl.Int64 = optional(ge=1900, le=2100)
    joined_at: Timestamp = optional()
    profile_type: pl.Utf8 = optional()
    tier_handle: pl.Utf8 = optional()
    tags: StrList = optional()
    statuses: StrList = optional()
    timezone: pl.Utf8 = optional()
    attributes: pl.Utf8 = optional(metadata=JSON_OBJECT)

    class Config:
        strict = False
        coerce = False

    valid_timezone = valid_timezone
