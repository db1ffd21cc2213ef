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
    and_,
    binary,
    case_when,
    cast,
    fn,
    is_double,
    is_simple,
    lambda_,
    n_lit,
    null_of,
    reads_document,
    ref,
    s_lit,
    wrap,
)
from pipeline.jsonlogic.values import (
    JS_SPACE,
    RE_DECIMAL,
    RE_RADIX,
    RE_SPACE,
    STRINGISH,
    Branch,
    as_json,
    canonical_json_text,
    dispatch,
    fold_number,
    fold_string,
    kind_test,
    truthy,
)
from pipeline.jsonlogic.variables import Variables


def NAN() -> exp.Expression:
    return cast(s_lit("NaN"), "DOUBLE")


def _token(s: exp.Expression, pattern: str) -> exp.Expression:
    """The first group of `pattern` in s, or NULL when it does not match."""
    return fn("nullif", fn("regexp_extract", s, s_lit(pattern), n_lit(1)), s_lit(""))


def str_to_number(s: exp.Expression) -> exp.Expression:
    """JS Number(string) of a string cheap to repeat: trimmed decimal, Infinity, 0x/0b literal; "" is 0;
    anything else NaN."""
    decimal = cast(_token(s, f"^{RE_SPACE}*({RE_DECIMAL}){RE_SPACE}*$"), "DOUBLE", try_=True)
    radix = cast(cast(_token(s, f"^{RE_SPACE}*({RE_RADIX}){RE_SPACE}*$"), "BIGINT", try_=True), "DOUBLE")
    empty = binary(exp.EQ, fn("trim", s, s_lit(JS_SPACE)), s_lit(""))
    return case_when([(empty, cast(n_lit(0), "DOUBLE"))], fn("coalesce", decimal, radix, NAN()))


def str_parse_float(s: exp.Expression) -> exp.Expression:
    """JS parseFloat(string): the longest decimal prefix after leading space, else NaN."""
    return fn("coalesce", cast(_token(s, f"^{RE_SPACE}*({RE_DECIMAL})"), "DOUBLE", try_=True), NAN())


def num_to_string(n: V) -> exp.Expression:
    """JS Number.prototype.toString for a never-NULL number whose SQL is cheap to repeat.

    Whole numbers below 1e21 print as integers; DuckDB's JSON writer already prints other doubles
    with JS's digits and exponent rule (1e-7, 0.000001, NaN, Infinity) except the "+" of a positive
    exponent (1e21 is "1e+21" in JS).
    """
    if n.ty.integral:
        return cast(n.sql, "VARCHAR")
    x = n.sql if is_double(n.sql) else cast(n.sql, "DOUBLE")  # FLOAT and DECIMAL columns too
    whole = and_(binary(exp.EQ, x, fn("trunc", x)), binary(exp.LT, fn("abs", x), exp.Literal.number("1e21")))
    text = cast(fn("to_json", x), "VARCHAR")
    signed = fn("replace", fn("replace", text, s_lit("e"), s_lit("e+")), s_lit("+-"), s_lit("-"))
    return case_when([(whole, cast(cast(x, "HUGEINT"), "VARCHAR"))], signed)


def _number_token(f: V) -> exp.Expression:
    """A JSON array element as text whose Number() is Number(String(element)), never NULL: a string
    as itself, an array (two levels down) approximated, anything else as its JSON text, which has
    the same Number() (NaN for true, false and objects) but for null ("", Array.join) and -0 ("0")."""
    text = cast(f.sql, "VARCHAR")
    other = case_when([(s_lit("null"), s_lit("")), (s_lit("-0.0"), s_lit("0"))], text, subject=text)
    whens = [(s_lit("VARCHAR"), fn("json_extract_string", f.sql, s_lit("$")))]
    if ARR in f.ty.kinds:
        whens.append((s_lit("ARRAY"), _approximate_string(V(cast(f.sql, "JSON[]", try_=True), t_list(t_json())))))
    return fn("coalesce", case_when(whens, other, subject=fn("json_type", f.sql)), s_lit(""))


def _approximate_string(lst: V) -> exp.Expression:
    """String() of an array three levels down: its JSON text without brackets and quotes."""
    return fn("regexp_replace", cast(as_json(lst), "VARCHAR"), s_lit(r'[\[\]"]'), s_lit(""), s_lit("g"))


class Compiler:
    """Compiles one rule; holds the counter that keeps lambda parameter names unique.

    SQL grows linearly with the rule: a subexpression is written once, and any value used more
    than once is either cheap to repeat (a column, a lambda parameter, a literal, a JSON read of
    one of those) or bound once to a lambda parameter first. `dispatch` and `truthy` bind for
    their callers.
    """

    def __init__(self, variables: Variables):
        self.variables = variables
        self._names = itertools.count(1)
        self._bind_reads = variables.bind_reads

    def cheap(self, e: exp.Expression) -> bool:
        """Cheap to repeat: written again rather than bound (see Variables.bind_reads)."""
        return is_simple(e) and not (self._bind_reads and reads_document(e))

    def fresh(self) -> str:
        return f"__jsonlogic_{next(self._names)}"

    # ---- binding -----------------------------------------------------------------------

    def bind(self, v: V, body: Callable[[V], exp.Expression]) -> exp.Expression:
        """Evaluate v once and let `body` refer to it many times (DuckDB has no LET)."""
        return self.bind_all([v], lambda bound: body(bound[0]))

    def bind_all(self, vs: list[V], body: Callable[[list[V]], exp.Expression]) -> exp.Expression:
        """body(values), each value evaluated once: those not cheap to repeat become fields of one
        struct, the parameter of a one-element lambda.

        One lambda for them all, with the values in its argument and only references in its body:
        DuckDB binds a lambda body more than once, so lambdas nested in lambda bodies cost time
        exponential in their depth to plan, while an argument is bound once.
        """
        pending = [i for i, v in enumerate(vs) if not self.cheap(v.sql)]
        if not pending:
            return body(list(vs))
        name = self.fresh()
        bound = list(vs)
        if len(pending) == 1:
            (i,) = pending
            bound[i] = V(ref(name), vs[i].ty, vs[i].defined)
            packed = vs[i].sql
        else:
            fields = []
            for k, i in enumerate(pending):
                bound[i] = V(exp.column(f"v{k}", table=name), vs[i].ty, vs[i].defined)
                fields.append(exp.PropertyEQ(this=exp.to_identifier(f"v{k}"), expression=vs[i].sql))
            packed = exp.Struct(expressions=fields)
        lam = lambda_([name], body(bound))
        return fn("list_extract", fn("list_transform", exp.Array(expressions=[packed]), lam), n_lit(1))

    def dispatch(self, v: V, branch: Branch) -> exp.Expression:
        """`branch(kind, typed view)` for every kind v may have, with v evaluated once."""
        return self.bind(v, lambda b: dispatch(b, branch))

    def truthy(self, v: V) -> exp.Expression:
        """JsonLogic truthiness as a never-NULL BOOLEAN, with v evaluated once."""
        if v.ty.rep == "bool" or canonical_json_text(v) is not None:
            return truthy(v)  # uses v once
        return self.bind(v, truthy)

    # ---- coercions -----------------------------------------------------------------------

    def to_number(self, v: V, parse_float: bool = False) -> V:
        """JS Number(v) (or parseFloat(v) for + and *), never NULL."""
        if v.number is not None and not parse_float:
            return v.number
        ty = v.ty
        folded = fold_number(v.sql, parse_float)
        if folded is not None:
            return V(n_lit(folded), t_num(nan=math.isnan(folded), integral=isinstance(folded, int)))
        if ty.rep == "num" and not (parse_float and ty.nullable):
            return V(v.sql if not ty.nullable else fn("coalesce", v.sql, n_lit(0)),
                     t_num(nan=ty.nan, integral=ty.integral))
        nan = parse_float or bool(ty.kinds & {STR, ARR, OBJ}) or ty.nan or ty.rep == "json"
        integral = not nan and ty.kinds <= {NULL, BOOL}
        if ty.rep == "json":
            return V(self.bind(v, lambda x: self._json_number(x, parse_float)), t_num(nan=nan, integral=integral))

        def branch(kind: str, t: V) -> exp.Expression:
            if kind == NULL:
                return NAN() if parse_float else n_lit(0)
            if kind == BOOL:
                return NAN() if parse_float else case_when([(t.sql, n_lit(1))], n_lit(0))
            if kind == NUM:
                return cast(t.sql, "DOUBLE")
            if kind == OBJ:
                return NAN()
            text = V(t.sql if kind == STR else self.array_to_string(t, numeric=True), t_str())
            convert = str_parse_float if parse_float else str_to_number
            return self.bind(text, lambda s: convert(s.sql))

        return V(self.dispatch(v, branch), t_num(nan=nan, integral=integral))

    def _json_number(self, x: V, parse_float: bool) -> exp.Expression:
        """Number(x) or parseFloat(x) of a JSON value cheap to repeat.

        Strings, arrays and objects convert through their one string (one copy of the string
        parser); null, booleans and numbers are a cast (a JSON true casts to 1, a null to NULL).
        """
        kinds = x.ty.kinds or frozenset({NULL})
        textual = kinds & STRINGISH
        others = kinds - STRINGISH
        converted = None
        if textual == {OBJ}:
            converted = NAN()
        elif textual:
            convert = str_parse_float if parse_float else str_to_number
            text = self.textual(x, textual, numeric=True)
            converted = self.bind(V(text, t_str()), lambda s: convert(s.sql))
        if parse_float:
            plain = NAN() if NUM not in others else cast(x.sql, "DOUBLE", try_=True)
            if NUM in others and others != {NUM}:
                plain = case_when([(kind_test(V(x.sql, t_json(others)), {NUM}), plain)], NAN())
        else:
            plain = fn("coalesce", cast(x.sql, "DOUBLE", try_=True), n_lit(0)) if others & {BOOL, NUM} else n_lit(0)
        if converted is None:
            return plain
        if not others:
            return converted
        return case_when([(kind_test(x, textual), converted)], plain)

    def textual(self, x: V, kinds: frozenset, numeric: bool = False) -> exp.Expression:
        """String(x) for a JSON x cheap to repeat, valid when x's kind is one of `kinds` (some of
        string, array, object); other kinds give any value. `numeric`: only Number() of the text
        will be used (see array_to_string)."""
        def branch(kind: str, t: V) -> exp.Expression:
            if kind == STR:
                return t.sql
            if kind == ARR:
                return self.array_to_string(t, numeric)
            return s_lit("[object Object]")

        return dispatch(V(x.sql, t_json(kinds, nan=x.ty.nan)), branch)

    def primitive_text(self, x: V) -> exp.Expression | None:
        """JS ToPrimitive(x) for a value cheap to repeat: its string when x is a string, array or
        object, else NULL; None when x is never one. Comparisons decide "both strings" with it and
        Number() reuses it, so an array is joined once."""
        textual = x.ty.kinds & STRINGISH
        if not textual:
            return None
        if x.text is not None:
            return x.text
        if x.ty.rep == "str":
            return x.sql
        if x.ty.rep == "list":
            return self.array_to_string(x)  # NULL for a NULL list
        text = self.textual(x, textual)
        if x.ty.kinds <= textual:
            return text
        return case_when([(kind_test(x, textual), text)])

    def number_given_text(self, x: V, text: exp.Expression | None) -> V:
        """Number(x) for an x cheap to repeat whose primitive_text is `text` (also cheap to repeat)."""
        if text is None or x.number is not None:
            return self.to_number(x)
        rest = x.ty.kinds - STRINGISH
        others = n_lit(0) if rest <= {NULL} else self.to_number(V(x.sql, replace(x.ty, kinds=frozenset(rest)))).sql
        text_is_null = exp.Is(this=wrap(text), expression=exp.Null())
        return V(case_when([(text_is_null, others)], str_to_number(text)), t_num(nan=True))

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
                return self.bind(t, num_to_string)
            if kind == STR:
                return t.sql
            if kind == ARR:
                return self.array_to_string(t)
            return s_lit("[object Object]")

        return V(self.dispatch(v, branch), t_str())

    def array_to_string(self, lst: V, numeric: bool = False) -> exp.Expression:
        """JS Array.prototype.join(",") of a list cheap to repeat: null elements become "", nested
        arrays join their elements (two levels deep, then approximated).

        JSON elements that may be arrays are flattened one level first (an empty array becomes one
        null token), so the element conversion is written once for both levels. With `numeric`,
        only Number() of the result matters: a JSON number is then written as its JSON text, which
        has the same value (and zero as "0": Number(String([-0])) is 0), not as JS would print it.
        """
        elem = lst.ty.elem if lst.ty.elem.kinds else t_null()
        items = lst.sql
        nested = elem.rep == "json" and ARR in elem.kinds
        if nested:
            name = self.fresh()
            e = V(ref(name), elem)
            inner = case_when([(kind_test(e, {ARR}), case_when(
                [(binary(exp.EQ, fn("json_array_length", e.sql), n_lit(0)), exp.Array(expressions=[null_of("JSON")]))],
                cast(e.sql, "JSON[]", try_=True)))], exp.Array(expressions=[e.sql]))
            items = fn("flatten", fn("list_transform", lst.sql, lambda_([name], inner)))
            elem = t_json(nan=holds_nan(elem))
        name = self.fresh()
        token = V(ref(name), elem)

        def branch(kind: str, t: V) -> exp.Expression:
            if kind == NULL:
                return s_lit("")
            if kind == ARR:
                return _approximate_string(t)  # an array two levels down
            return self.to_string(t).sql

        body = _number_token(token) if numeric and token.ty.rep == "json" else dispatch(token, branch)
        return fn("array_to_string", fn("list_transform", items, lambda_([name], body)), s_lit(","))

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
