"""The public compile functions: a rule to a SQL value, JSON value or condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from pipeline.jsonlogic.types import sql_type
from pipeline.jsonlogic.render import render
from pipeline.jsonlogic.values import as_json
from pipeline.jsonlogic.variables import Variables
from pipeline.jsonlogic.rules import check_node, parse_rule
from pipeline.jsonlogic.scopes import RowScope
from pipeline.jsonlogic.operators import RuleCompiler


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
    return CompiledValue(render(v.sql), sql_type(v.ty), v.ty.kinds)


def compile_rule(rule: Any, variables: Variables) -> str:
    """SQL expression whose value is the rule's JsonLogic value (see compile_value for its type)."""
    return compile_value(rule, variables).sql


def compile_json(rule: Any, variables: Variables) -> str:
    """SQL expression of DuckDB type JSON holding the rule's value.

    Non-finite numbers are written as DuckDB's NaN/Infinity/-Infinity JSON tokens (DuckDB and
    Python's json module read them; strict JSON parsers do not).
    """
    return render(json_ast(rule, variables))


def json_ast(rule: Any, variables: Variables) -> exp.Expression:
    compiler, node = _compile(rule, variables)
    return as_json(compiler.value(node, RowScope(variables)))


def compile_condition(rule: Any, variables: Variables) -> str:
    """SQL BOOLEAN, never NULL: the JsonLogic truthiness of the rule's value (for WHERE/CASE)."""
    compiler, node = _compile(rule, variables)
    return render(compiler.truth(node, RowScope(variables)))
