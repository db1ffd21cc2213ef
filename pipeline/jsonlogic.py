"""Compile JsonLogic rules into DuckDB SQL expressions so one query evaluates a rule for every row.
Also checks rules (operators, arity) and evaluates one rule over one JSON datum through the same SQL.
"""

# Semantics follow json-logic-js, the reference implementation behind the official test suite;
# docs/jsonlogic.md describes the type model and the known deviations. SQL is built as a sqlglot
# AST: rule text only ever becomes quoted identifiers or literals, never SQL syntax.

from __future__ import annotations

import functools
import itertools
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from pipeline.errors import RuleError

__all__ = [
    "CompiledValue",
    "Variables",
    "check_rule",
    "compile_condition",
    "compile_json",
    "compile_rule",
    "compile_value",
    "evaluate",
]

DIALECT = "duckdb"

# JSON kinds a value can have at run time.
NULL, BOOL, NUM, STR, ARR, OBJ = "null", "boolean", "number", "string", "array", "object"
ANY = frozenset({NULL, BOOL, NUM, STR, ARR, OBJ})
_KIND_ORDER = (NULL, BOOL, STR, ARR, OBJ, NUM)  # NUM last: it becomes the CASE's ELSE branch

# JavaScript's StrWhiteSpaceChar set, so Number(" 12\n") and parseFloat(" 12") trim like JS does.
_JS_SPACE = "\t\n\x0b\x0c\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_RE_SPACE = r"[\t\n\x{0B}\x{0C}\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}]"
_RE_DECIMAL = r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
_NESTED_ARRAY_DEPTH = 2  # String([[...]]) is recursive in JS; SQL expressions are not


# --------------------------------------------------------------------------------------------
# Static types: what the compiler knows about a subexpression's run-time JSON kinds.
# --------------------------------------------------------------------------------------------


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


_BOTTOM = Ty("null", frozenset())  # element type of an empty list literal: unifies with anything


@dataclass(frozen=True)
class V:
    """A compiled subexpression: its SQL and its static type."""

    sql: exp.Expression
    ty: Ty
    # When SQL NULL is ambiguous (a NULL list element is a defined null, an index past the end
    # is undefined), the condition under which the value is defined: var's default needs it.
    defined: exp.Expression | None = None


def sql_type(ty: Ty) -> str:
    if ty.rep == "list":
        return sql_type(ty.elem) + "[]"
    return {"bool": "BOOLEAN", "num": "DOUBLE", "str": "VARCHAR"}.get(ty.rep, "JSON")


# --------------------------------------------------------------------------------------------
# sqlglot building blocks
# --------------------------------------------------------------------------------------------

_ATOMIC = (exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Paren, exp.Func, exp.Cast, exp.Case,
           exp.Array, exp.Identifier)


def _wrap(e: exp.Expression) -> exp.Expression:
    # A negative literal after a minus sign would render as "--", which starts a SQL comment.
    if isinstance(e, exp.Literal) and e.is_number and e.this.startswith("-"):
        return exp.Paren(this=e)
    # Operators first: sqlglot's And/Or are also Func subclasses, yet need parentheses.
    if isinstance(e, (exp.Binary, exp.Unary, exp.Connector, exp.Predicate)):
        return exp.Paren(this=e)
    return e if isinstance(e, _ATOMIC) else exp.Paren(this=e)


def fn(name: str, *args: exp.Expression) -> exp.Expression:
    # Anonymous keeps DuckDB's own function names: sqlglot must not "transpile" them.
    return exp.Anonymous(this=name, expressions=[_wrap(a) for a in args])


@functools.cache
def _data_type(type_text: str) -> exp.DataType:
    return exp.DataType.build(type_text, dialect=DIALECT)


def cast(e: exp.Expression, type_text: str, try_: bool = False) -> exp.Expression:
    node = exp.TryCast if try_ else exp.Cast
    return node(this=_wrap(e), to=_data_type(type_text).copy())


def s_lit(text: str) -> exp.Expression:
    return exp.Literal.string(text)


def n_lit(value: int | float) -> exp.Expression:
    if isinstance(value, int) and abs(value) < 2**63:
        return exp.Literal.number(str(value))
    value = float(value)
    if math.isnan(value):
        return cast(s_lit("NaN"), "DOUBLE")
    if math.isinf(value):
        return cast(s_lit("Infinity" if value > 0 else "-Infinity"), "DOUBLE")
    # A bare 3.14 is a DECIMAL in DuckDB; JS numbers are doubles.
    return cast(s_lit(repr(value)), "DOUBLE")


def TRUE() -> exp.Expression:
    return exp.Boolean(this=True)


def FALSE() -> exp.Expression:
    return exp.Boolean(this=False)


def null_of(type_text: str) -> exp.Expression:
    return cast(exp.Null(), type_text)


def _and(*parts: exp.Expression) -> exp.Expression:
    """AND that folds constant TRUE/FALSE operands away."""
    kept = [p for p in parts if not _is_const_bool(p, True)]
    if any(_is_const_bool(p, False) for p in kept):
        return FALSE()
    if not kept:
        return TRUE()
    return kept[0] if len(kept) == 1 else exp.and_(*[_wrap(p) for p in kept], copy=False)


def _or(*parts: exp.Expression) -> exp.Expression:
    """OR that folds constant TRUE/FALSE operands away."""
    kept = [p for p in parts if not _is_const_bool(p, False)]
    if any(_is_const_bool(p, True) for p in kept):
        return TRUE()
    if not kept:
        return FALSE()
    return kept[0] if len(kept) == 1 else exp.or_(*[_wrap(p) for p in kept], copy=False)


def _not(e: exp.Expression) -> exp.Expression:
    if isinstance(e, exp.Boolean):
        return exp.Boolean(this=not e.this)
    return exp.Not(this=_wrap(e))


def _bin(node: type, a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return node(this=_wrap(a), expression=_wrap(b))


def _case(whens: list[tuple[exp.Expression, exp.Expression]], default: exp.Expression | None = None,
          subject: exp.Expression | None = None) -> exp.Expression:
    if subject is None:
        # Drop branches that can never be taken; a branch that is always taken ends the CASE.
        live = []
        for cond, value in whens:
            if _is_const_bool(cond, True):
                default = value
                break
            if not _is_const_bool(cond, False):
                live.append((cond, value))
        whens = live
        if not whens:
            return default if default is not None else exp.Null()
    ifs = [exp.If(this=c, true=v) for c, v in whens]
    return exp.Case(this=subject, ifs=ifs, default=default)


def _is_const_bool(e: exp.Expression, value: bool) -> bool:
    return isinstance(e, exp.Boolean) and e.this is value


@functools.cache
def _parsed_template(text: str) -> exp.Expression:
    return sqlglot.parse_one(text, read=DIALECT)


def template(text: str, **subs: exp.Expression) -> exp.Expression:
    """Parse fixed SQL text once, then splice expressions in where columns named `ph_<key>` appear."""
    tree = _parsed_template(text).copy()
    for column in list(tree.find_all(exp.Column)):
        if column.name.startswith("ph_") and column.name[3:] in subs:
            column.replace(_wrap(subs[column.name[3:]].copy()))
    return tree


def _lambda(params: list[str], body: exp.Expression) -> exp.Expression:
    return exp.Lambda(this=body, expressions=[exp.to_identifier(p) for p in params])


def _ref(name: str) -> exp.Expression:
    return exp.column(name)


_SIMPLE_FUNCS = {"json_extract", "list_extract", "json_extract_string"}


def _is_simple(e: exp.Expression) -> bool:
    """Cheap to repeat: the compiler may copy it into several CASE branches instead of binding it."""
    if isinstance(e, (exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Identifier)):
        return True
    if isinstance(e, (exp.Cast, exp.Paren)):
        return _is_simple(e.this)
    if isinstance(e, exp.Anonymous) and e.name.lower() in _SIMPLE_FUNCS or isinstance(e, exp.Array):
        return all(_is_simple(a) for a in e.expressions)
    return False


# --------------------------------------------------------------------------------------------
# Variables: which variable paths exist and which SQL yields them
# --------------------------------------------------------------------------------------------


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

    def __init__(self, columns: Mapping[str, V], root: V | None = None):
        self._columns = dict(columns)
        self._root = root
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
            value = _classify(_data_type(type_text), ref)
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
        return cls({}, root=V(exp.column(column, quoted=True), t_json()))

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
        whens = [(_bin(exp.EQ, path, s_lit(p)), as_json(v)) for p, v in self._columns.items()]
        for prefix in self._prefixes:
            v = self._columns[prefix]
            if v.ty.rep == "json":
                rest = fn("substr", path, n_lit(len(prefix) + 2))
                whens.append((fn("starts_with", path, s_lit(prefix + ".")),
                              json_extract_dynamic(v.sql, rest)))
        default = json_extract_dynamic(self._root.sql, path) if self._root is not None else None
        if not whens:
            return V(default if default is not None else null_of("JSON"), t_json())
        return V(_case(whens, default), t_json(nan=nan))


def _pointer(segments: Iterable[str]) -> str:
    # JSON Pointer, not JSONPath: "/a/1" reads key "1" of an object and index 1 of an array,
    # exactly like JS's data["1"].
    return "".join("/" + s.replace("~", "~0").replace("/", "~1") for s in segments)


def json_extract_dynamic(doc: exp.Expression, path: exp.Expression) -> exp.Expression:
    return template(
        "json_extract(ph_doc, '/' || replace(replace(replace(ph_path, '~', '~0'), '/', '~1'), '.', '/'))",
        doc=doc, path=path)


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
                 defined=_bin(exp.GT, fn("len", v.sql), n_lit(index)))
        return extract(item, segments[1:]) if segments[1:] else item
    return None  # scalars have no properties (JS string indexing and .length are not supported)


# --------------------------------------------------------------------------------------------
# Conversions between representations and JS coercions
# --------------------------------------------------------------------------------------------


def as_json(v: V) -> exp.Expression:
    """The value as DuckDB JSON. NaN and ±Infinity stay NaN/Infinity tokens, which DuckDB's JSON
    reader accepts, so JS semantics survive a trip through JSON."""
    rep = v.ty.rep
    if rep == "json":
        return v.sql
    if rep == "null":
        return null_of("JSON")
    return fn("to_json", v.sql)


def _json_view(x: exp.Expression, kind: str, ty: Ty) -> V:
    if kind == NULL:
        return V(exp.Null(), t_null())
    if kind == BOOL:
        return V(cast(x, "BOOLEAN", try_=True), t_bool())
    if kind == NUM:
        return V(cast(x, "DOUBLE", try_=True), t_num(nan=ty.nan))
    if kind == STR:
        return V(fn("json_extract_string", x, s_lit("$")), t_str())
    if kind == ARR:
        return V(cast(x, "JSON[]", try_=True), t_list(t_json(nan=ty.nan)))
    return V(x, t_json({OBJ}, nan=ty.nan))


_JSON_TYPE_NAMES = {NULL: ("NULL",), BOOL: ("BOOLEAN",), STR: ("VARCHAR",), ARR: ("ARRAY",),
                    OBJ: ("OBJECT",), NUM: ("BIGINT", "UBIGINT", "DOUBLE", "HUGEINT")}

Branch = Callable[[str, V], exp.Expression]


def dispatch(v: V, branch: Branch) -> exp.Expression:
    """Build `branch(kind, typed view)` for every kind v may have, chosen at run time by a CASE.

    The caller must make v's SQL cheap to repeat (see Compiler.bind).
    """
    ty = v.ty
    if ty.rep == "null" or not ty.kinds:
        return branch(NULL, V(exp.Null(), t_null()))
    if ty.rep == "json":
        kinds = [k for k in _KIND_ORDER if k in ty.kinds]
        if len(kinds) == 1:
            return branch(kinds[0], _json_view(v.sql, kinds[0], ty))
        subject = fn("coalesce", fn("json_type", v.sql), s_lit("NULL"))
        *heads, last = kinds
        whens = []
        for kind in heads:
            result = branch(kind, _json_view(v.sql, kind, ty))
            whens += [(s_lit(name), result.copy()) for name in _JSON_TYPE_NAMES[kind]]
        return _case(whens, branch(last, _json_view(v.sql, last, ty)), subject=subject)
    kind = next(iter(ty.kinds - {NULL}))
    base = branch(kind, V(v.sql, ty.with_null(False)))
    if not ty.nullable:
        return base
    on_null = branch(NULL, V(exp.Null(), t_null()))
    if _is_const_bool(on_null, False):
        # Predicates that are NULL for a NULL input need no CASE, only a COALESCE to FALSE.
        if _null_in_null_out(base, v.sql):
            # "x IS NOT NULL AND x = c" lets DuckDB push both into the scan; COALESCE would not.
            return _and(exp.Not(this=exp.Is(this=_wrap(v.sql), expression=exp.Null())), base)
        if _is_coalesce_false(base) and _null_in_null_out(base.expressions[0], v.sql):
            return base
    return _case([(exp.Is(this=_wrap(v.sql), expression=exp.Null()), on_null)], base)


_STRICT_PREDICATES = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE)
_CONSTANTS = (exp.Literal, exp.Boolean, exp.Cast, exp.Array)


def _unparen(e: exp.Expression) -> exp.Expression:
    return _unparen(e.this) if isinstance(e, exp.Paren) else e


def _null_in_null_out(e: exp.Expression, operand: exp.Expression) -> bool:
    """Whether e is a comparison or list_contains of `operand` with constants (NULL in, NULL out)."""
    e = _unparen(e)
    if isinstance(e, _STRICT_PREDICATES):
        sides = [_unparen(e.this), _unparen(e.expression)]
    elif isinstance(e, exp.Anonymous) and e.name.lower() == "list_contains":
        sides = [_unparen(a) for a in e.expressions]
    elif isinstance(e, exp.In):
        sides = [_unparen(e.this), *e.expressions]
    else:
        return False
    return operand in sides and all(s == operand or isinstance(s, _CONSTANTS) for s in sides)


def _is_constant_list(e: exp.Expression) -> bool:
    """An array literal of non-null constants: "x IN (...)" is then never NULL for a non-null x."""
    return isinstance(e, exp.Array) and bool(e.expressions) and all(
        isinstance(a, (exp.Literal, exp.Boolean)) or isinstance(a, exp.Cast) and isinstance(a.this, exp.Literal)
        for a in e.expressions)


def _is_coalesce_false(e: exp.Expression) -> bool:
    return (isinstance(e, exp.Anonymous) and e.name.lower() == "coalesce" and len(e.expressions) == 2
            and _is_const_bool(e.expressions[1], False))


def _isnan_guard(n: V) -> list[exp.Expression]:
    return [_not(fn("isnan", n.sql))] if n.ty.nan else []


def truthy(v: V) -> exp.Expression:
    """JsonLogic truthiness as a never-NULL BOOLEAN ([] and "" are falsy, "0" is truthy)."""
    if isinstance(v.sql, exp.Literal | exp.Null):
        value = v.sql.this if isinstance(v.sql, exp.Literal) else None
        number = _fold_number(v.sql, parse_float=False) if v.ty.rep == "num" else None
        return TRUE() if (value not in (None, "") and number != 0) else FALSE()
    if v.ty.rep == "bool":
        return v.sql if not v.ty.nullable else fn("coalesce", v.sql, FALSE())
    text = canonical_json_text(v)
    if text is not None:
        # One extraction instead of one per kind: the falsy JSON texts are few and fixed.
        return _not(fn("regexp_full_match", text, s_lit(_FALSY_JSON_TEXT)))
    return dispatch(v, _truthy_branch)


_FALSY_JSON_TEXT = r'false|null|""|\[\]|-?0(\.0+)?([eE][+-]?[0-9]+)?|-?NaN'


def canonical_json_text(v: V) -> exp.Expression | None:
    """The JSON text of a json_extract result ('null' when missing), or None for other values.

    DuckDB re-serialises what json_extract returns with the writer to_json uses, so texts of
    equal strings, booleans and nulls are equal: one extraction can decide many comparisons.
    """
    sql = _unparen(v.sql)
    if v.ty.rep != "json" or not (isinstance(sql, exp.Anonymous) and sql.name.lower() == "json_extract"):
        return None
    return fn("coalesce", cast(sql, "VARCHAR"), s_lit("null"))


def literal_json_text(v: V) -> exp.Expression | None:
    """The canonical JSON text of a null, boolean or string literal, else None."""
    if isinstance(v.sql, exp.Null):
        return s_lit("null")
    if isinstance(v.sql, exp.Boolean):
        return s_lit("true" if v.sql.this else "false")
    if isinstance(v.sql, exp.Literal) and v.sql.is_string:
        return cast(fn("to_json", v.sql), "VARCHAR")  # DuckDB folds the constant
    return None


STRINGISH = frozenset({STR, ARR, OBJ})  # ToPrimitive makes arrays and objects strings
OBJECTISH = frozenset({ARR, OBJ})


def _is_dynamic(v: V) -> bool:
    return v.ty.rep == "json" and len(v.ty.kinds - {NULL}) > 1


def kind_test(v: V, kinds: frozenset | set) -> exp.Expression:
    """BOOLEAN, never NULL: v's run-time kind is one of `kinds` (constant when the type decides)."""
    possible = v.ty.kinds if v.ty.kinds else frozenset({NULL})
    if possible <= kinds:
        return TRUE()
    if not possible & kinds:
        return FALSE()
    if v.ty.rep != "json":
        # Typed: the only run-time question is NULL or not.
        is_null = exp.Is(this=_wrap(v.sql), expression=exp.Null())
        return is_null if NULL in kinds else _not(is_null)
    names = [s_lit(name) for kind in kinds & possible for name in _JSON_TYPE_NAMES[kind]]
    return exp.In(this=fn("coalesce", fn("json_type", v.sql), s_lit("NULL")), expressions=names)


def _truthy_branch(kind: str, t: V) -> exp.Expression:
    if kind == NULL:
        return FALSE()
    if kind == BOOL:
        return t.sql
    if kind == NUM:
        return _and(_bin(exp.NEQ, t.sql, n_lit(0)), *_isnan_guard(t))
    if kind == STR:
        return _bin(exp.NEQ, t.sql, s_lit(""))
    if kind == ARR:
        return _bin(exp.GT, fn("len", t.sql), n_lit(0))
    return TRUE()


def NAN() -> exp.Expression:
    return cast(s_lit("NaN"), "DOUBLE")


_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _fold_number(e: exp.Expression, parse_float: bool) -> int | float | None:
    """Number()/parseFloat() of a literal computed now, for the unambiguous cases only."""
    if isinstance(e, exp.Boolean):
        return math.nan if parse_float else int(e.this)
    if isinstance(e, exp.Null):
        return math.nan if parse_float else 0
    if isinstance(e, exp.Literal) and e.is_number:
        return int(e.this) if re.fullmatch(r"-?[0-9]+", e.this) else None
    if isinstance(e, exp.Literal) and e.is_string and _PLAIN_DECIMAL.fullmatch(e.this):
        number = float(e.this)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return None


def _fold_string(e: exp.Expression, null_text: str) -> str | None:
    """String() of a literal computed now (integers, booleans, null)."""
    if isinstance(e, exp.Boolean):
        return "true" if e.this else "false"
    if isinstance(e, exp.Null):
        return null_text
    if isinstance(e, exp.Literal) and e.is_number and re.fullmatch(r"-?[0-9]+", e.this):
        return str(int(e.this))
    return None


def str_to_number(s: exp.Expression) -> exp.Expression:
    """JS Number(string): trimmed decimal, Infinity, 0x/0b literal; "" is 0; anything else NaN."""
    return template(
        f"""CASE WHEN trim(ph_s, ph_space) = '' THEN CAST(0 AS DOUBLE)
        ELSE coalesce(
            TRY_CAST(nullif(regexp_extract(ph_s, '^{_RE_SPACE}*({_RE_DECIMAL}){_RE_SPACE}*$', 1), '') AS DOUBLE),
            CAST(TRY_CAST(nullif(regexp_extract(ph_s, '^{_RE_SPACE}*(0[xX][0-9a-fA-F]+|0[bB][01]+){_RE_SPACE}*$', 1), '') AS BIGINT) AS DOUBLE),
            CAST('NaN' AS DOUBLE))
        END""", s=s, space=s_lit(_JS_SPACE))


def str_parse_float(s: exp.Expression) -> exp.Expression:
    """JS parseFloat(string): the longest decimal prefix after leading space, else NaN."""
    return template(
        f"""coalesce(TRY_CAST(nullif(regexp_extract(ph_s, '^{_RE_SPACE}*({_RE_DECIMAL})', 1), '') AS DOUBLE),
                     CAST('NaN' AS DOUBLE))""", s=s)


def num_to_string(n: V) -> exp.Expression:
    """JS Number.prototype.toString for a never-NULL number."""
    if n.ty.integral:
        return cast(n.sql, "VARCHAR")
    return template(
        r"""CASE WHEN isnan(ph_x) THEN 'NaN'
            WHEN isinf(ph_x) THEN CASE WHEN ph_x > 0 THEN 'Infinity' ELSE '-Infinity' END
            WHEN ph_x = trunc(ph_x) AND abs(ph_x) < 1e21 THEN CAST(CAST(ph_x AS HUGEINT) AS VARCHAR)
            WHEN regexp_matches(CAST(ph_x AS VARCHAR), 'e-0?[56]$') THEN
                regexp_extract(CAST(ph_x AS VARCHAR), '^(-?)', 1) || '0.'
                || repeat('0', CAST(regexp_extract(CAST(ph_x AS VARCHAR), 'e-0?([56])$', 1) AS INTEGER) - 1)
                || replace(regexp_extract(CAST(ph_x AS VARCHAR), '^-?([0-9.]+)e', 1), '.', '')
            ELSE regexp_replace(CAST(ph_x AS VARCHAR), 'e([+-])0*([0-9])', 'e\1\2')
        END""", x=n.sql)


class Compiler:
    """Compiles one rule; holds the counter that keeps lambda parameter names unique."""

    def __init__(self, variables: Variables):
        self.variables = variables
        self._names = itertools.count(1)

    def fresh(self) -> str:
        return f"__jsonlogic_{next(self._names)}"

    # ---- binding -----------------------------------------------------------------------

    def bind(self, v: V, body: Callable[[V], exp.Expression]) -> exp.Expression:
        """Evaluate v once and let `body` refer to it many times (DuckDB has no LET)."""
        if _is_simple(v.sql):
            return body(v)
        name = self.fresh()
        inner = body(V(_ref(name), v.ty))
        lam = _lambda([name], inner)
        return fn("list_extract", fn("list_transform", exp.Array(expressions=[v.sql]), lam), n_lit(1))

    def bind_all(self, vs: list[V], body: Callable[[list[V]], exp.Expression]) -> exp.Expression:
        if not vs:
            return body([])
        head, *tail = vs
        return self.bind(head, lambda h: self.bind_all(tail, lambda t: body([h, *t])))

    # ---- coercions -----------------------------------------------------------------------

    def to_number(self, v: V, parse_float: bool = False) -> V:
        """JS Number(v) (or parseFloat(v) for + and *), never NULL."""
        ty = v.ty
        folded = _fold_number(v.sql, parse_float)
        if folded is not None:
            return V(n_lit(folded), t_num(nan=math.isnan(folded), integral=isinstance(folded, int)))
        if ty.rep == "num" and not (parse_float and ty.nullable):
            return V(v.sql if not ty.nullable else fn("coalesce", v.sql, n_lit(0)),
                     t_num(nan=ty.nan, integral=ty.integral))
        nan = parse_float or bool(ty.kinds & {STR, ARR, OBJ}) or ty.nan or ty.rep == "json"
        integral = not nan and ty.kinds <= {NULL, BOOL}

        def branch(kind: str, t: V) -> exp.Expression:
            if kind == NULL:
                return NAN() if parse_float else n_lit(0)
            if kind == BOOL:
                return NAN() if parse_float else _case([(t.sql, n_lit(1))], n_lit(0))
            if kind == NUM:
                return cast(t.sql, "DOUBLE")
            if kind == OBJ:
                return NAN()
            text = V(t.sql if kind == STR else self.array_to_string(t), t_str())
            convert = str_parse_float if parse_float else str_to_number
            return self.bind(text, lambda s: convert(s.sql))

        return V(self.bind(v, lambda b: dispatch(b, branch)), t_num(nan=nan, integral=integral))

    def to_string(self, v: V, null_text: str = "null") -> V:
        """JS String(v), never NULL; `cat` passes null_text="" because Array.join skips nulls."""
        if v.ty.rep == "str":
            return V(v.sql if not v.ty.nullable else fn("coalesce", v.sql, s_lit(null_text)), t_str())
        folded = _fold_string(v.sql, null_text)
        if folded is not None:
            return V(s_lit(folded), t_str())

        def branch(kind: str, t: V) -> exp.Expression:
            if kind == NULL:
                return s_lit(null_text)
            if kind == BOOL:
                return _case([(t.sql, s_lit("true"))], s_lit("false"))
            if kind == NUM:
                return num_to_string(t)
            if kind == STR:
                return t.sql
            if kind == ARR:
                return self.array_to_string(t)
            return s_lit("[object Object]")

        return V(self.bind(v, lambda b: dispatch(b, branch)), t_str())

    def array_to_string(self, lst: V, depth: int = 0) -> exp.Expression:
        """JS Array.prototype.join(","): null elements become "", nested arrays recurse."""
        name = self.fresh()
        elem = V(_ref(name), lst.ty.elem if lst.ty.elem.kinds else t_null())

        def branch(kind: str, t: V) -> exp.Expression:
            if kind == NULL:
                return s_lit("")
            if kind == ARR:
                if depth + 1 >= _NESTED_ARRAY_DEPTH:
                    # Deeper nesting: approximate with the JSON text minus brackets and quotes.
                    return fn("regexp_replace", cast(as_json(t), "VARCHAR"), s_lit(r'[\[\]"]'),
                              s_lit(""), s_lit("g"))
                return self.array_to_string(t, depth + 1)
            return self.to_string(t).sql

        body = dispatch(elem, branch)
        return fn("array_to_string", fn("list_transform", lst.sql, _lambda([name], body)), s_lit(","))

    def as_list(self, v: V) -> V | None:
        """The value as a SQL LIST that is NULL when v is not an array; None if it never is."""
        if v.ty.rep == "list":
            return v
        if ARR not in v.ty.kinds:
            return None
        return V(cast(v.sql, "JSON[]", try_=True), t_list(t_json(nan=v.ty.nan), null=True))

    def unify(self, vs: list[V]) -> tuple[Ty, list[exp.Expression]]:
        """One SQL type for values that meet in a CASE or COALESCE: typed if they agree, else JSON."""
        typed = [v for v in vs if v.ty.rep != "null"]
        kinds = frozenset().union(*(v.ty.kinds for v in vs))
        if not typed:
            return t_null(), [null_of("JSON") for _ in vs]
        reps = {v.ty.rep for v in typed}
        target: Ty | None = None
        if reps == {"list"}:
            elem = self._join_elems([v.ty.elem for v in typed])
            target = t_list(elem, null=NULL in kinds) if elem is not None else None
        elif len(reps) == 1 and reps != {"json"}:
            first = typed[0].ty
            target = replace(first, kinds=kinds, nan=any(v.ty.nan for v in typed),
                             integral=all(v.ty.integral for v in typed))
        if target is None:
            return t_json(kinds, nan=any(holds_nan(v.ty) for v in vs)), [as_json(v) for v in vs]
        return target, [self.coerce(v, target) for v in vs]

    @staticmethod
    def _join_elems(elems: list[Ty]) -> Ty | None:
        """A common element type for lists that meet, or None if they need JSON elements."""
        real = [e for e in elems if e.kinds]
        if not real:
            return _BOTTOM
        kinds = frozenset().union(*(e.kinds for e in real))
        nan = any(holds_nan(e) for e in real)
        reps = {e.rep for e in real if e.rep != "null"}
        if not reps or reps == {"json"}:
            return t_json(kinds, nan=nan)
        if len(reps) != 1 or reps == {"list"}:
            return None
        first = next(e for e in real if e.rep != "null")
        return replace(first, kinds=kinds, nan=nan, integral=all(e.integral for e in real if e.rep != "null"))

    def coerce(self, v: V, target: Ty) -> exp.Expression:
        """v's SQL converted to the SQL type of `target` (which unify chose to hold v)."""
        if target.rep == "json":
            return as_json(v)
        if v.ty.rep == "null":
            return null_of(sql_type(target))
        if target.rep == "list":
            return self._coerce_list(v, target)
        return v.sql

    def _coerce_list(self, v: V, target: Ty) -> exp.Expression:
        if not v.ty.elem.kinds:
            return cast(v.sql, sql_type(target))
        if target.elem.rep == "json" and v.ty.elem.rep != "json":
            name = self.fresh()
            body = as_json(V(_ref(name), v.ty.elem))
            return fn("list_transform", v.sql, _lambda([name], body))
        return v.sql

    def empty_list(self, elem: Ty) -> exp.Expression:
        return cast(exp.Array(expressions=[]), sql_type(elem) + "[]")


# --------------------------------------------------------------------------------------------
# Rule structure: parsing and checking (no variables needed)
# --------------------------------------------------------------------------------------------

# Arity (min, max) per operator; None = unbounded. Too few or too many arguments is malformed.
ARITY: dict[str, tuple[int, int | None]] = {
    "var": (0, 2), "missing": (0, None), "missing_some": (2, 2),
    "if": (0, None), "?:": (0, None),
    "==": (2, 2), "===": (2, 2), "!=": (2, 2), "!==": (2, 2),
    "!": (1, 1), "!!": (1, 1), "or": (1, None), "and": (1, None),
    ">": (2, 2), ">=": (2, 2), "<": (2, 3), "<=": (2, 3),
    "max": (1, None), "min": (1, None),
    "+": (0, None), "-": (1, 2), "*": (1, None), "/": (2, 2), "%": (2, 2),
    "map": (2, 2), "filter": (2, 2), "reduce": (2, 3), "all": (2, 2), "none": (2, 2), "some": (2, 2),
    "merge": (0, None), "in": (2, 2), "cat": (0, None), "substr": (2, 3),
}
SUPPORTED_OPERATORS = frozenset(ARITY)

Path = tuple  # location in the rule: op names (str) and indexes (int)


def format_path(path: Path) -> str:
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += "." + part
        else:
            out += "[" + json.dumps(part) + "]"
    return out


def parse_rule(rule: Any) -> Any:
    """JSON text (str/bytes) is parsed; anything else is taken as an already-parsed rule."""
    if isinstance(rule, (str, bytes, bytearray)):
        try:
            return json.loads(rule, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as error:
            raise RuleError(f"rule is not valid JSON: {error}") from None
    return rule


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def is_operation(node: Any) -> bool:
    # JsonLogic treats only single-key objects as operations; others are data.
    return isinstance(node, dict) and len(node) == 1


def operation(node: dict) -> tuple[str, list]:
    (op, args), = node.items()
    return op, (args if isinstance(args, list) else [args])


def arg_path(node: dict, path: Path, index: int) -> Path:
    op, raw = next(iter(node.items()))
    return (*path, op, index) if isinstance(raw, list) else (*path, op)


def check_node(node: Any, path: Path = ()) -> None:
    if node is None or isinstance(node, (bool, str)):
        return
    if isinstance(node, (int, float)):
        if isinstance(node, float) and not math.isfinite(node):
            raise RuleError(f"non-finite number {node!r} at {format_path(path)}")
        return
    if isinstance(node, list):
        for i, item in enumerate(node):
            check_node(item, (*path, i))
        return
    if isinstance(node, dict):
        if not all(isinstance(k, str) for k in node):
            raise RuleError(f"object keys must be strings at {format_path(path)}")
        if is_operation(node):
            _check_operation(node, path)
        else:
            _check_data(node, path)
        return
    raise RuleError(f"unsupported value of type {type(node).__name__} at {format_path(path)}")


def _check_data(node: Any, path: Path) -> None:
    """Literal objects are data: any JSON inside is fine, nothing is evaluated."""
    try:
        json.dumps(node, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise RuleError(f"invalid literal object at {format_path(path)}: {error}") from None


def _check_operation(node: dict, path: Path) -> None:
    op, args = operation(node)
    if op not in SUPPORTED_OPERATORS:
        raise RuleError(f"unsupported operator {json.dumps(op)} at {format_path(path)}")
    low, high = ARITY[op]
    if len(args) < low or (high is not None and len(args) > high):
        expected = f"{low}" if low == high else (f"at least {low}" if high is None else f"{low} to {high}")
        raise RuleError(
            f"operator {json.dumps(op)} at {format_path(path)} expects {expected} argument"
            f"{'' if expected == '1' else 's'}, got {len(args)}")
    for i, arg in enumerate(args):
        check_node(arg, arg_path(node, path, i))


# --------------------------------------------------------------------------------------------
# Scopes: what `var` reads — the row, an array item (map/filter/...), or reduce's pair
# --------------------------------------------------------------------------------------------


class RowScope:
    def __init__(self, variables: Variables):
        self.variables = variables

    def lookup(self, segments: tuple[str, ...]) -> V | None:
        return self.variables.lookup(segments)

    def lookup_dynamic(self, path: exp.Expression) -> V:
        return self.variables.lookup_dynamic(path)


class ItemScope:
    def __init__(self, item: V):
        self.item = item

    def lookup(self, segments: tuple[str, ...]) -> V | None:
        if segments == ("",):
            return self.item
        return extract(self.item, segments)

    def lookup_dynamic(self, path: exp.Expression) -> V:
        whole = _case([(_bin(exp.EQ, path, s_lit("")), as_json(self.item))],
                      json_extract_dynamic(as_json(self.item), path))
        return V(whole, t_json(nan=holds_nan(self.item.ty)))


class ReduceScope:
    def __init__(self, current: V, accumulator: V):
        self.fields = {"current": current, "accumulator": accumulator}

    def _whole(self) -> V:
        args = []
        for key, v in self.fields.items():
            args += [s_lit(key), as_json(v)]
        return V(fn("json_object", *args), t_json({OBJ}, nan=any(holds_nan(v.ty) for v in self.fields.values())))

    def lookup(self, segments: tuple[str, ...]) -> V | None:
        if segments == ("",):
            return self._whole()
        head, *rest = segments
        return extract(self.fields[head], tuple(rest)) if head in self.fields else None

    def lookup_dynamic(self, path: exp.Expression) -> V:
        return ItemScope(self._whole()).lookup_dynamic(path)


Scope = RowScope | ItemScope | ReduceScope


# --------------------------------------------------------------------------------------------
# Operators
# --------------------------------------------------------------------------------------------


class RuleCompiler(Compiler):
    """Walks a checked rule and returns V (value) or a BOOLEAN (truthiness) per node."""

    def value(self, node: Any, scope: Scope) -> V:
        if node is None:
            return V(exp.Null(), t_null())
        if isinstance(node, bool):
            return V(TRUE() if node else FALSE(), t_bool())
        if isinstance(node, (int, float)):
            return V(n_lit(node), t_num(integral=isinstance(node, int)))
        if isinstance(node, str):
            return V(s_lit(node), t_str())
        if isinstance(node, list):
            return self.make_list([self.value(item, scope) for item in node])
        if not is_operation(node):
            return V(cast(s_lit(json.dumps(node)), "JSON"), t_json({OBJ}))
        op, args = operation(node)
        return getattr(self, OPERATOR_METHODS[op])(op, args, scope)

    def truth(self, node: Any, scope: Scope) -> exp.Expression:
        """Truthiness of a node's value, pushed through and/or/!/if so no value is materialised."""
        if is_operation(node):
            op, args = operation(node)
            if op == "and":
                return _and(*[self.truth(a, scope) for a in args])
            if op == "or":
                return _or(*[self.truth(a, scope) for a in args])
            if op == "!":
                return _not(self.truth(args[0], scope))
            if op == "!!":
                return self.truth(args[0], scope)
            if op in ("if", "?:") and len(args) >= 2:
                pairs, default = _if_pairs(args)
                whens = [(self.truth(c, scope), self.truth(v, scope)) for c, v in pairs]
                return _case(whens, self.truth(default, scope) if default is not _ABSENT else FALSE())
        return truthy(self.value(node, scope))

    # ---- data --------------------------------------------------------------------------

    def make_list(self, items: list[V]) -> V:
        if not items:
            return V(self.empty_list(_BOTTOM), t_list(_BOTTOM))
        elem = self._join_elems([v.ty for v in items])
        if elem is not None and elem.rep in ("bool", "num", "str"):
            sqls = [self.coerce(v, elem) for v in items]
            return V(exp.Array(expressions=sqls), t_list(elem))
        kinds = frozenset().union(*(v.ty.kinds for v in items))
        nan = any(holds_nan(v.ty) for v in items)
        return V(exp.Array(expressions=[as_json(v) for v in items]), t_list(t_json(kinds, nan=nan)))

    def op_var(self, op: str, args: list, scope: Scope) -> V:
        path = args[0] if args else None
        found = self._lookup(path, scope)
        has_default = len(args) == 2 and args[1] is not None
        if not has_default or _is_whole_path(path):
            return found if found is not None else V(exp.Null(), t_null())
        default = self.value(args[1], scope)
        if found is None:
            return default
        if not found.ty.nullable:
            return found
        # JS returns the default only for undefined: a JSON null stays null, and COALESCE
        # sees JSON null as a value. A NULL typed column counts as undefined.
        ty, (f, d) = self.unify([found, default])
        if found.defined is not None:
            return V(_case([(fn("coalesce", found.defined, FALSE()), f)], d), ty)
        kinds = (found.ty.kinds - {NULL} if found.ty.rep != "json" else found.ty.kinds) | default.ty.kinds
        return V(fn("coalesce", f, d), replace(ty, kinds=frozenset(kinds)))

    def _lookup(self, path: Any, scope: Scope) -> V | None:
        if _is_whole_path(path):
            return scope.lookup(("",))
        if isinstance(path, (str, int, float)) and not isinstance(path, bool):
            return scope.lookup(tuple(_js_key(path).split(".")))
        return self._lookup_computed(self.value(path, scope), scope)

    def _lookup_computed(self, key: V, scope: Scope) -> V:
        """A computed path: JS String(key).split("."), or the whole scope for null/""."""
        whole = scope.lookup(("",))
        whole_sql = as_json(whole) if whole is not None else null_of("JSON")
        if key.ty.rep == "json":
            # JSON null is not SQL NULL; make it one so the IS NULL test below sees it.
            is_json_null = _bin(exp.EQ, fn("json_type", key.sql), s_lit("NULL"))
            key = V(_case([(is_json_null, null_of("JSON"))], key.sql), key.ty)

        found_types = []

        def body(k: V) -> exp.Expression:
            text = self.to_string(k).sql
            empty = _or(exp.Is(this=_wrap(k.sql), expression=exp.Null()), _bin(exp.EQ, text, s_lit("")))
            found = scope.lookup_dynamic(text)
            found_types.append(found.ty)
            return _case([(empty, whole_sql)], found.sql)

        sql = self.bind(key, body)
        nan = any(holds_nan(t) for t in found_types) or (whole is not None and holds_nan(whole.ty))
        return V(sql, t_json(nan=nan))

    def op_missing(self, op: str, args: list, scope: Scope) -> V:
        keys = args
        if len(args) == 1 and isinstance(args[0], list):
            keys = args[0]
        if all(isinstance(k, (str, int, float)) and not isinstance(k, bool) or k is None for k in keys):
            return self._missing_static(keys, scope)
        key_list = self._missing_keys(args, scope)
        return self._missing_dynamic(key_list, scope)

    def _missing_static(self, keys: list, scope: Scope) -> V:
        all_str = all(isinstance(k, str) for k in keys)
        elem = t_str() if all_str else t_json()
        parts = []
        for key in keys:
            found = self._lookup(key, scope)
            flag = self.bind(found, is_missing) if found is not None else TRUE()
            key_v = self.value(key, scope)
            item = exp.Array(expressions=[key_v.sql if all_str else as_json(key_v)])
            parts.append(_case([(flag, item)], self.empty_list(elem)))
        if not parts:
            return V(self.empty_list(_BOTTOM), t_list(_BOTTOM))
        sql = parts[0] if len(parts) == 1 else fn("list_concat", *parts)
        return V(sql, t_list(elem))

    def _missing_keys(self, args: list, scope: Scope) -> V:
        """JS: the first argument if it is an array, else all the arguments, as a SQL list."""
        if len(args) == 1:
            first = self.value(args[0], scope)
            as_list = self.as_list(first)
            if as_list is not None and first.ty.rep == "list":
                return first
            single = self.make_list([first])
            if as_list is None:
                return single
            return V(fn("coalesce", as_list.sql, single.sql), t_list(t_json()))
        return self.make_list([self.value(a, scope) for a in args])

    def _missing_dynamic(self, keys: V, scope: Scope) -> V:
        name = self.fresh()
        key = V(_ref(name), keys.ty.elem if keys.ty.elem.kinds else t_null())
        found = self._lookup_computed(key, scope)
        flag = self.bind(found, is_missing)
        return V(fn("list_filter", keys.sql, _lambda([name], flag)), replace(keys.ty, kinds=frozenset({ARR})))

    def op_missing_some(self, op: str, args: list, scope: Scope) -> V:
        need, options = args
        if isinstance(options, list):
            missing = self.op_missing("missing", [options], scope)
            total = V(n_lit(len(options)), t_num(integral=True))
        else:
            opts = self.value(options, scope)
            missing = self.op_missing("missing", [options], scope)
            lst = self.as_list(opts)
            total = V(fn("coalesce", fn("len", lst.sql), n_lit(0)) if lst else n_lit(0),
                      t_num(integral=True))
        present = V(_bin(exp.Sub, total.sql, fn("len", missing.sql)), t_num(integral=True))
        enough = self.relational(self.value(need, scope), present, strict=False)
        return V(_case([(enough, self.empty_list(missing.ty.elem))], missing.sql), missing.ty)

    # ---- logic -------------------------------------------------------------------------

    def op_if(self, op: str, args: list, scope: Scope) -> V:
        pairs, default = _if_pairs(args)
        if not pairs:
            return self.value(default, scope) if default is not _ABSENT else V(exp.Null(), t_null())
        values = [self.value(v, scope) for _, v in pairs]
        values.append(self.value(default, scope) if default is not _ABSENT else V(exp.Null(), t_null()))
        ty, sqls = self.unify(values)
        whens = [(self.truth(c, scope), s) for (c, _), s in zip(pairs, sqls)]
        return V(_case(whens, sqls[-1]), ty)

    def op_and(self, op: str, args: list, scope: Scope) -> V:
        values = [self.value(a, scope) for a in args]
        if all(v.ty.rep == "bool" and not v.ty.nullable for v in values):
            combine = _and if op == "and" else _or
            return V(combine(*[v.sql for v in values]), t_bool())
        ty, sqls = self.unify(values)
        # and: the first falsy operand, else the last; or: the first truthy one, else the last.
        whens = []
        for v, s in zip(values[:-1], sqls[:-1]):
            test = truthy(v)
            whens.append((_not(test) if op == "and" else test, s))
        return V(_case(whens, sqls[-1]) if whens else sqls[-1], ty)

    def op_not(self, op: str, args: list, scope: Scope) -> V:
        test = self.truth(args[0], scope)
        return V(_not(test) if op == "!" else test, t_bool())

    # ---- comparison --------------------------------------------------------------------

    def op_equals(self, op: str, args: list, scope: Scope) -> V:
        a, b = (self.value(x, scope) for x in args)
        strict = op in ("===", "!==")
        result = self.equals(a, b, strict)
        return V(_not(result) if op.startswith("!") else result, t_bool())

    def equals(self, a: V, b: V, strict: bool) -> exp.Expression:
        branch = _strict_eq_branch if strict else self._loose_eq_branch
        if not strict and (_is_dynamic(a) or _is_dynamic(b)):
            general = self.bind_all([a, b], lambda ab: self._loose_eq_flat(*ab))
        else:
            general = self.bind_all([a, b], lambda ab: dispatch(
                ab[0], lambda ka, ta: dispatch(ab[1], lambda kb, tb: branch(ka, ta, kb, tb))))
        return self._equals_by_text(a, b, strict, general) or self._equals_by_text(b, a, strict, general) or general

    def _equals_by_text(self, a: V, b: V, strict: bool, general: exp.Expression) -> exp.Expression | None:
        """JSON value vs null/boolean/string literal, deciding the common cases with one extraction."""
        text, wanted = canonical_json_text(a), literal_json_text(b)
        if text is None or wanted is None:
            return None
        if strict or isinstance(b.sql, exp.Null):
            return _bin(exp.EQ, text, wanted)
        # Loose ==: equal texts are equal; null equals no non-null literal; the rest (numbers,
        # arrays, strings that may coerce) goes through the general comparison.
        whens = [(wanted, TRUE()), (s_lit("null"), FALSE())]
        if isinstance(b.sql, exp.Boolean):
            whens.append((s_lit("false" if b.sql.this else "true"), FALSE()))
        return _case(whens, general, subject=text)

    def _loose_eq_flat(self, a: V, b: V) -> exp.Expression:
        """JS == as one CASE over kind tests, each conversion written once.

        null only equals null; two arrays/objects are never equal (no identity in SQL); when both
        sides are strings, arrays or objects they compare as strings; everything else as numbers.
        """
        a_null, b_null = kind_test(a, {NULL}), kind_test(b, {NULL})
        return _case([
            (_or(a_null, b_null), _and(a_null.copy(), b_null.copy())),
            (_and(kind_test(a, OBJECTISH), kind_test(b, OBJECTISH)), FALSE()),
            (_and(kind_test(a, STRINGISH), kind_test(b, STRINGISH)),
             _bin(exp.EQ, self.to_string(a).sql, self.to_string(b).sql)),
        ], _num_eq(self.to_number(a), self.to_number(b)))

    def _loose_eq_branch(self, ka: str, ta: V, kb: str, tb: V) -> exp.Expression:
        """JS abstract equality (==) for two non-null typed views of known kinds."""
        if NULL in (ka, kb):
            return TRUE() if ka == kb else FALSE()
        if ka == kb:
            return _strict_eq_branch(ka, ta, kb, tb)
        if ka == BOOL:
            return self._loose_eq_branch(NUM, self.to_number(ta), kb, tb)
        if kb == BOOL:
            return self._loose_eq_branch(ka, ta, NUM, self.to_number(tb))
        if {ka, kb} <= {ARR, OBJ}:
            return FALSE()  # objects compare by identity; SQL values have none
        if kb == NUM:
            ka, ta, kb, tb = kb, tb, ka, ta
        if ka == NUM:
            other = self.to_number(tb)  # string/array → Number(String(x)); object → NaN
            return _num_eq(ta, other)
        if kb == STR:
            ka, ta, kb, tb = kb, tb, ka, ta
        return _bin(exp.EQ, ta.sql, self.to_string(tb).sql)

    def op_compare(self, op: str, args: list, scope: Scope) -> V:
        values = [self.value(x, scope) for x in args]
        strict = op in ("<", ">")
        if op in (">", ">="):
            return V(self.relational(values[1], values[0], strict), t_bool())
        if len(values) == 2:
            return V(self.relational(values[0], values[1], strict), t_bool())
        a, b, c = values
        return V(self.bind(b, lambda bb: _and(self.relational(a, bb, strict),
                                              self.relational(bb, c, strict))), t_bool())

    def relational(self, a: V, b: V, strict: bool) -> exp.Expression:
        """JS a < b (strict) or a <= b: strings compare as strings, anything else as numbers."""
        pa, pb = _primitive_kinds(a.ty), _primitive_kinds(b.ty)
        if pa == {STR} and pb == {STR}:
            return _string_cmp(self.to_string(a), self.to_string(b), strict)
        if STR not in pa or STR not in pb:
            return _num_cmp(self.to_number(a), self.to_number(b), strict)
        if _is_dynamic(a) or _is_dynamic(b):
            # One copy of each conversion, chosen by kind tests: pairwise dispatch would repeat
            # every conversion once per pair of kinds.
            def flat(ab: list[V]) -> exp.Expression:
                x, y = ab
                as_strings = _and(kind_test(x, STRINGISH), kind_test(y, STRINGISH))
                return _case([(as_strings, _string_cmp(self.to_string(x), self.to_string(y), strict))],
                             _num_cmp(self.to_number(x), self.to_number(y), strict))

            return self.bind_all([a, b], flat)

        def branch(ka: str, ta: V, kb: str, tb: V) -> exp.Expression:
            if ka in (STR, ARR, OBJ) and kb in (STR, ARR, OBJ):
                return _string_cmp(self.to_string(ta), self.to_string(tb), strict)
            return _num_cmp(self.to_number(ta), self.to_number(tb), strict)

        return self.bind_all([a, b], lambda ab: dispatch(
            ab[0], lambda ka, ta: dispatch(ab[1], lambda kb, tb: branch(ka, ta, kb, tb))))

    # ---- arithmetic --------------------------------------------------------------------

    def op_add(self, op: str, args: list, scope: Scope) -> V:
        # json-logic-js: + and * use parseFloat (so null and true are NaN), - / % use Number.
        terms = [self.to_number(self.value(a, scope), parse_float=True) for a in args]
        if not terms:
            return V(n_lit(0), t_num(integral=True))
        node = exp.Add if op == "+" else exp.Mul
        sql = cast(terms[0].sql, "DOUBLE")
        for t in terms[1:]:
            sql = _bin(node, sql, cast(t.sql, "DOUBLE"))
        return V(sql, t_num(nan=any(t.ty.nan for t in terms)))

    def op_sub(self, op: str, args: list, scope: Scope) -> V:
        nums = [self.to_number(self.value(a, scope)) for a in args]
        nan = any(n.ty.nan for n in nums) or op in ("/", "%")
        if op == "-" and len(nums) == 1:
            return V(exp.Neg(this=_wrap(cast(nums[0].sql, "DOUBLE"))), t_num(nan=nan))
        node = {"-": exp.Sub, "/": exp.Div, "%": exp.Mod}[op]
        # DOUBLE on both sides: integer % 0 raises in DuckDB, double % 0 is NaN as in JS.
        return V(_bin(node, cast(nums[0].sql, "DOUBLE"), cast(nums[1].sql, "DOUBLE")), t_num(nan=nan))

    def op_minmax(self, op: str, args: list, scope: Scope) -> V:
        nums = [self.to_number(self.value(a, scope)) for a in args]
        if len(nums) == 1:
            return V(cast(nums[0].sql, "DOUBLE"), t_num(nan=nums[0].ty.nan))
        pick = fn("least" if op == "min" else "greatest", *[cast(n.sql, "DOUBLE") for n in nums])
        risky = [n for n in nums if n.ty.nan]
        if not risky:
            return V(pick, t_num())
        # Math.min/max return NaN if any argument is NaN; DuckDB's least() would skip it.
        any_nan = _or(*[fn("isnan", n.sql) for n in risky])
        return V(_case([(any_nan, NAN())], pick), t_num(nan=True))

    # ---- strings -----------------------------------------------------------------------

    def op_cat(self, op: str, args: list, scope: Scope) -> V:
        parts = [self.to_string(self.value(a, scope), null_text="").sql for a in args]
        if not parts:
            return V(s_lit(""), t_str())
        return V(parts[0] if len(parts) == 1 else fn("concat", *parts), t_str())

    def op_in(self, op: str, args: list, scope: Scope) -> V:
        needle, haystack = (self.value(a, scope) for a in args)
        sql = self.bind_all([needle, haystack], lambda nh: dispatch(
            nh[1], lambda kind, hay: _in_branch(self, nh[0], kind, hay)))
        return V(sql, t_bool())

    def in_list(self, needle: V, lst: V) -> exp.Expression:
        """Array.prototype.indexOf(needle) !== -1, i.e. some element === needle."""
        elem = lst.ty.elem
        text = canonical_json_text(needle)
        if text is not None and isinstance(lst.sql, exp.Array) and lst.sql.expressions:
            wanted = [literal_json_text(V(e, t_null())) for e in lst.sql.expressions]
            if all(w is not None for w in wanted):
                return exp.In(this=_wrap(text), expressions=wanted)

        def branch(kind: str, t: V) -> exp.Expression:
            if kind in (ARR, OBJ) or kind not in elem.kinds:
                return FALSE()
            name = self.fresh()
            item = V(_ref(name), elem)
            if kind != NULL and elem.rep == t.ty.rep and elem.rep in ("bool", "num", "str"):
                if _is_constant_list(lst.sql):
                    return _and(exp.In(this=_wrap(t.sql), expressions=[e.copy() for e in lst.sql.expressions]),
                                *_isnan_guard(t))
                found = fn("coalesce", fn("list_contains", lst.sql, t.sql), FALSE())
                return _and(found, *_isnan_guard(t))
            test = dispatch(item, lambda ke, te: _strict_eq_branch(ke, te, kind, t))
            return fn("coalesce", fn("list_bool_or", fn("list_transform", lst.sql, _lambda([name], test))),
                      FALSE())

        return dispatch(needle, branch)

    def op_substr(self, op: str, args: list, scope: Scope) -> V:
        source = self.to_string(self.value(args[0], scope))
        start = self.to_number(self.value(args[1], scope))
        length = self.to_number(self.value(args[2], scope)) if len(args) == 3 else None
        values = [source, start] + ([length] if length is not None else [])
        return V(self.bind_all(values, lambda vs: _substr(*vs)), t_str())

    # ---- arrays ------------------------------------------------------------------------

    def op_merge(self, op: str, args: list, scope: Scope) -> V:
        pieces = [self._merge_piece(self.value(a, scope)) for a in args]
        if not pieces:
            return V(self.empty_list(_BOTTOM), t_list(_BOTTOM))
        elem = self._join_elems([p.ty.elem for p in pieces])
        if elem is None:
            elem = t_json(frozenset().union(*(p.ty.elem.kinds for p in pieces)),
                          nan=any(holds_nan(p.ty) for p in pieces))
        target = t_list(elem)
        sqls = [self.coerce(p, target) for p in pieces]
        return V(sqls[0] if len(sqls) == 1 else fn("list_concat", *sqls), target)

    def _merge_piece(self, v: V) -> V:
        """JS [].concat(x): arrays contribute their elements, anything else itself."""
        if v.ty.rep == "list":
            if not v.ty.nullable:
                return v
            one_null = exp.Array(expressions=[null_of(sql_type(v.ty.elem))])
            return V(fn("coalesce", v.sql, one_null), t_list(v.ty.elem.with_null(True)))
        if v.ty.rep == "json" and ARR in v.ty.kinds:
            return V(self.bind(v, lambda b: fn("coalesce", cast(b.sql, "JSON[]", try_=True),
                                                exp.Array(expressions=[b.sql]))), t_list(t_json(nan=v.ty.nan)))
        return self.make_list([v])

    def _items(self, node: Any, scope: Scope) -> V | None:
        return self.as_list(self.value(node, scope))

    def _lambda_over(self, lst: V, body_node: Any, to_sql: Callable[[RuleCompiler, Any, Scope], Any]):
        name = self.fresh()
        item = V(_ref(name), lst.ty.elem if lst.ty.elem.kinds else t_null())
        return name, to_sql(self, body_node, ItemScope(item))

    def op_map(self, op: str, args: list, scope: Scope) -> V:
        lst = self._items(args[0], scope)
        if lst is None:
            return V(self.empty_list(_BOTTOM), t_list(_BOTTOM))
        name, body = self._lambda_over(lst, args[1], RuleCompiler.value)
        elem = body.ty if body.ty.rep in ("bool", "num", "str") else None
        body_sql = body.sql if elem is not None else as_json(body)
        elem = elem or json_ty(body.ty)
        mapped = fn("list_transform", lst.sql, _lambda([name], body_sql))
        return V(fn("coalesce", mapped, self.empty_list(elem)), t_list(elem))

    def op_filter(self, op: str, args: list, scope: Scope) -> V:
        lst = self._items(args[0], scope)
        if lst is None:
            return V(self.empty_list(_BOTTOM), t_list(_BOTTOM))
        name, test = self._lambda_over(lst, args[1], RuleCompiler.truth)
        kept = fn("list_filter", lst.sql, _lambda([name], test))
        return V(fn("coalesce", kept, self.empty_list(lst.ty.elem)), t_list(lst.ty.elem))

    def op_quantifier(self, op: str, args: list, scope: Scope) -> V:
        lst = self._items(args[0], scope)
        if lst is None:
            return V(TRUE() if op == "none" else FALSE(), t_bool())
        name, test = self._lambda_over(lst, args[1], RuleCompiler.truth)
        tests = fn("list_transform", lst.sql, _lambda([name], test))
        # list_bool_and([]) is NULL, which makes "all" of an empty array false as JsonLogic wants.
        combined = fn("coalesce", fn("list_bool_and" if op == "all" else "list_bool_or", tests), FALSE())
        return V(_not(combined) if op == "none" else combined, t_bool())

    def op_reduce(self, op: str, args: list, scope: Scope) -> V:
        init = self.value(args[2], scope) if len(args) == 3 else V(exp.Null(), t_null())
        lst = self._items(args[0], scope)
        if lst is None:
            return init
        cur_name, acc_name = self.fresh(), self.fresh()
        current = V(_ref(cur_name), lst.ty.elem if lst.ty.elem.kinds else t_null())
        acc_ty = init.ty
        for _ in range(4):
            body = self.value(args[1], ReduceScope(current, V(_ref(acc_name), acc_ty)))
            joined, _ = self.unify([V(exp.Null(), acc_ty), body])
            joined = joined if joined.rep != "null" else t_json({NULL})
            if joined == acc_ty or (joined.rep == acc_ty.rep == "json"):
                break
            acc_ty = joined
        else:
            acc_ty = t_json()
            body = self.value(args[1], ReduceScope(current, V(_ref(acc_name), acc_ty)))
        if acc_ty.rep == "null":
            acc_ty = t_json({NULL})
        body_sql = self._exact(body, acc_ty)
        init_sql = self._exact(init, acc_ty)
        step = _lambda([acc_name, cur_name], body_sql)

        def fold(items: V) -> exp.Expression:
            # Not an array: json-logic-js returns the initial value untouched.
            is_null = exp.Is(this=_wrap(items.sql), expression=exp.Null())
            return _case([(is_null, init_sql.copy())], fn("list_reduce", items.sql, step, init_sql))

        return V(self.bind(lst, fold), acc_ty)

    def _exact(self, v: V, ty: Ty) -> exp.Expression:
        """v as exactly the SQL type of ty: list_reduce needs one accumulator type."""
        sql = self.coerce(v, ty)
        return sql if ty.rep == "json" else cast(sql, sql_type(ty))


_ABSENT = object()


def _if_pairs(args: list) -> tuple[list[tuple[Any, Any]], Any]:
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
    default = args[-1] if len(args) % 2 == 1 else _ABSENT
    return pairs, default


def _is_whole_path(path: Any) -> bool:
    return path is None or path == "" or path == []


def _js_key(key: str | int | float) -> str:
    """JS String(key) for a literal path."""
    if isinstance(key, str):
        return key
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return repr(key) if isinstance(key, float) else str(key)


def is_missing(v: V) -> exp.Expression:
    """json-logic-js "missing": the value is null or the empty string."""

    def branch(kind: str, t: V) -> exp.Expression:
        if kind == NULL:
            return TRUE()
        if kind == STR:
            return _bin(exp.EQ, t.sql, s_lit(""))
        return FALSE()

    return dispatch(v, branch)


def _strict_eq_branch(ka: str, ta: V, kb: str, tb: V) -> exp.Expression:
    """JS ===: same kind and same value; arrays and objects never (no identity in SQL)."""
    if ka != kb or ka in (ARR, OBJ):
        return FALSE()
    if ka == NULL:
        return TRUE()
    if ka == NUM:
        return _num_eq(ta, tb)
    return _bin(exp.EQ, ta.sql, tb.sql)


def _num_eq(a: V, b: V) -> exp.Expression:
    # DuckDB says NaN = NaN; JS says NaN is equal to nothing.
    eq = _bin(exp.EQ, a.sql, b.sql)
    return _and(eq, _not(fn("isnan", a.sql))) if a.ty.nan and b.ty.nan else eq


def _primitive_kinds(ty: Ty) -> set[str]:
    """Kinds after JS ToPrimitive: arrays and objects become strings."""
    return {STR if k in (ARR, OBJ) else k for k in ty.kinds}


def _string_cmp(a: V, b: V, strict: bool) -> exp.Expression:
    return _bin(exp.LT if strict else exp.LTE, a.sql, b.sql)


def _num_cmp(a: V, b: V, strict: bool) -> exp.Expression:
    # DuckDB orders NaN above every number; in JS every comparison with NaN is false.
    cmp = _bin(exp.LT if strict else exp.LTE, a.sql, b.sql)
    guards = _isnan_guard(a) + _isnan_guard(b)
    return _and(cmp, *guards) if guards else cmp


def _in_branch(compiler: RuleCompiler, needle: V, kind: str, hay: V) -> exp.Expression:
    if kind == STR:
        # JS: if (!b) return false, so nothing is "in" the empty string.
        text = compiler.to_string(needle).sql
        return _and(_bin(exp.NEQ, hay.sql, s_lit("")), fn("contains", hay.sql, text))
    if kind == ARR:
        return compiler.in_list(needle, hay)
    return FALSE()


def _to_integer(n: V) -> exp.Expression:
    """JS ToIntegerOrInfinity: NaN → 0, otherwise truncate toward zero."""
    if n.ty.integral:
        return cast(n.sql, "DOUBLE")
    truncated = fn("trunc", n.sql)
    return _case([(fn("isnan", n.sql), n_lit(0.0))], truncated) if n.ty.nan else truncated


def _substr(source: V, start: V, length: V | None = None) -> exp.Expression:
    """json-logic-js substr: String.prototype.substr, with a negative length cutting from the end."""
    size = cast(fn("length", source.sql), "DOUBLE")
    st = _to_integer(start)
    begin = template("CASE WHEN ph_st < 0 THEN greatest(ph_size + ph_st, 0) ELSE least(ph_st, ph_size) END",
                     st=st, size=size)
    first = _bin(exp.Add, cast(begin, "BIGINT"), n_lit(1))
    if length is None:
        return fn("substring", source.sql, first)
    rest = _bin(exp.Sub, size, begin)
    take = template(
        "CASE WHEN ph_neg THEN greatest(trunc(ph_rest + ph_len), 0) ELSE greatest(least(ph_int, ph_rest), 0) END",
        neg=_num_cmp(length, V(n_lit(0), t_num(integral=True)), strict=True),
        rest=rest, len=length.sql, int=_to_integer(length))
    return fn("substring", source.sql, first, cast(take, "BIGINT"))


OPERATOR_METHODS = {
    "var": "op_var", "missing": "op_missing", "missing_some": "op_missing_some",
    "if": "op_if", "?:": "op_if", "and": "op_and", "or": "op_and", "!": "op_not", "!!": "op_not",
    "==": "op_equals", "===": "op_equals", "!=": "op_equals", "!==": "op_equals",
    "<": "op_compare", "<=": "op_compare", ">": "op_compare", ">=": "op_compare",
    "+": "op_add", "*": "op_add", "-": "op_sub", "/": "op_sub", "%": "op_sub",
    "min": "op_minmax", "max": "op_minmax", "cat": "op_cat", "in": "op_in", "substr": "op_substr",
    "merge": "op_merge", "map": "op_map", "filter": "op_filter", "reduce": "op_reduce",
    "all": "op_quantifier", "some": "op_quantifier", "none": "op_quantifier",
}
assert set(OPERATOR_METHODS) == SUPPORTED_OPERATORS


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledValue:
    """A rule's value as SQL: `sql` has DuckDB type `sql_type`; `kinds` are its possible JSON kinds."""

    sql: str
    sql_type: str
    kinds: frozenset


def check_rule(rule: Any) -> None:
    """Parse the rule and check its operators and their arities; raise RuleError if malformed."""
    check_node(parse_rule(rule))


def _compile(rule: Any, variables: Variables) -> tuple[RuleCompiler, Any]:
    node = parse_rule(rule)
    check_node(node)
    return RuleCompiler(variables), node


def compile_value(rule: Any, variables: Variables) -> CompiledValue:
    """The rule's value, typed where the compiler knows the type (BOOLEAN, DOUBLE or an integer
    type, VARCHAR, LIST) and JSON where it does not. SQL NULL means JSON null."""
    compiler, node = _compile(rule, variables)
    v = compiler.value(node, RowScope(variables))
    return CompiledValue(v.sql.sql(dialect=DIALECT), sql_type(v.ty), v.ty.kinds)


def compile_rule(rule: Any, variables: Variables) -> str:
    """SQL expression whose value is the rule's JsonLogic value (see compile_value for its type)."""
    return compile_value(rule, variables).sql


def compile_json(rule: Any, variables: Variables) -> str:
    """SQL expression of DuckDB type JSON holding the rule's value.

    Non-finite numbers are written as DuckDB's NaN/Infinity/-Infinity JSON tokens (DuckDB and
    Python's json module read them; strict JSON parsers do not).
    """
    return _json_ast(rule, variables).sql(dialect=DIALECT)


def _json_ast(rule: Any, variables: Variables) -> exp.Expression:
    compiler, node = _compile(rule, variables)
    return as_json(compiler.value(node, RowScope(variables)))


def compile_condition(rule: Any, variables: Variables) -> str:
    """SQL BOOLEAN, never NULL: the JsonLogic truthiness of the rule's value (for WHERE/CASE)."""
    compiler, node = _compile(rule, variables)
    return compiler.truth(node, RowScope(variables)).sql(dialect=DIALECT)


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
    value_sql = _json_ast(rule, Variables.for_datum(_DATUM))
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
