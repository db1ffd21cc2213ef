"""One rule over one JSON datum: evaluate() runs the compiled SQL in DuckDB.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import duckdb
from sqlglot import exp

from pipeline.jsonlogic.sql import cast, DIALECT
from pipeline.jsonlogic.variables import Variables
from pipeline.jsonlogic.api import json_ast


_DATUM = "__jsonlogic_datum"
_local = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    # One in-memory connection per thread: evaluate() needs no tables, only the expression engine.
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect()
    return con


def evaluate(rule: Any, data: Any = None, connection: duckdb.DuckDBPyConnection | None = None) -> Any:
    """Run one rule over one JSON datum through the compiled SQL and return plain JSON values.

    `rule` is JSON text (str/bytes) or a parsed rule; `data` is any JSON-serialisable value. The
    datum is bound as a query parameter. Integral numbers come back as int, NaN as float("nan").
    """
    value_sql = json_ast(rule, Variables.for_datum(_DATUM))
    datum = exp.select(exp.alias_(cast(exp.Placeholder(), "JSON"), _DATUM, quoted=True))
    query = exp.select(exp.alias_(value_sql, "value")).from_(datum.subquery("datum"))
    text = json.dumps(data, allow_nan=False)
    con = connection or _connection()
    (value,) = con.execute(query.sql(dialect=DIALECT), [text]).fetchone()
    return _plain(json.loads(value)) if value is not None else None


def _plain(value: Any) -> Any:
    """JS has one number type: give integral doubles back as ints (2.0 → 2)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
