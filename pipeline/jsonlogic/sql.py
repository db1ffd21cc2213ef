"""sqlglot building blocks: function calls, casts, literals, folding AND/OR/CASE, binding helpers.
Everything the compiler emits is built here, so rule text only ever becomes quoted literals.
"""

from __future__ import annotations

import functools
import math

from sqlglot import exp


DIALECT = "duckdb"

_ATOMIC = (exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Paren, exp.Func, exp.Cast, exp.Case,
           exp.Array, exp.Identifier)


def wrap(e: exp.Expression) -> exp.Expression:
    # A negative literal after a minus sign would render as "--", which starts a SQL comment.
    if isinstance(e, exp.Literal) and e.is_number and e.this.startswith("-"):
        return exp.Paren(this=e)
    # Operators first: sqlglot's And/Or are also Func subclasses, yet need parentheses.
    if isinstance(e, (exp.Binary, exp.Unary, exp.Connector, exp.Predicate)):
        return exp.Paren(this=e)
    return e if isinstance(e, _ATOMIC) else exp.Paren(this=e)


def fn(name: str, *args: exp.Expression) -> exp.Expression:
    # Anonymous keeps DuckDB's own function names: sqlglot must not "transpile" them.
    return exp.Anonymous(this=name, expressions=[wrap(a) for a in args])


@functools.cache
def data_type(type_text: str) -> exp.DataType:
    return exp.DataType.build(type_text, dialect=DIALECT)


def cast(e: exp.Expression, type_text: str, try_: bool = False) -> exp.Expression:
    node = exp.TryCast if try_ else exp.Cast
    return node(this=wrap(e), to=data_type(type_text).copy())


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


def and_(*parts: exp.Expression) -> exp.Expression:
    """AND that folds constant TRUE/FALSE operands away."""
    kept = [p for p in parts if not is_const_bool(p, True)]
    if any(is_const_bool(p, False) for p in kept):
        return FALSE()
    if not kept:
        return TRUE()
    return kept[0] if len(kept) == 1 else exp.and_(*[wrap(p) for p in kept], copy=False)


def or_(*parts: exp.Expression) -> exp.Expression:
    """OR that folds constant TRUE/FALSE operands away."""
    kept = [p for p in parts if not is_const_bool(p, False)]
    if any(is_const_bool(p, True) for p in kept):
        return TRUE()
    if not kept:
        return FALSE()
    return kept[0] if len(kept) == 1 else exp.or_(*[wrap(p) for p in kept], copy=False)


def not_(e: exp.Expression) -> exp.Expression:
    if isinstance(e, exp.Boolean):
        return exp.Boolean(this=not e.this)
    return exp.Not(this=wrap(e))


def binary(node: type, a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return node(this=wrap(a), expression=wrap(b))


def case_when(whens: list[tuple[exp.Expression, exp.Expression]], default: exp.Expression | None = None,
          subject: exp.Expression | None = None) -> exp.Expression:
    if subject is None:
        # Drop branches that can never be taken; a branch that is always taken ends the CASE.
        live = []
        for cond, value in whens:
            if is_const_bool(cond, True):
                default = value
                break
            if not is_const_bool(cond, False):
                live.append((cond, value))
        whens = live
        if not whens:
            return default if default is not None else exp.Null()
    ifs = [exp.If(this=c, true=v) for c, v in whens]
    return exp.Case(this=subject, ifs=ifs, default=default)


def is_const_bool(e: exp.Expression, value: bool) -> bool:
    return isinstance(e, exp.Boolean) and e.this is value


def lambda_(params: list[str], body: exp.Expression) -> exp.Expression:
    return exp.Lambda(this=body, expressions=[exp.to_identifier(p) for p in params])


def ref(name: str) -> exp.Expression:
    return exp.column(name)


# Functions of simple arguments that are cheap to repeat: reading a JSON path or a list element, and
# the COALESCE that gives a typed column's NULL a value (coalesce("age", 0)).
_SIMPLE_FUNCS = {"json_extract", "list_extract", "json_extract_string", "coalesce"}


def is_simple(e: exp.Expression) -> bool:
    """Cheap to repeat: the compiler may copy it into several CASE branches instead of binding it."""
    if isinstance(e, (exp.Column, exp.Literal, exp.Null, exp.Boolean, exp.Identifier)):
        return True
    if isinstance(e, (exp.Cast, exp.Paren)):
        return is_simple(e.this)
    if isinstance(e, exp.Anonymous) and e.name.lower() in _SIMPLE_FUNCS or isinstance(e, exp.Array):
        return all(is_simple(a) for a in e.expressions)
    return False


def is_double(e: exp.Expression) -> bool:
    """Whether e is a cast to DOUBLE (the compiler's numbers that are not columns)."""
    while isinstance(e, exp.Paren):
        e = e.this
    return isinstance(e, exp.Cast) and e.to.this == exp.DataType.Type.DOUBLE


def reads_document(e: exp.Expression) -> bool:
    """Whether e reads a path of a JSON column: each such read parses the column's whole document."""
    for node in e.walk():
        if isinstance(node, exp.Anonymous) and node.name.lower() in ("json_extract", "json_extract_string"):
            source = node.expressions[0]
            while isinstance(source, (exp.Cast, exp.Paren)):
                source = source.this
            if isinstance(source, exp.Column) and source.this.args.get("quoted"):
                return True
    return False
