"""Schema of returns: a number of a redemption's uses given back.

A return must name an accepted redemption.
"""

import pandera.polars as pa
import polars as pl

from schemas._common import Reference, Timestamp, optional

KEY = None
REFERENCES = (Reference("redemption_id", "redemptions", "id", "unknown_redemption"),)


class Returns(pa.DataFrameModel):
    """A return against a redemption."""

    redemption_id: pl.Int64 = pa.Field(nullable=False)
    count: pl.Int64 = pa.Field(nullable=False, ge=1)
    returned_at: Timestamp = optional()

    class Config:
        strict = False
        coerce = False
