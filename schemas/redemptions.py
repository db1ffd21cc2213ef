"""Schema of Omneo redemptions: one row per redemption event.

The flat form carries one item as `benefit_id` and `count`; nested `items` are split out.
"""

import pandera.polars as pa
import polars as pl

from schemas._common import Timestamp, money, optional

KEY = "id"
REFERENCES = ()


class Redemptions(pa.DataFrameModel):
    """A redemption (or a return/reversal of one) recorded by Omneo."""

    id: pl.Int64 = pa.Field(nullable=False)
    profile_id: pl.Utf8 = pa.Field(nullable=False)
    created_at: Timestamp = pa.Field(nullable=False)
    type: pl.Utf8 = optional()
    total: pl.Float64 = money()
    transaction_id: pl.Utf8 = optional()
    external_id: pl.Utf8 = optional()
    benefit_id: pl.Int64 = optional()
    count: pl.Int64 = optional(ge=0)

    class Config:
        strict = False
        coerce = False
