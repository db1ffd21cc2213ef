"""Schema of issued benefits: one row per benefit instance held by a profile.

Each instance must name a known, accepted benefit definition.
"""

import pandera.polars as pa
import polars as pl

from schemas._common import Reference, Timestamp, optional, valid_timezone

KEY = "id"
REFERENCES = (
    Reference("benefit_definition_id", "benefit_definitions", "id", "unknown_definition"),
)


class Benefits(pa.DataFrameModel):
    """A benefit instance as exported from Omneo."""

    id: pl.Int64 = pa.Field(nullable=False)
    profile_id: pl.Utf8 = pa.Field(nullable=False)
    benefit_definition_id: pl.Int64 = pa.Field(nullable=False)
    issued_at: Timestamp = pa.Field(nullable=False)
    external_id: pl.Utf8 = optional()
    expires_at: Timestamp = optional()
    timezone: pl.Utf8 = optional()
    claimed_at: Timestamp = optional()
    redemptions_remaining: pl.Int64 = optional(ge=0)
    redeem_code_pos: pl.Utf8 = optional()
    redeem_code_online: pl.Utf8 = optional()

    class Config:
        strict = False
        coerce = False

    valid_timezone = valid_timezone
