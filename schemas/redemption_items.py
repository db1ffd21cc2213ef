"""Schema of redemption items: what one redemption used (benefit, reward or points).

An item must belong to an accepted redemption; an unknown benefit is a finding, not a reject.
"""

import pandera.polars as pa
import polars as pl

from schemas._common import Reference, optional

KEY = "id"
REFERENCES = (Reference("redemption_id", "redemptions", "id", "unknown_redemption"),)


class RedemptionItems(pa.DataFrameModel):
    """One item of a redemption."""

    id: pl.Int64 = optional()
    redemption_id: pl.Int64 = pa.Field(nullable=False)
    type: pl.Utf8 = pa.Field(nullable=False, isin=["benefit", "reward", "point"])
    item_id: pl.Int64 = pa.Field(nullable=False)
    count: pl.Int64 = optional(ge=0, metadata={"default": 1})  # contract §2: count defaults to 1

    class Config:
        strict = False
        coerce = False
