"""Variables: which variable paths exist and which SQL yields them.
Typed columns, JSON columns (read with JSON Pointer paths), or one JSON datum.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from sqlglot import exp

from pipeline.jsonlogic.types import holds_nan, t_bool, t_json, t_list, t_num, t_str, V
from pipeline.jsonlogic.sql import binary, case_when, cast, data_type, fn, n_lit, null_of, s_lit
from pipeline.jsonlogic.values import as_json


def _classify(dtype: exp.DataType, column: exp.Expression) -> V | None:
    """How a column of this DuckDB type is read as a JsonLogic value; None if it cannot be."""
    T = exp.DataType.Type
    if dtype.this == T.BOOLEAN:
        return V(column, t_bool(null=True))
    if dtype.this in exp.DataType.INTEGER_TYPES and dtype.this != T.BIT:
        return V(column, t_num(null=True, integral=True))
    if dtype.this in exp.DataType.REAL_TYPES or dtype.this == T.DECIMAL:
        # A FLOAT/DOUBLE column may hold NaN; guard comparisons like any computed number.
        return V(column, t_num(null=True, nan=dtype.this in (T.FLOAT, T.DOUBLE)))
    if dtype.this in exp.DataType.TEXT_TYPES:
        return V(column, t_str(null=True))
    if dtype.this == T.JSON:
        return V(column, t_json())
    if dtype.this == T.ARRAY and dtype.expressions:
        elem = _classify(dtype.expressions[0], exp.column("_"))
        # Only element types SQL can use as they are; others go through to_json below.
        if elem is not None and elem.sql == exp.column("_") and elem.ty.rep in ("bool", "num", "str", "json"):
            return V(column, t_list(elem.ty.with_null(True), null=True))
    if dtype.this in exp.DataType.TEMPORAL_TYPES or dtype.this in (T.UUID, T.ENUM, T.INTERVAL, T.BIT):
        return V(cast(column, "VARCHAR"), t_str(null=True))
    if dtype.this in (T.STRUCT, T.MAP, T.ARRAY, T.LIST, T.UNION):
        return V(fn("to_json", column), t_json())
    return None


class Variables:
    """Maps JsonLogic variable paths to SQL: typed columns, JSON columns, or one JSON datum.

    A path that matches nothing compiles to JSON null, as a missing variable does in JsonLogic.
    """

    def __init__(self, columns: Mapping[str, V], root: V | None = None, bind_reads: bool = True):
        self._columns = dict(columns)
        self._root = root
        # A JSON read used twice is bound first: each read parses the column's whole document,
        # about 200 ns per row. Reads of one datum (evaluate) cost nothing next to planning.
        self.bind_reads = bind_reads
        # Longest prefix first, so "a.b" wins over "a" when resolving "a.b.c".
        self._prefixes = sorted(self._columns, key=len, reverse=True)

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, str],
        json_columns: Iterable[str] = (),
        aliases: Mapping[str, str] | None = None,
        table: str | None = None,
    ) -> Variables:
        """Variables backed by table columns.

        `columns` maps a variable path (e.g. "birth_month", "tier.handle") to the DuckDB type of
        the column holding it; the column is named exactly like the path unless `aliases` maps
        the path to another column name. `json_columns` are paths of JSON (or VARCHAR-of-JSON)
        columns whose dotted sub-paths ("attributes.comms.email_promo") are read with JSON
        extraction at run time. `table` qualifies every column reference (for joins).
        """
        aliases = dict(aliases or {})
        resolved: dict[str, V] = {}
        for path, type_text in columns.items():
            ref = exp.column(aliases.get(path, path), table=table, quoted=True)
            value = _classify(data_type(type_text), ref)
            if value is None:
                raise ValueError(f"unsupported DuckDB type {type_text} for JsonLogic variable {json.dumps(path)}")
            resolved[path] = value
        for path in json_columns:
            ref = exp.column(aliases.get(path, path), table=table, quoted=True)
            resolved[path] = V(cast(ref, "JSON"), t_json())
        return cls(resolved)

    @classmethod
    def for_datum(cls, column: str) -> Variables:
        """Variables that read every path from one JSON column holding the whole datum."""
        return cls({}, root=V(exp.column(column, quoted=True), t_json()), bind_reads=False)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(self._columns)

    def lookup(self, segments: tuple[str, ...]) -> V | None:
        """SQL for a static path; None means the variable is unknown (JSON null)."""
        if not segments or segments == ("",):
            return self._root
        path = ".".join(segments)
        if path in self._columns:
            return self._columns[path]
        for prefix in self._prefixes:
            if path.startswith(prefix + "."):
                rest = tuple(path[len(prefix) + 1:].split("."))
                return extract(self._columns[prefix], rest)
        if self._root is not None:
            return extract(self._root, segments)
        return None

    def lookup_dynamic(self, path: exp.Expression) -> V:
        """SQL for a path computed at run time (VARCHAR, never NULL): a CASE over known paths."""
        nan = any(holds_nan(v.ty) for v in self._columns.values())
        if self._root is not None and not self._columns:
            return V(json_extract_dynamic(self._root.sql, path), t_json())
        whens = [(binary(exp.EQ, path, s_lit(p)), as_json(v)) for p, v in self._columns.items()]
        for prefix in self._prefixes:
            v = self._columns[prefix]
            if v.ty.rep == "json":
                rest = fn("substr", path, n_lit(len(prefix) + 2))
                whens.append((fn("starts_with", path, s_lit(prefix + ".")),
                              json_extract_dynamic(v.sql, rest)))
        default = json_extract_dynamic(self._root.sql, path) if self._root is not None else None
        if not whens:
            return V(default if default is not None else null_of("JSON"), t_json())
        return V(case_when(whens, default), t_json(nan=nan))


def _pointer(segments: Iterable[str]) -> str:
    # JSON Pointer, not JSONPath: "/a/1" reads key "1" of an object and index 1 of an array,
    # exactly like JS's data["1"].
    return "".join("/" + s.replace("~", "~0").replace("/", "~1") for s in segments)


def json_extract_dynamic(doc: exp.Expression, path: exp.Expression) -> exp.Expression:
    """json_extract with a JSON Pointer built at run time from a dotted path (VARCHAR)."""
    escaped = fn("replace", fn("replace", fn("replace", path, s_lit("~"), s_lit("~0")), s_lit("/"), s_lit("~1")),
                 s_lit("."), s_lit("/"))
    return fn("json_extract", doc, exp.DPipe(this=s_lit("/"), expression=escaped))


_CANONICAL_INDEX = re.compile(r"0|[1-9][0-9]*")


def extract(v: V, segments: tuple[str, ...]) -> V | None:
    """Walk static path segments into a value, as JS's data[a][b] does (None = undefined)."""
    if not segments:
        return v
    if v.ty.rep == "json":
        return V(fn("json_extract", v.sql, s_lit(_pointer(segments))), t_json(nan=v.ty.nan))
    if v.ty.rep == "list" and _CANONICAL_INDEX.fullmatch(segments[0]):
        index = int(segments[0])
        item = V(fn("list_extract", v.sql, n_lit(index + 1)), v.ty.elem.with_null(True),
                 defined=binary(exp.GT, fn("len", v.sql), n_lit(index)))
        return extract(item, segments[1:]) if segments[1:] else item
    return None  # scalars have no properties (JS string indexing and .length are not supported)
