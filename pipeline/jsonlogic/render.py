"""Writes a compiled expression as DuckDB SQL text: the node types the compiler builds, quoted as
sqlglot's DuckDB generator quotes them, and sqlglot itself for anything else.
"""

# sqlglot's generator costs about half a microsecond per character of output, as much as the
# rest of compiling, and copies the tree first. The compiler builds a few dozen node types, all
# plain: their text is fixed keywords around their children. Identifiers and string literals go
# through the same quoting rules as sqlglot's (a doubled quote), so rule text stays data; a test
# renders every official case and thousands of random rules both ways and compares the text.

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

_DUCKDB = Dialect.get_or_raise("duckdb")


def render(e: exp.Expression) -> str:
    """DuckDB SQL text of a compiled expression (the same text as e.sql(dialect="duckdb"))."""
    out: list[str] = []
    _emit(e, out)
    return "".join(out)


def sqlglot_render(e: exp.Expression) -> str:
    """The same text from sqlglot's own generator, without the copy Expression.sql() makes first."""
    return _DUCKDB.generate(e, copy=False)


def _emit(e: exp.Expression, out: list[str]) -> None:
    write = _WRITERS.get(type(e))
    if write is None:
        out.append(sqlglot_render(e))
    else:
        write(e, out)


def _identifier(node: exp.Identifier) -> str:
    name = node.this
    return '"' + name.replace('"', '""') + '"' if node.args.get("quoted") else name


def _column(e: exp.Column, out: list[str]) -> None:
    table = e.args.get("table")
    if table is not None:
        out.append(_identifier(table))
        out.append(".")
    out.append(_identifier(e.this))


def _literal(e: exp.Literal, out: list[str]) -> None:
    out.append("'" + e.this.replace("'", "''") + "'" if e.is_string else e.this)


def _function(e: exp.Anonymous, out: list[str]) -> None:
    out.append(e.name.upper())
    _arguments(e.expressions, out)


def _arguments(args: list[exp.Expression], out: list[str], opening: str = "(", closing: str = ")") -> None:
    out.append(opening)
    for i, arg in enumerate(args):
        if i:
            out.append(", ")
        _emit(arg, out)
    out.append(closing)


_TYPES: dict[exp.DataType, str] = {}


def _cast(e: exp.Cast, out: list[str]) -> None:
    out.append("TRY_CAST(" if isinstance(e, exp.TryCast) else "CAST(")
    _emit(e.this, out)
    out.append(" AS ")
    to = e.args["to"]
    text = _TYPES.get(to)
    if text is None:
        text = _TYPES[to.copy()] = sqlglot_render(to)
    out.append(text)
    out.append(")")


def _case(e: exp.Case, out: list[str]) -> None:
    out.append("CASE")
    subject = e.this
    if subject is not None:
        out.append(" ")
        _emit(subject, out)
    for branch in e.args.get("ifs") or []:
        out.append(" WHEN ")
        _emit(branch.this, out)
        out.append(" THEN ")
        _emit(branch.args["true"], out)
    default = e.args.get("default")
    if default is not None:
        out.append(" ELSE ")
        _emit(default, out)
    out.append(" END")


def _binary(operator: str) -> Callable[[exp.Expression, list[str]], None]:
    def write(e: exp.Expression, out: list[str]) -> None:
        _emit(e.this, out)
        out.append(operator)
        _emit(e.expression, out)

    return write


def _prefix(keyword: str) -> Callable[[exp.Expression, list[str]], None]:
    def write(e: exp.Expression, out: list[str]) -> None:
        out.append(keyword)
        _emit(e.this, out)

    return write


def _paren(e: exp.Paren, out: list[str]) -> None:
    out.append("(")
    _emit(e.this, out)
    out.append(")")


def _in(e: exp.In, out: list[str]) -> None:
    _emit(e.this, out)
    out.append(" IN ")
    _arguments(e.expressions, out)


def _lambda(e: exp.Lambda, out: list[str]) -> None:
    out.append("LAMBDA ")
    out.append(", ".join(_identifier(p) for p in e.expressions))
    out.append(" : ")
    _emit(e.this, out)


def _struct(e: exp.Struct, out: list[str]) -> None:
    out.append("{")
    for i, field in enumerate(e.expressions):
        if i:
            out.append(", ")
        out.append("'" + field.this.this.replace("'", "''") + "': ")
        _emit(field.expression, out)
    out.append("}")


_WRITERS: dict[type, Callable[[exp.Expression, list[str]], None]] = {
    exp.Column: _column,
    exp.Literal: _literal,
    exp.Null: lambda e, out: out.append("NULL"),
    exp.Boolean: lambda e, out: out.append("TRUE" if e.this else "FALSE"),
    exp.Anonymous: _function,
    exp.Cast: _cast,
    exp.TryCast: _cast,
    exp.Case: _case,
    exp.Paren: _paren,
    exp.EQ: _binary(" = "),
    exp.NEQ: _binary(" <> "),
    exp.LT: _binary(" < "),
    exp.LTE: _binary(" <= "),
    exp.GT: _binary(" > "),
    exp.GTE: _binary(" >= "),
    exp.Add: _binary(" + "),
    exp.Sub: _binary(" - "),
    exp.Mul: _binary(" * "),
    exp.Div: _binary(" / "),
    exp.Mod: _binary(" % "),
    exp.DPipe: _binary(" || "),
    exp.And: _binary(" AND "),
    exp.Or: _binary(" OR "),
    exp.Is: _binary(" IS "),
    exp.Not: _prefix("NOT "),
    exp.Neg: _prefix("-"),
    exp.In: _in,
    exp.Array: lambda e, out: _arguments(e.expressions, out, "[", "]"),
    exp.Lambda: _lambda,
    exp.Struct: _struct,
}
