"""Compile JsonLogic rules into DuckDB SQL expressions so one query evaluates a rule for every row.
Also checks rules (operators, arity) and evaluates one rule over one JSON datum through the same SQL.
"""

# Semantics follow json-logic-js, the reference implementation behind the official test suite;
# docs/jsonlogic.md describes the type model and the known deviations. SQL is built as a sqlglot
# AST: rule text only ever becomes quoted identifiers or literals, never SQL syntax.
#
# One idea per module: types (what the compiler knows of a value), sql (sqlglot building blocks),
# values (representations and run-time kind tests), variables (paths to columns), coercions (JS
# Number/String and binding), rules (parsing and checking), scopes (what var reads), operators
# (one method per operator), render (the AST as SQL text), api (the compile functions), datum
# (evaluate over one JSON datum).

from pipeline.jsonlogic.api import (
    CompiledValue,
    check_rule,
    compile_condition,
    compile_json,
    compile_rule,
    compile_value,
)
from pipeline.jsonlogic.datum import evaluate
from pipeline.jsonlogic.rules import SUPPORTED_OPERATORS
from pipeline.jsonlogic.variables import Variables

__all__ = [
    "CompiledValue",
    "SUPPORTED_OPERATORS",
    "Variables",
    "check_rule",
    "compile_condition",
    "compile_json",
    "compile_rule",
    "compile_value",
    "evaluate",
]
