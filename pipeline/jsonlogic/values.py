"""Representations of a value (typed or JSON) and the run-time tests on them.
Conversion to JSON, dispatch on the JSON kind, truthiness, kind tests and JSON-text fast paths.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from sqlglot import exp

from pipeline.jsonlogic.types import (
    ARR,
    BOOL,
    KIND_ORDER,
    NULL,
    NUM,
    OBJ,
    STR,
    t_bool,
    t_json,
    t_list,
    t_null,
    t_num,
    t_str,
    Ty,
    V,
)
from pipeline.jsonlogic.sql import (
    and_,
    binary,
    case_when,
    cast,
    FALSE,
    fn,
    is_const_bool,
    n_lit,
    not_,
    null_of,
    s_lit,
    TRUE,
    wrap,
)


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

    v's SQL must be cheap to repeat: Compiler.dispatch binds it first when it is not.
    """
    ty = v.ty
    if ty.rep == "null" or not ty.kinds:
        return branch(NULL, V(exp.Null(), t_null()))
    if ty.rep == "json":
        kinds = [k for k in KIND_ORDER if k in ty.kinds]
        if len(kinds) == 1:
            return branch(kinds[0], _json_view(v.sql, kinds[0], ty))
        subject = _json_kind(v)
        *heads, last = kinds
        whens = []
        for kind in heads:
            result = branch(kind, _json_view(v.sql, kind, ty))
            whens += [(s_lit(name), result) for name in _JSON_TYPE_NAMES[kind]]  # one name each
        return case_when(whens, branch(last, _json_view(v.sql, last, ty)), subject=subject)
    kind = next(iter(ty.kinds - {NULL}))
    base = branch(kind, V(v.sql, ty.with_null(False)))
    if not ty.nullable:
        return base
    on_null = branch(NULL, V(exp.Null(), t_null()))
    if is_const_bool(on_null, False):
        # Predicates that are NULL for a NULL input need no CASE, only a COALESCE to FALSE.
        if _null_in_null_out(base, v.sql):
            # "x IS NOT NULL AND x = c" lets DuckDB push both into the scan; COALESCE would not.
            return and_(exp.Not(this=exp.Is(this=wrap(v.sql), expression=exp.Null())), base)
        if _is_coalesce_false(base) and _null_in_null_out(base.expressions[0], v.sql):
            return base
    return case_when([(exp.Is(this=wrap(v.sql), expression=exp.Null()), on_null)], base)


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


def is_constant_list(e: exp.Expression) -> bool:
    """An array literal of non-null constants: "x IN (...)" is then never NULL for a non-null x."""
    return isinstance(e, exp.Array) and bool(e.expressions) and all(
        isinstance(a, (exp.Literal, exp.Boolean)) or isinstance(a, exp.Cast) and isinstance(a.this, exp.Literal)
        for a in e.expressions)


def _is_coalesce_false(e: exp.Expression) -> bool:
    return (isinstance(e, exp.Anonymous) and e.name.lower() == "coalesce" and len(e.expressions) == 2
            and is_const_bool(e.expressions[1], False))


def isnan_guard(n: V) -> list[exp.Expression]:
    return [not_(fn("isnan", n.sql))] if n.ty.nan else []


def truthy(v: V) -> exp.Expression:
    """JsonLogic truthiness as a never-NULL BOOLEAN ([] and "" are falsy, "0" is truthy)."""
    if isinstance(v.sql, exp.Literal | exp.Null):
        value = v.sql.this if isinstance(v.sql, exp.Literal) else None
        number = fold_number(v.sql, parse_float=False) if v.ty.rep == "num" else None
        return TRUE() if (value not in (None, "") and number != 0) else FALSE()
    if v.ty.rep == "bool":
        return v.sql if not v.ty.nullable else fn("coalesce", v.sql, FALSE())
    text = canonical_json_text(v)
    if text is not None:
        # One extraction instead of one per kind: the falsy JSON texts are few and fixed.
        return not_(fn("regexp_full_match", text, s_lit(_FALSY_JSON_TEXT)))
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


def is_dynamic(v: V) -> bool:
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
        is_null = exp.Is(this=wrap(v.sql), expression=exp.Null())
        return is_null if NULL in kinds else not_(is_null)
    names = [s_lit(name) for kind in kinds & possible for name in _JSON_TYPE_NAMES[kind]]
    return exp.In(this=_json_kind(v), expressions=names)


def _json_kind(v: V) -> exp.Expression:
    """json_type(v), with 'NULL' for SQL NULL (a missing value) when v may be one."""
    kind = fn("json_type", v.sql)
    return fn("coalesce", kind, s_lit("NULL")) if NULL in v.ty.kinds else kind


def _truthy_branch(kind: str, t: V) -> exp.Expression:
    if kind == NULL:
        return FALSE()
    if kind == BOOL:
        return t.sql
    if kind == NUM:
        return and_(binary(exp.NEQ, t.sql, n_lit(0)), *isnan_guard(t))
    if kind == STR:
        return binary(exp.NEQ, t.sql, s_lit(""))
    if kind == ARR:
        return binary(exp.GT, fn("len", t.sql), n_lit(0))
    return TRUE()


# JavaScript's StrWhiteSpaceChar set, so Number(" 12\n") and parseFloat(" 12") trim like JS does.
JS_SPACE = "\t\n\x0b\x0c\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# The same set in RE2: \s is [\t\n\f\r ], \pZ every space, line and paragraph separator.
RE_SPACE = r"[\s\x0B\pZ\x{FEFF}]"
RE_DECIMAL = r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
RE_RADIX = r"0[xX][0-9a-fA-F]+|0[bB][01]+"
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_JS_NUMBER = re.compile(f"(?:{RE_DECIMAL}|{RE_RADIX})")
_JS_NUMBER_PREFIX = re.compile(RE_DECIMAL)


def fold_number(e: exp.Expression, parse_float: bool) -> int | float | None:
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
    if isinstance(e, exp.Literal) and e.is_string:
        # A string that is no number at all ("apple") is NaN; the others are left to the SQL.
        text = e.this.lstrip(JS_SPACE) if parse_float else e.this.strip(JS_SPACE)
        if parse_float and not _JS_NUMBER_PREFIX.match(text):
            return math.nan
        if not parse_float and text and not _JS_NUMBER.fullmatch(text):
            return math.nan
    return None


def fold_string(e: exp.Expression, null_text: str) -> str | None:
    """String() of a literal computed now (integers, booleans, null)."""
    if isinstance(e, exp.Boolean):
        return "true" if e.this else "false"
    if isinstance(e, exp.Null):
        return null_text
    if isinstance(e, exp.Literal) and e.is_number and re.fullmatch(r"-?[0-9]+", e.this):
        return str(int(e.this))
    return None
