"""Cast a dataset's raw columns to the types its pandera model declares, in DuckDB.

The model is the single statement of each column's type; this module turns it into one
SELECT whose `_cast_errors` column lists every value that did not fit its type.

Whatever type a file gives a column (CSV text, a JSON value, any Parquet type), the value
is read as the text it stands for and that text is parsed as the declared type, so one
value reads the same in every format. Typed values take a direct path where that is
exact (an INT32 into a whole number, a TIMESTAMP into a timestamp); a type that can mean
nothing for the declared one (a struct for a name, a date for a count) is `invalid_type`.
"""

from __future__ import annotations

import functools
import re

import polars as pl
import sqlglot
from sqlglot import exp

from schemas import Dataset

# The physical type of a raw column, by DuckDB's name for it.
_KINDS = {
    "VARCHAR": "text",
    "JSON": "json",
    "BLOB": "blob",
    "BOOLEAN": "bool",
    "TINYINT": "int",
    "SMALLINT": "int",
    "INTEGER": "int",
    "BIGINT": "int",
    "UTINYINT": "int",
    "USMALLINT": "int",
    "UINTEGER": "int",
    "UBIGINT": "wide",
    "HUGEINT": "wide",
    "UHUGEINT": "wide",
    "FLOAT": "float",
    "DOUBLE": "double",
    "UUID": "uuid",
    "NULL": "null",
    '"NULL"': "null",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIMESTAMPTZ": "timestamptz",
    "TIMESTAMPTZ_NS": "timestamptz",
}
# Kinds whose values stand for one piece of text (a number, a word): read through that text.
_SCALARS = frozenset({"text", "json", "blob", "bool", "int", "wide", "float", "double", "decimal", "uuid"})
_NESTED = frozenset({"struct", "map", "list"})


def source_kind(source_type: str) -> str:
    """The kind of a DuckDB column type: text, json, int, double, list, struct, ... or other."""
    name = source_type.strip().upper()
    if re.search(r"\[\d*\]$", name):
        return "list"
    for prefix, kind in (("STRUCT", "struct"), ("MAP", "map"), ("DECIMAL", "decimal"), ("ENUM", "text")):
        if name.startswith(prefix):
            return kind
    return _KINDS.get(name, "other")


def _element_type(list_type: str) -> str:
    return re.sub(r"\[\d*\]$", "", list_type.strip())


# sqlglot writes json_extract(x, p) as `x -> p`, which DuckDB reads as a lambda inside a
# list function's arguments: templates name them by these stand-ins instead.
_FUNCTION_NAMES = {"jx": "json_extract", "jxs": "json_extract_string"}


@functools.cache
def _template(text: str) -> exp.Expression:
    tree = sqlglot.parse_one(text, dialect="duckdb")
    for call in tree.find_all(exp.Anonymous):
        if call.name.lower() in _FUNCTION_NAMES:
            call.set("this", _FUNCTION_NAMES[call.name.lower()])
    return tree


def _parse(template: str, **values: exp.Expression) -> exp.Expression:
    """The template's expression with its placeholders replaced (the cached tree is copied)."""
    return exp.replace_placeholders(_template(template), **values)


# A double as text: an integer value (12345.0, the pandas-with-nulls export of an id) as
# its digits, any other finite value as DuckDB's shortest round-trip text; NaN and
# infinity have no text and are invalid.
_DOUBLE_TEXT = (
    "CASE WHEN NOT isfinite(:d) THEN NULL"
    " WHEN :d = trunc(:d) AND abs(:d) < 9007199254740992 THEN CAST(CAST(:d AS BIGINT) AS VARCHAR)"
    " ELSE CAST(:d AS VARCHAR) END"
)
# A JSON value as text: a string unquoted, true/false, a number as written when it is an
# integer (so a 30-digit id keeps every digit), other numbers like doubles. An object, an
# array or null has no text.
_JSON_TEXT = (
    "CASE json_type(:x) WHEN 'VARCHAR' THEN jxs(:x, '$')"
    " WHEN 'BOOLEAN' THEN CAST(:x AS VARCHAR)"
    " WHEN 'BIGINT' THEN CAST(:x AS VARCHAR)"
    " WHEN 'UBIGINT' THEN CAST(:x AS VARCHAR)"
    " WHEN 'DOUBLE' THEN CASE WHEN regexp_matches(CAST(:x AS VARCHAR), '^-?[0-9]+$') THEN CAST(:x AS VARCHAR)"
    " ELSE :double END END"
)


def _text(column: exp.Expression, kind: str) -> exp.Expression:
    """The text a scalar value stands for (NULL when it has none)."""
    if kind == "text":
        return column
    if kind == "json":
        as_double = _parse("TRY_CAST(CAST(:x AS VARCHAR) AS DOUBLE)", x=column)
        return _parse(_JSON_TEXT, x=column, double=_parse(_DOUBLE_TEXT, d=as_double))
    if kind == "blob":  # Parquet binary without a string annotation: text if it is UTF-8
        return _parse("try(decode(:x))", x=column)
    if kind == "bool":
        return _parse("CASE WHEN :x THEN 'true' WHEN NOT :x THEN 'false' END", x=column)
    if kind in ("int", "wide", "uuid"):
        return _parse("CAST(:x AS VARCHAR)", x=column)
    if kind == "double":
        return _parse(_DOUBLE_TEXT, d=column)
    if kind == "float":  # through its own shortest text, so 0.1f reads as 0.1
        return _parse(_DOUBLE_TEXT, d=_parse("CAST(CAST(:x AS VARCHAR) AS DOUBLE)", x=column))
    if kind == "decimal":
        return _parse(
            "CASE WHEN :x = trunc(:x) THEN CAST(CAST(:x AS HUGEINT) AS VARCHAR)"
            " ELSE rtrim(CAST(:x AS VARCHAR), '0') END",
            x=column,
        )
    raise ValueError(kind)


# Text forms accepted per declared type. A value matching none of them is `invalid_type`.
_NUMBER = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
# Timestamps: YYYY-MM-DD, then optionally T or a space and HH:MM[:SS[.fraction]], then
# optionally an offset (Z, ±HH, ±HH:MM, ±HHMM; up to ±14:59), which may follow a space.
_DATE = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = r"[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?"
_OFFSET = r" ?(Z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)"
_NAIVE_TIMESTAMP = rf"^\s*{_DATE}({_TIME})?\s*$"
_OFFSET_TIMESTAMP = rf"^\s*{_DATE}{_TIME}{_OFFSET}\s*$"
_TEXT_PARSERS = {
    "BIGINT": "TRY_CAST(regexp_extract(:x, '^\\s*([+-]?[0-9]+)(\\.0*)?\\s*$', 1) AS BIGINT)",
    "DOUBLE": f"CASE WHEN regexp_matches(:x, '{_NUMBER}') AND isfinite(TRY_CAST(trim(:x) AS DOUBLE))"
    " THEN TRY_CAST(trim(:x) AS DOUBLE) END",
    "BOOLEAN": (
        "CASE WHEN lower(trim(:x)) IN ('true', 't', 'yes', 'y', '1') THEN true"
        " WHEN lower(trim(:x)) IN ('false', 'f', 'no', 'n', '0') THEN false END"
    ),
    # An offset makes an instant; no offset is a wall time in the naive time zone (UTC
    # unless the config sets naive_timezone). Year 0000 is not a year.
    "TIMESTAMPTZ": (
        f"CASE WHEN starts_with(trim(:x), '0000') THEN NULL"
        f" WHEN regexp_matches(:x, '{_OFFSET_TIMESTAMP}')"
        f" THEN TRY_CAST(regexp_replace(trim(:x), ' ([Z+-][0-9:]*)$', '\\1') AS TIMESTAMPTZ)"
        f" WHEN regexp_matches(:x, '{_NAIVE_TIMESTAMP}') THEN timezone(:tz, TRY_CAST(trim(:x) AS TIMESTAMP)) END"
    ),
    # A JSON array, or a comma-separated string (blanks dropped).
    "VARCHAR[]": (
        "CASE WHEN starts_with(ltrim(:x), '[') THEN :array"
        " ELSE list_filter(list_transform(string_split(:x, ','), s -> trim(s)), s -> s <> '') END"
    ),
    # Valid JSON that opens with `{` is an object: json_valid only validates, where
    # json_type(TRY_CAST(...)) builds the document (0.01 s against 0.16 s per million rows).
    "json_object": "CASE WHEN json_valid(:x) AND starts_with(ltrim(:x, ' ' || chr(9) || chr(10) || chr(13)), '{') THEN :x END",
    "json": ":x",
    "VARCHAR": ":x",
}
# Timestamps are kept within years 1 to 9999 (what every later stage, Python's included,
# can hold); infinity and year 0 are not instants. Applied to the converted value.
_TIMESTAMP_RANGE = (
    "CASE WHEN :t >= TIMESTAMPTZ '0001-01-01 00:00:00+00' AND :t <= TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'"
    " THEN :t END"
)
# Where a row came from; always the last columns, in this order.
PROVENANCE = ("source_file", "source_row", "source_parent_row")
# Raw columns a reader adds besides the data: faults it found in a row's shape.
LOAD_ERRORS = "_load_errors"
CAST_ERROR_TYPE = 'STRUCT("column" VARCHAR, value VARCHAR, expected VARCHAR, got VARCHAR)[]'
_TYPE_NAMES = {
    "VARCHAR": "text",
    "BIGINT": "a whole number",
    "DOUBLE": "a number",
    "BOOLEAN": "true or false",
    "TIMESTAMPTZ": "a timestamp (YYYY-MM-DD, optional time HH:MM[:SS[.fraction]], optional offset)",
    "VARCHAR[]": "a list of text values (JSON array or comma-separated)",
    "json_object": "a JSON object",
    "json": "JSON",
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


def _list_of_text(items: exp.Expression, kind: str) -> exp.Expression:
    """A list whose elements each have a text (else NULL: a null or nested element)."""
    element = exp.column("e")
    texts = _parse("list_transform(:items, e -> :text)", items=items, text=_text(element, kind))
    return _parse("CASE WHEN list_count(:l) = len(:l) THEN :l END", l=texts)


# A JSON array of strings only, the usual list: DuckDB's own cast reads it (fast path).
_STRINGS_ARRAY = r'^\s*\[\s*("([^"\\]|\\.)*"\s*(,\s*"([^"\\]|\\.)*"\s*)*)?\]\s*$'


def _json_array(document: exp.Expression, text: exp.Expression) -> exp.Expression:
    """A JSON array's elements as text (NULL unless every element is a string, number or boolean).

    `text` is the document as text. An array of strings takes DuckDB's cast; any other
    array is converted element by element (a number as its canonical text; a null or a
    nested element makes the whole value NULL).
    """
    items = _parse("jx(:j, '$[*]')", j=document)
    return _parse(
        f"CASE WHEN regexp_matches(:text, '{_STRINGS_ARRAY}') THEN TRY_CAST(:j AS VARCHAR[])"
        " WHEN coalesce(json_type(:j), '') <> 'ARRAY' THEN NULL ELSE :l END",
        j=document,
        text=text,
        l=_list_of_text(items, "json"),
    )


def _from_text(text: exp.Expression, target: str, tz: str) -> exp.Expression:
    values: dict[str, exp.Expression] = {"x": text, "tz": exp.Literal.string(tz)}
    if target == "VARCHAR[]":
        values["array"] = _json_array(_parse("TRY_CAST(:x AS JSON)", x=text), text)
    return _parse(_TEXT_PARSERS[target], **values)


def _conversion(
    column: exp.Expression, text: exp.Expression, source_type: str, target: str, fmt: str | None, tz: str
) -> exp.Expression | None:
    """How to turn a raw column into `target`: an expression (NULL where a value does not
    fit), `column` itself when nothing needs doing, or None when no value of this physical
    type can fit. `text` is the column's text (`_text`), computed once in a level below."""
    kind = source_kind(source_type)
    declared = fmt or target
    if kind == "null":
        return exp.cast(exp.null(), target)
    if kind == "json" and declared in ("json", "json_object", "VARCHAR[]"):
        # A JSON string holds text (a rule or an object written as a string, a
        # comma-separated list), read like CSV; an object or array is itself the value.
        template = {
            "json": "CASE WHEN json_type(:x) = 'VARCHAR' THEN :from_text ELSE CAST(:x AS VARCHAR) END",
            "json_object": "CASE json_type(:x) WHEN 'OBJECT' THEN CAST(:x AS VARCHAR)"
            " WHEN 'VARCHAR' THEN :from_text END",
            "VARCHAR[]": "CASE json_type(:x) WHEN 'ARRAY' THEN :array WHEN 'OBJECT' THEN NULL ELSE :from_text END",
        }[declared]
        return _parse(
            template,
            x=column,
            from_text=_from_text(text, declared, tz),
            array=_json_array(column, _parse("CAST(:x AS VARCHAR)", x=column)),
        )
    if kind in ("struct", "map") and declared in ("json", "json_object"):
        return _parse("CAST(to_json(:x) AS VARCHAR)", x=column)
    if kind == "list" and declared == "json":
        return _parse("CAST(to_json(:x) AS VARCHAR)", x=column)
    if kind == "list" and declared == "VARCHAR[]":
        element = source_kind(_element_type(source_type))
        if element == "text":  # kept as it is, unless an element is null
            return _parse("CASE WHEN list_count(:x) = len(:x) THEN :x END", x=column)
        return _list_of_text(column, element) if element in _SCALARS else None
    if target == "TIMESTAMPTZ" and kind in ("timestamp", "timestamptz", "date"):
        if kind == "timestamptz":
            return _parse("CAST(:x AS TIMESTAMPTZ)", x=column)
        # a wall time, like text with no offset
        return _parse("timezone(:tz, CAST(:x AS TIMESTAMP))", x=column, tz=exp.Literal.string(tz))
    if target == "BIGINT" and kind == "int":
        return column if source_type.upper() == "BIGINT" else exp.cast(column, "BIGINT")
    if target == "BIGINT" and kind == "wide":
        return _parse("TRY_CAST(:x AS BIGINT)", x=column)
    if target == "BIGINT" and kind in ("float", "double", "decimal"):
        finite = "isfinite(:x) AND " if kind != "decimal" else ""
        return _parse(f"CASE WHEN {finite}:x = trunc(:x) THEN TRY_CAST(:x AS BIGINT) END", x=column)
    if target == "DOUBLE" and kind == "double":
        return column  # NaN and infinity stay, for the range rules to name
    if target == "DOUBLE" and kind == "float":
        return _parse("CAST(CAST(:x AS VARCHAR) AS DOUBLE)", x=column)
    if target == "DOUBLE" and kind in ("int", "wide", "decimal"):
        return exp.cast(column, "DOUBLE")
    if target == "BOOLEAN" and kind == "bool":
        return column
    if kind == "text" and declared == "VARCHAR":
        return column
    if kind not in _SCALARS:
        return None
    if target == "TIMESTAMPTZ" and kind not in ("text", "json", "blob"):
        return None  # a number is no timestamp: seconds or milliseconds since when?
    return _from_text(text, declared, tz)


def _shown(column: exp.Expression, kind: str) -> exp.Expression:
    """A raw value as a reject row shows it: as text, a nested value as JSON."""
    if kind == "json":
        return _parse(
            "CASE WHEN json_type(:x) = 'VARCHAR' THEN jxs(:x, '$') ELSE CAST(:x AS VARCHAR) END",
            x=column,
        )
    if kind in _NESTED:
        return _parse("CAST(to_json(:x) AS VARCHAR)", x=column)
    return _parse("CAST(:x AS VARCHAR)", x=column)


_JSON_TYPE_NAMES = (
    "CASE json_type(:x) WHEN 'OBJECT' THEN 'a JSON object' WHEN 'ARRAY' THEN 'a JSON array'"
    " WHEN 'VARCHAR' THEN 'a JSON string' WHEN 'BOOLEAN' THEN 'a JSON boolean' ELSE 'a JSON number' END"
)


def _got(column: exp.Expression, source_type: str) -> exp.Expression:
    """What the file holds, for the reject's detail: nothing for text, else its type."""
    kind = source_kind(source_type)
    if kind == "text":
        return exp.cast(exp.null(), "VARCHAR")
    if kind == "json":
        return _parse(_JSON_TYPE_NAMES, x=column)
    return exp.Literal.string(f"a {source_type} value")


def _present(column: exp.Expression, kind: str) -> exp.Expression:
    if kind == "json":  # JSON null is no value
        return _parse(":x IS NOT NULL AND json_type(:x) <> 'NULL'", x=column)
    return _parse(":x IS NOT NULL", x=column)


def _fresh(taken: set[str], stem: str) -> str:
    """A column name starting with `stem` that no raw column has."""
    name = stem
    while name.lower() in taken:
        name = f"_{name}"
    taken.add(name.lower())
    return name


def typed_select(
    dataset: Dataset, raw_columns: dict[str, str], raw_table: str, naive_timezone: str
) -> str:
    """SELECT text: every model column typed, extra columns kept, and `_cast_errors`.

    `_cast_errors` is a list of {column, value, expected, got}, one per value that was
    present but did not parse as its declared type (and any fault the reader found in the
    row's shape, `_load_errors`).

    Three levels, so that no expression is repeated inside another: the first gives each
    value its text, the second parses that text (or converts the typed value), the third
    checks timestamp ranges and lists the failures against the raw values kept beside.
    """
    levels = _typed_levels(dataset.name, tuple(raw_columns.items()), naive_timezone)
    sql = exp.to_identifier(raw_table, quoted=True).sql("duckdb")
    for number, projections in enumerate(levels):
        sql = f"SELECT {projections} FROM {sql}" if number == 0 else f"SELECT {projections} FROM ({sql}) AS level_{number}"
    return sql


@functools.cache
def _typed_levels(dataset_name: str, raw_items: tuple[tuple[str, str], ...], tz: str) -> tuple[str, str, str]:
    """The three SELECT lists of typed_select, innermost first: the same for every part
    file of a dataset with the same columns (a folder of 1000 Parquet parts is built once)."""
    from schemas import DATASETS

    dataset = DATASETS[dataset_name]
    raw_columns = dict(raw_items)
    taken = {c.lower() for c in raw_columns}
    texts: list[exp.Expression] = []
    converted: list[exp.Expression] = []
    checked: list[exp.Expression] = []
    failures: list[exp.Expression] = []
    for number, (name, column) in enumerate(dataset.schema.columns.items(), 1):
        target = duckdb_type(column.dtype.type)
        fmt = (column.metadata or {}).get("format")
        default = (column.metadata or {}).get("default")
        fill = exp.cast(exp.null() if default is None else exp.Literal.number(default), target)
        if name not in raw_columns:
            checked.append(exp.alias_(fill, name, quoted=True))
            continue
        kind = source_kind(raw_columns[name])
        raw = exp.column(name, quoted=True)
        texts.append(raw.copy())
        text = raw
        if kind in _SCALARS and kind != "text":
            text = exp.column(_fresh(taken, f"_text_{number}"), quoted=True)
            texts.append(exp.alias_(_text(raw.copy(), kind), text.name, quoted=True, copy=False))
        typed = _conversion(raw, text, raw_columns[name], target, fmt, tz)
        if typed is raw:
            converted.append(raw.copy())
            checked.append(raw.copy())
            continue
        kept = exp.column(_fresh(taken, f"_raw_{number}"), quoted=True)
        value = exp.cast(typed if typed is not None else exp.null(), target, copy=False)
        converted += [exp.alias_(value, name, quoted=True, copy=False), exp.alias_(raw.copy(), kept.name, quoted=True)]
        result = exp.column(name, quoted=True)
        if target == "TIMESTAMPTZ":
            result = _parse(_TIMESTAMP_RANGE, t=result)
        # The default fills a missing value, never one that did not fit (that is a reject).
        filled = result.copy() if default is None else exp.func("coalesce", result.copy(), fill)
        checked.append(exp.alias_(filled, name, quoted=True, copy=False))
        failures.append(
            _parse(
                "CASE WHEN :present AND :typed IS NULL THEN struct_pack(\"column\" := :name, "
                "value := left(:shown, 500), expected := :expected, got := :got) END",
                present=_present(kept, kind),
                typed=result.copy(),
                shown=_shown(kept.copy(), kind),
                name=exp.Literal.string(name),
                expected=exp.Literal.string(_TYPE_NAMES[fmt or target]),
                got=_got(kept.copy(), raw_columns[name]),
            )
        )
    extras = [
        c for c in raw_columns if c not in dataset.schema.columns and c not in PROVENANCE and c != LOAD_ERRORS
    ]
    provenance = [c for c in PROVENANCE if c in raw_columns]
    passed = [exp.column(c, quoted=True) for c in extras + provenance]
    loaded = [exp.column(LOAD_ERRORS, quoted=True)] if LOAD_ERRORS in raw_columns else []
    texts += [c.copy() for c in passed + loaded]
    converted += [c.copy() for c in passed + loaded]
    checked += passed
    errors = _parse(f"CAST([] AS {CAST_ERROR_TYPE})")
    if failures:
        errors = _parse("list_filter(:items, e -> e IS NOT NULL)", items=exp.Array(expressions=failures))
    if loaded:
        errors = _parse("list_concat(:loaded, :cast)", loaded=loaded[0], cast=errors)
    checked.append(exp.alias_(errors, "_cast_errors", copy=False))

    def listed(projections: list[exp.Expression]) -> str:
        return ", ".join(p.sql(dialect="duckdb", copy=False) for p in projections) or "*"

    return listed(texts), listed(converted), listed(checked)
