"""evaluate() compiles a rule once, binds each datum, and runs on its own connection unless given one."""

from __future__ import annotations

import json

import duckdb
import pytest

from pipeline.errors import RuleError
from pipeline.jsonlogic import evaluate


def test_one_rule_over_many_data_gives_each_datum_its_answer():
    rule = {"<": [{"var": "a"}, {"var": "b"}]}
    answers = [evaluate(rule, {"a": a, "b": 2}) for a in (1, 3, "1", None, [1], "x")]
    assert answers == [True, False, True, True, True, False]


def test_rule_text_and_parsed_rule_give_the_same_answer():
    rule = {"cat": [{"var": "s"}, 1.5, None, True]}
    assert evaluate(rule, {"s": "a"}) == evaluate(json.dumps(rule), {"s": "a"}) == "a1.5true"
    assert evaluate(json.dumps(rule).encode(), {"s": "b"}) == "b1.5true"


def test_a_malformed_rule_fails_every_time_it_is_evaluated():
    for _ in range(2):
        with pytest.raises(RuleError, match=r'unsupported operator "regex"'):
            evaluate('{"regex": [1]}', {})
        with pytest.raises(RuleError, match=r"unsupported value of type set"):
            evaluate({"in": [1, {1, 2}]}, {})


def test_a_given_connection_is_used_as_it_is():
    con = duckdb.connect()
    before = con.execute("SELECT current_setting('enable_optimizer')").fetchone()
    assert evaluate({"+": [{"var": "x"}, 1]}, {"x": 2}, connection=con) == 3
    assert con.execute("SELECT current_setting('enable_optimizer')").fetchone() == before == (True,)
