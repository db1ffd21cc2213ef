"""Rule structure: parsing and checking (no variables needed).
Arity per operator, and RuleError messages that say where in the rule the problem is.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pipeline.errors import RuleError


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


# Nested arrays and objects a rule may hold. The checker and the compiler recurse a few
# frames a level and Python stops near 1,000 frames: a valid rule 500 levels deep crashed
# the run with a RecursionError instead of being refused.
MAX_DEPTH = 256


def depth(node: Any) -> int:
    """How deep arrays and objects nest in a parsed rule (counted without recursion)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def check_node(node: Any, path: Path = ()) -> None:
    if not path and (levels := depth(node)) > MAX_DEPTH:
        raise RuleError(f"rule nests {levels} levels deep, more than the {MAX_DEPTH} a rule may")
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
