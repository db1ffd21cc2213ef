"""Malformed rules and unsupported operators raise RuleError naming the operator and its place."""

from __future__ import annotations

import pytest

from pipeline.errors import PipelineError, RuleError
from pipeline.jsonlogic import (
    SUPPORTED_OPERATORS,
    Variables,
    check_rule,
    compile_condition,
    compile_rule,
    evaluate,
)

VARIABLES = Variables.from_columns({"x": "INTEGER"})


def test_unsupported_operator_at_the_root_is_named():
    with pytest.raises(RuleError, match=r'^unsupported operator "regex" at \$$'):
        check_rule({"regex": ["a", "b"]})


def test_unsupported_operator_inside_and_gives_its_index():
    with pytest.raises(RuleError, match=r'^unsupported operator "regex" at \$\.and\[1\]$'):
        check_rule({"and": [{"==": [1, 1]}, {"regex": ["a", "b"]}]})


def test_unsupported_operator_inside_a_lambda_gives_the_full_path():
    rule = {"and": [True, {"some": [{"var": "tags"}, {"regex": [{"var": ""}, "^v"]}]}]}
    with pytest.raises(RuleError, match=r'^unsupported operator "regex" at \$\.and\[1\]\.some\[1\]$'):
        check_rule(rule)


def test_unsupported_operator_under_a_single_argument_shorthand():
    with pytest.raises(RuleError, match=r'unsupported operator "log" at \$\["!"\]$'):
        check_rule({"!": {"log": 1}})


def test_unsupported_operator_inside_an_array_literal():
    with pytest.raises(RuleError, match=r'unsupported operator "method" at \$\.in\[1\]\[0\]$'):
        check_rule({"in": [1, [{"method": ["a", "b"]}]]})


def test_unsupported_operator_name_is_quoted_as_json():
    with pytest.raises(RuleError, match=r'unsupported operator "a\\"b" at \$'):
        check_rule({'a"b': 1})


def test_too_few_arguments_names_operator_and_expected_count():
    with pytest.raises(RuleError, match=r'^operator "substr" at \$\.or\[0\] expects 2 to 3 arguments, got 1$'):
        check_rule({"or": [{"substr": ["jsonlogic"]}, True]})


def test_too_many_arguments_names_operator_and_expected_count():
    with pytest.raises(RuleError, match=r'^operator "==" at \$ expects 2 arguments, got 3$'):
        check_rule({"==": [1, 1, 1]})


def test_unary_operator_without_argument_is_malformed():
    with pytest.raises(RuleError, match=r'^operator "!" at \$ expects 1 argument, got 0$'):
        check_rule({"!": []})


def test_map_without_a_body_is_malformed():
    with pytest.raises(RuleError, match=r'^operator "map" at \$\.if\[0\] expects 2 arguments, got 1$'):
        check_rule({"if": [{"map": [[1, 2]]}, 1, 2]})


def test_text_that_is_not_json_is_malformed():
    with pytest.raises(RuleError, match=r"^rule is not valid JSON: "):
        check_rule('{"==": [1, }')


def test_nan_in_rule_text_is_malformed():
    with pytest.raises(RuleError, match=r"^rule is not valid JSON: NaN is not a JSON number"):
        check_rule('{"==": [NaN, 1]}')


def test_non_finite_python_number_is_malformed():
    with pytest.raises(RuleError, match=r"^non-finite number inf at \$\[\"<\"\]\[1\]$"):
        check_rule({"<": [1, float("inf")]})


def test_python_value_that_is_not_json_is_malformed():
    with pytest.raises(RuleError, match=r"^unsupported value of type set at \$\.in\[1\]$"):
        check_rule({"in": [1, {1, 2}]})


def test_compile_condition_raises_the_same_error_as_check_rule():
    with pytest.raises(RuleError, match=r'unsupported operator "regex" at \$\.and\[0\]'):
        compile_condition({"and": [{"regex": 1}]}, VARIABLES)


def test_compile_rule_raises_rule_error_for_malformed_arity():
    with pytest.raises(RuleError, match=r'operator "%" at \$ expects 2 arguments, got 1'):
        compile_rule({"%": [1]}, VARIABLES)


def test_evaluate_raises_rule_error_before_touching_duckdb():
    with pytest.raises(RuleError, match=r'unsupported operator "regex" at \$'):
        evaluate({"regex": ["a", "b"]}, {})


def test_rule_error_is_reported_by_the_cli_like_other_pipeline_errors():
    assert issubclass(RuleError, PipelineError)


def test_every_supported_operator_passes_the_check():
    # One well-formed use of each operator, so the check rejects nothing it supports.
    arguments = {"var": ["x"], "missing": ["x"], "missing_some": [1, ["x"]], "!": [True], "!!": [True],
                 "-": [1], "map": [[1], 1], "filter": [[1], 1], "reduce": [[1], 1, 0], "all": [[1], 1],
                 "none": [[1], 1], "some": [[1], 1], "substr": ["s", 0], "<": [1, 2, 3], "<=": [1, 2, 3]}
    for op in sorted(SUPPORTED_OPERATORS):
        check_rule({op: arguments.get(op, [1, 2])})


def test_unknown_variable_is_not_an_error():
    assert evaluate({"var": "no.such.path"}, {"x": 1}) is None


def test_object_with_several_keys_is_data_not_an_operator():
    # json-logic-js only treats single-key objects as operations.
    assert evaluate({"a": 1, "regex": 2}, {}) == {"a": 1, "regex": 2}


def test_unsupported_column_type_is_reported_when_building_variables():
    with pytest.raises(ValueError, match=r"unsupported DuckDB type BLOB"):
        Variables.from_columns({"photo": "BLOB"})
