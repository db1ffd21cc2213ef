"""Schema of POS transactions: one row per sale line, one per benefit used.

A row naming a redemption_id, benefit_id or redeem_code is a benefit usage.
"""

import pandera.polars as pa
import polars as pl

from schemas._common import Timestamp, money, optional

KEY = None
REFERENCES = ()


class Transactions(pa.DataFrameModel):
    """A POS transaction row."""

    external_id: pl.Utf8 = pa.Field(nullable=False, str_length={"min_value": 1})
    transacted_at: Timestamp = pa.Field(nullable=False)
    profile_id: pl.Utf8 = optional()
    location_external_id: pl.Utf8 = optional()
    total: pl.Float64 = money()
    status: pl.Utf8 = optional(isin=["completed", "voided", "refunded"])
    redemption_id: pl.Int64 = optional()
    benefit_id: pl.Int64 = optional()
    redeem_code: pl.Utf8 = optional()

    class Config:
        strict = False
        coerce = False
