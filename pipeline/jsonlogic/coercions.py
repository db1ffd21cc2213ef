"""JavaScript coercions in SQL: Number(), parseFloat(), String(), and binding values once.
The Compiler base class holds them, with the unification of types that meet in a CASE.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import replace

from sqlglot import exp

from pipeline.jsonlogic.types import (
    ARR,
    BOOL,
    BOTTOM,
    holds_nan,
    NULL,
    NUM,
    OBJ,
    sql_type,
    STR,
    t_json,
    t_list,
    t_null,
    t_num,
    t_str,
    Ty,
    V,
)
from pipeline.jsonlogic.sql import (
    case_when,
    cast,
    fn,
    is_simple,
    lambda_,
    n_lit,
    null_of,
    ref,
    s_lit,
    template,
)
from pipeline.jsonlogic.values import as_json, dispatch, fold_number, fold_string
from pipeline.jsonlogic.variables import Variables


# JavaScript's StrWhiteSpaceChar set, so Number(" 12\n") and parseFloat(" 12") trim like JS does.
_JS_SPACE = "\t\n\x0b\x0c\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_RE_SPACE = r"[\t\n\x{0B}\x{0C}\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}]"
_RE_DECIMAL = r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
_NESTED_ARRAY_DEPTH = 2  # String([[...]]) is recursive in JS; SQL expressions are not
def NAN() -> exp.Expression:
    return cast(s_lit("NaN"), "DOUBLE")


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
        if is_simple(v.sql):
            return body(v)
        name = self.fresh()
        inner = body(V(ref(name), v.ty))
        lam = lambda_([name], inner)
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
        folded = fold_number(v.sql, parse_float)
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
                return NAN() if parse_float else case_when([(t.sql, n_lit(1))], n_lit(0))
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
        folded = fold_string(v.sql, null_text)
        if folded is not None:
            return V(s_lit(folded), t_str())

        def branch(kind: str, t: V) -> exp.Expression:
            if kind == NULL:
                return s_lit(null_text)
            if kind == BOOL:
                return case_when([(t.sql, s_lit("true"))], s_lit("false"))
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
        elem = V(ref(name), lst.ty.elem if lst.ty.elem.kinds else t_null())

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
        return fn("array_to_string", fn("list_transform", lst.sql, lambda_([name], body)), s_lit(","))

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
            return BOTTOM
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
            body = as_json(V(ref(name), v.ty.elem))
            return fn("list_transform", v.sql, lambda_([name], body))
        return v.sql

    def empty_list(self, elem: Ty) -> exp.Expression:
        return cast(exp.Array(expressions=[]), sql_type(elem) + "[]")
