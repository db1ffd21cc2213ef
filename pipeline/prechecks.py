"""Which typed rows pandera needs to see: a SQL screen generated from the pandera models.

pandera stays the validator of record: every reject row comes from its failure cases. But
handing it ten million rows, to find the few dozen that break a rule, costs seconds of
Arrow and polars work. Each of a model's checks has a SQL twin here that is TRUE for every
row that check could fail (it may flag more: pandera then says no); only flagged rows are
validated. A check with no twin (a rule written in Python, a check across columns) sends
every row to pandera, as before. tests/test_prechecks.py holds every twin to never
missing a row pandera rejects.
"""

from __future__ import annotations

import re

import pandera.polars as pa
import polars as pl
from sqlglot import exp

from pipeline.db import quote
from pipeline.zones import usable

# A pattern the twin hands to DuckDB's regex engine (RE2) only when it is plain enough to
# mean the same there as in polars' (Rust's regex): anchors, classes, counts, literals.
_PLAIN_PATTERN = re.compile(r"^\^?(\[[A-Za-z0-9_\-]+\]|[A-Za-z0-9_\-]|\{\d+(,\d+)?\}|[*+?])*\$?$")


def suspects(schema: pa.DataFrameSchema) -> str | None:
    """A SQL condition over the typed table, TRUE for every row some check of `schema` could
    fail; None when a check has no twin, so that every row must go to pandera."""
    if schema.checks:  # dataframe-wide checks read several columns in Python
        return None
    parts = []
    for name, column in schema.columns.items():
        col = quote(name)
        if not column.nullable:
            parts.append(f"{col} IS NULL")
        numeric = column.dtype.type in (pl.Float32, pl.Float64)
        for check in column.checks:
            twin = _twin(check, col, numeric)
            if twin is None:
                return None
            parts.append(f"({col} IS NOT NULL AND ({twin}))")
    return " OR ".join(parts) if parts else "false"


# A one-sided bound check: how a value fails it, and the statistic holding the bound.
_BOUND_FAILS = {
    "greater_than_or_equal_to": ("<", "min_value"),
    "less_than_or_equal_to": (">", "max_value"),
    "greater_than": ("<=", "min_value"),
    "less_than": (">=", "max_value"),
}


def _twin(check: pa.Check, col: str, numeric: bool) -> str | None:
    """TRUE where `check` could fail a non-null value of the column `col`."""
    stats = check.statistics or {}
    # NaN and infinities are flagged whatever the bound: how each engine orders them is
    # pandera's question, not this screen's.
    odd = f"NOT isfinite({col}) OR " if numeric else ""
    if check.name in _BOUND_FAILS:
        operator, bound = _BOUND_FAILS[check.name]
        return f"{odd}{col} {operator} {_number(stats[bound])}"
    if check.name == "in_range":
        return f"{odd}{col} < {_number(stats['min_value'])} OR {col} > {_number(stats['max_value'])}"
    if check.name == "isin":
        return f"{col} NOT IN ({', '.join(_text(v) for v in stats['allowed_values'])})"
    if check.name == "str_length":
        # Characters in polars, and in DuckDB's length(); bytes too, in case they differ.
        lower, upper, exact = stats.get("min_value"), stats.get("max_value"), stats.get("exact_value")
        if exact is not None:
            lower = upper = exact
        bounds = []
        if lower is not None:
            bounds.append(f"least(length({col}), strlen({col})) < {int(lower)}")
        if upper is not None:
            bounds.append(f"greatest(length({col}), strlen({col})) > {int(upper)}")
        return " OR ".join(bounds) or "false"
    if check.name == "str_matches" and _PLAIN_PATTERN.match(stats.get("pattern", "")):
        return f"NOT regexp_matches({col}, {_text(stats['pattern'])})"
    if check.name == "valid_timezone":
        # Against a subquery, not a literal list: DuckDB hashes the first and tests every
        # one of 598 names per row for the second (0.02 s against 0.75 s at 1M rows).
        names = ", ".join(_text(z) for z in sorted(usable()))
        return f"{col} NOT IN (SELECT unnest([{names}]))"
    return None


def _number(value: float | int) -> str:
    return exp.Literal.number(value).sql("duckdb")


def _text(value: object) -> str:
    return exp.Literal.string(str(value)).sql("duckdb")
