"""Static types: what the compiler knows about a subexpression's run-time JSON kinds.
A compiled subexpression is V: its sqlglot AST and its Ty.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from sqlglot import exp


# JSON kinds a value can have at run time.
NULL, BOOL, NUM, STR, ARR, OBJ = "null", "boolean", "number", "string", "array", "object"
ANY = frozenset({NULL, BOOL, NUM, STR, ARR, OBJ})
KIND_ORDER = (NULL, BOOL, STR, ARR, OBJ, NUM)  # NUM last: it becomes the CASE's ELSE branch


@dataclass(frozen=True)
class Ty:
    """Representation ("bool", "num", "str", "list", "json", "null") plus the JSON kinds possible.

    Typed reps hold SQL BOOLEAN/numeric/VARCHAR/LIST values where SQL NULL means JSON null; "json"
    holds DuckDB JSON where SQL NULL and JSON null both mean null.
    """

    rep: str
    kinds: frozenset
    elem: Ty | None = None  # element type of a "list"
    nan: bool = False  # may be (num) or contain (json, list) NaN/±Infinity, which need guards
    integral: bool = False  # a "num" that is always an integer (cheap number-to-string)

    @property
    def nullable(self) -> bool:
        return NULL in self.kinds

    def with_null(self, null: bool) -> Ty:
        kinds = self.kinds | {NULL} if null else self.kinds - {NULL}
        return replace(self, kinds=frozenset(kinds))


def t_null() -> Ty:
    return Ty("null", frozenset({NULL}))


def t_bool(null: bool = False) -> Ty:
    return Ty("bool", frozenset({BOOL})).with_null(null)


def t_num(null: bool = False, nan: bool = False, integral: bool = False) -> Ty:
    return Ty("num", frozenset({NUM}), nan=nan, integral=integral).with_null(null)


def t_str(null: bool = False) -> Ty:
    return Ty("str", frozenset({STR})).with_null(null)


def t_list(elem: Ty, null: bool = False) -> Ty:
    return Ty("list", frozenset({ARR}), elem=elem).with_null(null)


def t_json(kinds: Iterable[str] = ANY, nan: bool = False) -> Ty:
    return Ty("json", frozenset(kinds), nan=nan)


def holds_nan(ty: Ty) -> bool:
    return ty.nan or (ty.elem is not None and holds_nan(ty.elem))


def json_ty(ty: Ty) -> Ty:
    """The type of as_json(v) for a v of type ty."""
    return t_json(ty.kinds, nan=holds_nan(ty))


BOTTOM = Ty("null", frozenset())  # element type of an empty list literal: unifies with anything


@dataclass(frozen=True)
class V:
    """A compiled subexpression: its SQL and its static type."""

    sql: exp.Expression
    ty: Ty
    # When SQL NULL is ambiguous (a NULL list element is a defined null, an index past the end
    # is undefined), the condition under which the value is defined: var's default needs it.
    defined: exp.Expression | None = None
    # Conversions already bound for a value used by two comparisons ({"<=": [a, b, c]}): its
    # ToPrimitive string (Compiler.primitive_text) and its Number(), both cheap to repeat.
    text: exp.Expression | None = None
    number: V | None = None


def sql_type(ty: Ty) -> str:
    if ty.rep == "list":
        return sql_type(ty.elem) + "[]"
    return {"bool": "BOOLEAN", "num": "DOUBLE", "str": "VARCHAR"}.get(ty.rep, "JSON")
