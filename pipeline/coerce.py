"""Cast a dataset's raw columns to the types its pandera model declares, in DuckDB.

The model is the single statement of each column's type; this module turns it into one
SELECT whose `_cast_errors` column lists every value that did not fit its type.
"""

from __future__ import annotations

import polars as pl
import sqlglot
from sqlglot import exp

from schemas import Dataset

# Text forms accepted per type. A value matching none of them is an `invalid_type` reject.
_TEXT_PARSERS = {
    "BIGINT": "TRY_CAST(regexp_extract(:x, '^\\s*([+-]?[0-9]+)(\\.0*)?\\s*$', 1) AS BIGINT)",
    "DOUBLE": "CASE WHEN isfinite(TRY_CAST(trim(:x) AS DOUBLE)) THEN TRY_CAST(trim(:x) AS DOUBLE) END",
    "BOOLEAN": (
        "CASE WHEN lower(trim(:x)) IN ('true', 't', 'yes', 'y', '1') THEN true"
        " WHEN lower(trim(:x)) IN ('false', 'f', 'no', 'n', '0') THEN false END"
    ),
    # An offset after the time (Z, +11, +11:00, +1100) makes an instant; no offset is a
    # wall time in the naive time zone (UTC unless the config sets naive_timezone).
    "TIMESTAMPTZ": (
        "CASE WHEN regexp_matches(trim(:x), '[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?\\s*(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$')"
        " THEN TRY_CAST(trim(:x) AS TIMESTAMPTZ)"
        " ELSE timezone(:tz, TRY_CAST(trim(:x) AS TIMESTAMP)) END"
    ),
    # A JSON array, or a comma-separated string.
    "VARCHAR[]": (
        "CASE WHEN starts_with(ltrim(:x), '[') THEN TRY_CAST(TRY_CAST(:x AS JSON) AS VARCHAR[])"
        " ELSE list_filter(list_transform(string_split(:x, ','), s -> trim(s)), s -> s <> '') END"
    ),
    "VARCHAR": ":x",
}
# Where a row came from; always the last columns, in this order.
PROVENANCE = ("source_file", "source_row", "source_parent_row")
_FORMAT_PARSERS = {
    "json_object": "CASE WHEN json_type(TRY_CAST(:x AS JSON)) = 'OBJECT' THEN :x END",
}
_TYPE_NAMES = {
    "BIGINT": "a whole number",
    "DOUBLE": "a number",
    "BOOLEAN": "true or false",
    "TIMESTAMPTZ": "a timestamp (ISO 8601 or YYYY-MM-DD HH:MM:SS)",
    "VARCHAR[]": "a list (JSON array or comma-separated)",
    "json_object": "a JSON object",
}


def duckdb_type(dtype: pl.DataType) -> str:
    """The DuckDB type that round-trips to the polars dtype a model declares."""
    if dtype == pl.Int64:
        return "BIGINT"
    if dtype == pl.Float64:
        return "DOUBLE"
    if dtype == pl.Boolean:
        return "BOOLEAN"
    if dtype == pl.Utf8:
        return "VARCHAR"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ"
    if isinstance(dtype, pl.List) and dtype.inner == pl.Utf8:
        return "VARCHAR[]"
    raise TypeError(f"no DuckDB type for {dtype}")


def _parse(template: str, **values: exp.Expression) -> exp.Expression:
    return exp.replace_placeholders(sqlglot.parse_one(template, dialect="duckdb"), **values)


def _conversion(column: exp.Expression, source_type: str, target: str, fmt: str | None, tz: str):
    """How to turn a column of `source_type` into `target` (an expression, NULL if invalid)."""
    source_type = source_type.upper()
    if fmt:
        if source_type.startswith(("STRUCT", "MAP", "JSON")) or source_type.endswith("[]"):
            return _parse("to_json(:x)::VARCHAR", x=column)
        text = column if source_type == "VARCHAR" else _parse("CAST(:x AS VARCHAR)", x=column)
        return _parse(_FORMAT_PARSERS[fmt], x=text)
    same = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}.get(source_type, source_type)
    if same == target and target != "VARCHAR":
        return column
    if target == "VARCHAR[]" and source_type.endswith("[]"):
        return _parse("TRY_CAST(:x AS VARCHAR[])", x=column)
    if target == "VARCHAR" and source_type.startswith(("STRUCT", "MAP")):
        return _parse("to_json(:x)::VARCHAR", x=column)
    text = column if source_type == "VARCHAR" else _parse("CAST(:x AS VARCHAR)", x=column)
    return _parse(_TEXT_PARSERS[target], x=text, tz=exp.Literal.string(tz))


def typed_select(
    dataset: Dataset, raw_columns: dict[str, str], raw_table: str, naive_timezone: str
) -> str:
    """SELECT text: every model column typed, extra columns kept, and `_cast_errors`.

    `_cast_errors` is a list of {column, value, expected}, one per value that was present
    but did not parse as its declared type.
    """
    projections: list[exp.Expression] = []
    failures: list[exp.Expression] = []
    for name, column in dataset.schema.columns.items():
        target = duckdb_type(column.dtype.type)
        fmt = (column.metadata or {}).get("format")
        default = (column.metadata or {}).get("default")
        fill = exp.cast(exp.null() if default is None else exp.Literal.number(default), target)
        if name not in raw_columns:
            projections.append(exp.alias_(fill, name, quoted=True))
            continue
        source = exp.column(name, quoted=True)
        typed = _conversion(source, raw_columns[name], target, fmt, naive_timezone)
        value = typed if default is None else exp.func("coalesce", typed.copy(), fill)
        projections.append(exp.alias_(value, name, quoted=True))
        if typed is not source:
            failures.append(
                _parse(
                    "CASE WHEN :x IS NOT NULL AND :typed IS NULL THEN "
                    "struct_pack(\"column\" := :name, value := left(CAST(:x AS VARCHAR), 500), expected := :expected) END",
                    x=source,
                    typed=typed.copy(),
                    name=exp.Literal.string(name),
                    expected=exp.Literal.string(_TYPE_NAMES[fmt or target]),
                )
            )
    extras = [c for c in raw_columns if c not in dataset.schema.columns and c not in PROVENANCE]
    provenance = [c for c in PROVENANCE if c in raw_columns]
    projections += [exp.column(c, quoted=True) for c in extras + provenance]
    errors = (
        _parse("list_filter(:items, e -> e IS NOT NULL)", items=exp.Array(expressions=failures))
        if failures
        else _parse("[]::STRUCT(\"column\" VARCHAR, value VARCHAR, expected VARCHAR)[]")
    )
    projections.append(exp.alias_(errors, "_cast_errors"))
    select = exp.select(*projections).from_(exp.to_table(raw_table))
    return select.sql(dialect="duckdb")
