"""Schema of benefit definitions: the templates benefits are issued from.

A definition carries its limits, claim window and an optional JsonLogic claim condition.
"""

import pandera.polars as pa
import polars as pl

from schemas._common import JSON_TEXT, StrList, Timestamp, optional

KEY = "id"
UNIQUE = ("id", "handle")
REFERENCES = ()
# Row-level checks: the reject reason and the column a reject row names.
ROW_CHECKS = {
    "claim_period_in_order": ("date_order", "claim_period_end_at"),
    "allocations_remaining_within_total": ("out_of_range", "total_allocations_remaining"),
}


def rule_problem(rule_text: str) -> str | None:
    """Why a claim condition cannot be compiled, or None when it can."""
    # Imported here so that importing the schemas does not pull in the compiler.
    from pipeline.errors import RuleError
    from pipeline.jsonlogic import check_rule

    try:
        check_rule(rule_text)
    except RuleError as error:
        return str(error)
    return None


class BenefitDefinitions(pa.DataFrameModel):
    """A benefit definition as exported from Omneo."""

    id: pl.Int64 = pa.Field(nullable=False)
    handle: pl.Utf8 = pa.Field(nullable=False, str_length={"min_value": 1})
    name: pl.Utf8 = pa.Field(nullable=False)
    period: pl.Int64 = optional(ge=0)
    max_redemptions: pl.Int64 = optional(ge=1)
    max_global_redemptions: pl.Int64 = optional(ge=1)
    is_published: pl.Boolean = optional()
    is_archived: pl.Boolean = optional()
    is_assignable: pl.Boolean = optional()
    is_claimable: pl.Boolean = optional()
    is_reclaimable: pl.Boolean = optional()
    claim_period_start_at: Timestamp = optional()
    claim_period_end_at: Timestamp = optional()
    # JSON text of a JsonLogic rule; whether it parses is part of the rule check.
    claim_condition: pl.Utf8 = optional(metadata=JSON_TEXT)
    end_at: Timestamp = optional()
    total_allocations: pl.Int64 = optional(ge=0)
    total_allocations_remaining: pl.Int64 = optional(ge=0)
    redeem_code_pos: pl.Utf8 = optional()
    redeem_code_online: pl.Utf8 = optional()
    tags: StrList = optional()

    class Config:
        strict = False
        coerce = False

    @pa.check("claim_condition", name="supported_jsonlogic", element_wise=True)
    def claim_condition_compiles(cls, rule_text: str) -> bool:
        """The claim condition parses and uses only operators the compiler supports."""
        return rule_problem(rule_text) is None

    @pa.dataframe_check(name="claim_period_in_order")
    def claim_period_in_order(cls, data) -> pl.LazyFrame:
        """claim_period_start_at is not after claim_period_end_at."""
        start, end = pl.col("claim_period_start_at"), pl.col("claim_period_end_at")
        return data.lazyframe.select(start.is_null() | end.is_null() | (start <= end))

    @pa.dataframe_check(name="allocations_remaining_within_total")
    def allocations_within_total(cls, data) -> pl.LazyFrame:
        """total_allocations_remaining is not above total_allocations."""
        remaining, total = pl.col("total_allocations_remaining"), pl.col("total_allocations")
        return data.lazyframe.select(remaining.is_null() | total.is_null() | (remaining <= total))
