"""The compiled SQL grows linearly with the rule, stays shallow in lambdas, and is written as sqlglot
would write it; the compact conversions that make it so agree with JavaScript.
"""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path

import duckdb
import pytest
from sqlglot import exp
from test_jsonlogic_differential import JS_SPACE, js_number_to_string, js_to_number
from test_jsonlogic_injection import HOSTILE

from random_rules import TYPED, rule_of_depth
from pipeline.jsonlogic import Variables, compile_condition, compile_json, compile_rule, evaluate
from pipeline.jsonlogic.api import json_ast
from pipeline.jsonlogic.render import render, sqlglot_render

PATHS = {
    "typed": Variables.from_columns(TYPED),
    "untyped": Variables.from_columns({}, json_columns=list(TYPED)),
    "datum": Variables.for_datum("__jsonlogic_datum"),
}
# Measured: at most 44 (typed) and 108 (untyped) SQL characters per rule character, the worst
# being one comparison of two unknown JSON values; long rules stay near 10 and 45.
SQL_PER_RULE_CHAR = 120
SUITE = Path(__file__).resolve().parent / "data" / "jsonlogic" / "tests.json"
NESTED = Path(__file__).resolve().parent / "data" / "nested_rule.json"


RULES = [rule_of_depth(random.Random(depth * 100 + i), depth) for depth in range(1, 9) for i in range(15)]


def lambda_depth(e: exp.Expression, depth: int = 0) -> int:
    """How many lambda bodies enclose the deepest node (DuckDB binds each body more than once)."""
    deepest = depth
    for key, child in e.args.items():
        for node in child if isinstance(child, list) else [child]:
            if isinstance(node, exp.Expression):
                inner = depth + 1 if isinstance(e, exp.Lambda) and key == "this" else depth
                deepest = max(deepest, lambda_depth(node, inner))
    return deepest


@pytest.mark.parametrize("path", PATHS)
def test_sql_grows_linearly_with_the_rule(path):
    for rule in RULES:
        text = json.dumps(rule)
        sql = compile_condition(text, PATHS[path])
        assert len(sql) <= SQL_PER_RULE_CHAR * len(text), f"{len(sql)} SQL chars for {len(text)}: {text}"


def test_a_subexpression_is_written_once_however_deep_the_nesting():
    # Each level reuses the previous rule twice; SQL that pasted it per use would double per level.
    rule: object = {"var": "n2"}
    sizes = []
    for _ in range(8):
        rule = {"if": [{"<=": [1, rule, 10]}, {"cat": [rule, "x"]}, {"in": ["vip", {"var": "tags"}]}]}
        sizes.append(len(compile_json(rule, PATHS["untyped"])) / len(json.dumps(rule)))
    assert max(sizes) < 2 * min(sizes), sizes


@pytest.mark.parametrize("path", PATHS)
def test_lambdas_do_not_nest_with_the_rule(path):
    # Without map/filter/reduce in the rule, lambda bodies nest only inside one operator's own
    # conversions (a chained comparison of JSON values is the deepest, 6), never rule in rule.
    deepest = {depth: 0 for depth in range(1, 11)}
    for depth in deepest:
        for i in range(20):
            rule = rule_of_depth(random.Random(depth * 1000 + i), depth)
            deepest[depth] = max(deepest[depth], lambda_depth(json_ast(json.dumps(rule), PATHS[path])))
    assert max(deepest.values()) <= 6, deepest


def corpus() -> list[object]:
    suite = [case[0] for case in json.loads(SUITE.read_text(encoding="utf-8")) if not isinstance(case, str)]
    hostile = [rule for text in HOSTILE for rule in ({"==": [{"var": text}, text]}, {"cat": [text, {"var": "s1"}]})]
    return suite + RULES + hostile


def test_the_renderer_writes_what_sqlglot_writes():
    odd = Variables.from_columns({'x; "y"': "INTEGER", "s1": "VARCHAR"}, json_columns=["attributes"], table='t"1')
    for variables in (*PATHS.values(), odd):
        for rule in corpus():
            tree = json_ast(json.dumps(rule), variables)
            assert render(tree) == sqlglot_render(tree), json.dumps(rule)


def test_the_nested_rule_of_issue_13_compiles_to_a_few_thousand_characters():
    nested = json.loads(NESTED.read_text(encoding="utf-8"))
    rule, data = nested["rule"], nested["data"]
    assert len(json.dumps(rule)) == 389
    assert len(compile_json(rule, PATHS["datum"])) < 20_000  # 171,286 before
    assert evaluate(rule, data) is False
    assert evaluate(rule, dict(data, maxv="3")) is True  # 1 <= 3 <= "3"


def test_number_to_string_matches_javascript_for_any_double():
    rng = random.Random(13)
    numbers = [0.0, -0.0, 0.1, 1e21, 1e-7, 2.5e-6, 1e-6, 123e18, 5e-324, 1.7976931348623157e308, 2**53 + 2,
               math.inf, -math.inf, math.nan]
    numbers += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(3000)]
    numbers += [rng.uniform(-10, 10) * 10 ** rng.randint(-12, 25) for _ in range(3000)]
    sql = compile_rule({"cat": [{"var": "x"}]}, Variables.from_columns({"x": "DOUBLE"}))
    con = duckdb.connect()
    rows = con.execute(f"SELECT x, {sql} FROM (SELECT unnest(?::DOUBLE[]) AS x)", [numbers]).fetchall()
    # Integers of 2^53 and more print their exact value, not JS's rounded digits (deviation 9).
    exact = [(x, text) for x, text in rows if math.isfinite(x) and (x != int(x) or abs(x) < 2**53 or abs(x) >= 1e21)]
    assert len(exact) > 4000
    assert [text for _, text in exact] == [js_number_to_string(x) for x, _ in exact]


@pytest.mark.parametrize("space", list(JS_SPACE) + ["\u200b", "\u180e", "\x85", "\x1c"],
                         ids=lambda c: f"U+{ord(c):04X}")
def test_number_trims_exactly_the_javascript_white_space(space):
    # U+200B, U+180E, U+0085 and U+001C look like spaces but are not JS white space: NaN.
    for text in (f"{space}12{space}", f"{space}0x1A", f"{space}"):
        got = evaluate({"-": [{"var": "s"}, 0]}, {"s": text})
        expected = js_to_number(text)
        assert got == expected or (math.isnan(got) and math.isnan(expected)), repr(text)


def test_number_of_nested_arrays_is_the_number_of_their_string():
    cases = {json.dumps(v): v for v in ([], [[]], [5], [[5]], [["5"]], [[" 7 "]], [-0.0], [[None]], [True], [1, 2],
                                        [[1, 2]], [[]], [[], []], [{"a": 1}], ["0x10"], [[[3]]])}
    for text, value in cases.items():
        got = evaluate({"-": [{"var": "a"}, 0]}, {"a": value})
        expected = js_to_number(value) - 0.0
        assert got == expected or (math.isnan(got) and math.isnan(expected)), text
        assert math.copysign(1, got) == math.copysign(1, expected) or math.isnan(got), text
