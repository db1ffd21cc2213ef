"""Differential test: random rules compiled to DuckDB SQL agree with a row-by-row interpreter.

The reference is panzi-json-logic's interpreter (apply/if/and/or/map/filter/reduce/all/some/none,
var walking, missing, merge, truthiness) with the primitive operators replaced where panzi departs
from json-logic-js, the implementation the official suite comes from. Every replacement is justified
by a test below that shows raw panzi disagreeing with json-logic-js on a concrete input.

Generator constraints and reference choices (deviations listed in docs/jsonlogic.md):
- no var paths that index into strings or read ".length" (JS string indexing is unsupported);
- `all` over a string keeps panzi's answer, false (json-logic-js iterates the characters);
- reduce's initial value is a literal (json-logic-js does not evaluate it);
- `*` gets two or more arguments (JS returns a lone argument unconverted);
- strings are BMP-only (JS compares and slices UTF-16 code units, DuckDB code points);
- data values never share identity: `var` returns copies, because SQL values have none.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_logic import builtins as panzi_builtins
from json_logic import jsonLogic as panzi_apply

from pipeline.jsonlogic import Variables, compile_condition, compile_json, compile_value

# ----------------------------------------------------------------------------------------------
# JavaScript coercions (ECMAScript 2023, sections 7.1 and 7.2), written from the spec.
# ----------------------------------------------------------------------------------------------

NAN = float("nan")
UNDEFINED = object()
JS_SPACE = "\t\n\x0b\x0c\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
DECIMAL = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def js_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "object"


def js_string_to_number(s: str) -> float:
    t = s.strip(JS_SPACE)
    if t == "":
        return 0.0
    if re.fullmatch(DECIMAL, t):
        return float(t)
    if re.fullmatch(r"[+-]?Infinity", t):
        return -math.inf if t.startswith("-") else math.inf
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", t):
        return float(int(t[2:], 16))
    if re.fullmatch(r"0[bB][01]+", t):
        return float(int(t[2:], 2))
    return NAN


def js_to_number(v: Any) -> float:
    kind = js_type(v)
    if kind == "null":
        return 0.0
    if kind == "boolean":
        return 1.0 if v else 0.0
    if kind == "number":
        return float(v)
    if kind == "string":
        return js_string_to_number(v)
    return js_string_to_number(js_to_string(v)) if isinstance(v, list) else NAN


def js_parse_float(v: Any) -> float:
    match = re.match(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", js_to_string(v).lstrip(JS_SPACE))
    if not match:
        return NAN
    text = match.group(0)
    return (-math.inf if text.startswith("-") else math.inf) if text.endswith("Infinity") else float(text)


def js_number_to_string(x: float) -> str:
    """Number::toString: shortest round-trip digits, exponent form outside [1e-6, 1e21)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(float(x))).normalize().as_tuple()
    digits = "".join(map(str, digits))
    k, n = len(digits), len(digits) + exponent
    prefix = "-" if sign else ""
    if k <= n <= 21:
        return prefix + digits + "0" * (n - k)
    if 0 < n <= 21:
        return prefix + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return prefix + "0." + "0" * (-n) + digits
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{prefix}{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"


def js_to_string(v: Any) -> str:
    kind = js_type(v)
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true" if v else "false"
    if kind == "number":
        return js_number_to_string(float(v))
    if kind == "string":
        return v
    if isinstance(v, list):
        return ",".join("" if e is None else js_to_string(e) for e in v)
    return "[object Object]"


def js_to_primitive(v: Any) -> Any:
    return js_to_string(v) if js_type(v) == "object" else v


def js_truthy_raw(v: Any) -> bool:
    """Plain JS truthiness (`!b` in json-logic-js's "in"): objects and arrays are truthy."""
    if v is None or v is False:
        return False
    if js_type(v) == "number":
        return not (v == 0 or math.isnan(v))
    if isinstance(v, str):
        return v != ""
    return True


def js_strict_eq(a: Any, b: Any) -> bool:
    ka, kb = js_type(a), js_type(b)
    if ka != kb:
        return False
    if ka == "object":
        return a is b
    if ka == "number":
        return float(a) == float(b)
    return a == b


def js_loose_eq(a: Any, b: Any) -> bool:
    ka, kb = js_type(a), js_type(b)
    if ka == "null" or kb == "null":
        return ka == kb
    if ka == kb:
        return js_strict_eq(a, b)
    if ka == "boolean":
        return js_loose_eq(js_to_number(a), b)
    if kb == "boolean":
        return js_loose_eq(a, js_to_number(b))
    if {ka, kb} == {"number", "string"}:
        return js_to_number(a) == js_to_number(b)
    if ka == "object" and kb != "object":
        return js_loose_eq(js_to_primitive(a), b)
    if kb == "object" and ka != "object":
        return js_loose_eq(a, js_to_primitive(b))
    return False


def js_less(a: Any, b: Any, or_equal: bool = False) -> bool:
    pa_, pb_ = js_to_primitive(a), js_to_primitive(b)
    if isinstance(pa_, str) and isinstance(pb_, str):
        return pa_ < pb_ or (or_equal and pa_ == pb_)
    na, nb = js_to_number(pa_), js_to_number(pb_)
    if math.isnan(na) or math.isnan(nb):
        return False
    return na < nb or (or_equal and na == nb)


def js_divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return NAN
        return math.copysign(math.inf, a) * math.copysign(1, b)
    return a / b


def js_remainder(a: float, b: float) -> float:
    if b == 0 or math.isnan(a) or math.isnan(b) or math.isinf(a):
        return NAN
    return math.fmod(a, b)


def js_to_integer(x: float) -> float:
    return 0.0 if math.isnan(x) else (x if math.isinf(x) else float(math.trunc(x)))


def js_substr(source: str, start: float, length: Any = UNDEFINED) -> str:
    size = len(source)
    begin = js_to_integer(start)
    begin = max(size + begin, 0) if begin < 0 else min(begin, size)
    take = size if length is UNDEFINED else js_to_integer(js_to_number(length))
    take = min(max(take, 0), size - begin)
    return source[int(begin):int(begin + take)]


def js_var(data: Any, *args: Any) -> Any:
    """json-logic-js var: default only for undefined; copies so no two reads share identity."""
    path = args[0] if args else None
    not_found = args[1] if len(args) > 1 else None
    if path is None or path == "" or path == []:
        return copy.deepcopy(data)
    for prop in js_to_string(path).split("."):
        if data is None:
            return not_found
        if isinstance(data, dict):
            data = data.get(prop, UNDEFINED)
        elif isinstance(data, list) and re.fullmatch(r"0|[1-9][0-9]*", prop) and int(prop) < len(data):
            data = data[int(prop)]
        else:
            data = UNDEFINED
        if data is UNDEFINED:
            return not_found
    return copy.deepcopy(data)


def _ops_substr(data: Any, source: Any = None, start: Any = None, *rest: Any) -> str:
    # json-logic-js: a negative length cuts from the end of String(source).substr(start).
    text = js_to_string(source)
    if rest and js_less(rest[0], 0):
        temp = js_substr(text, js_to_number(start))
        return js_substr(temp, 0, len(temp) + js_to_number(rest[0]))
    return js_substr(text, js_to_number(start), rest[0] if rest else UNDEFINED)


def _ops_in(data: Any, needle: Any = None, haystack: Any = None, *_: Any) -> bool:
    if not js_truthy_raw(haystack):
        return False
    if isinstance(haystack, str):
        return js_to_string(needle) in haystack
    if isinstance(haystack, list):
        return any(js_strict_eq(needle, item) for item in haystack)
    return False


def _ops_compare(or_equal: bool, chained: bool, flip: bool):
    def op(data: Any, *args: Any) -> bool:
        a, b = args[0] if args else None, args[1] if len(args) > 1 else None
        if flip:
            return js_less(b, a, or_equal)
        if chained and len(args) > 2:
            return js_less(a, b, or_equal) and js_less(b, args[2], or_equal)
        return js_less(a, b, or_equal)

    return op


def _ops_minmax(pick):
    def op(data: Any, *args: Any) -> float:
        numbers = [js_to_number(a) for a in args]
        if not numbers:
            return math.inf if pick is min else -math.inf
        return NAN if any(math.isnan(n) for n in numbers) else float(pick(numbers))

    return op


def _ops_multiply(data: Any, first: Any = None, *rest: Any) -> float:
    product = js_parse_float(first)
    for item in rest:
        product *= js_parse_float(item)
    return product


# Each replacement fixes a documented panzi-vs-json-logic-js difference (see PANZI_DIFFERS below).
JS_OPERATIONS = dict(panzi_builtins.BUILTINS)
JS_OPERATIONS.update({
    "var": js_var,
    "==": lambda data, a=None, b=None, *_: js_loose_eq(a, b),
    "!=": lambda data, a=None, b=None, *_: not js_loose_eq(a, b),
    "===": lambda data, a=None, b=None, *_: js_strict_eq(a, b),
    "!==": lambda data, a=None, b=None, *_: not js_strict_eq(a, b),
    "<": _ops_compare(False, True, False),
    "<=": _ops_compare(True, True, False),
    ">": _ops_compare(False, False, True),
    ">=": _ops_compare(True, False, True),
    "+": lambda data, *args: sum((js_parse_float(a) for a in args), 0.0),
    "*": _ops_multiply,
    "-": lambda data, a=None, *rest: -js_to_number(a) if not rest else js_to_number(a) - js_to_number(rest[0]),
    "/": lambda data, a=None, b=None, *_: js_divide(js_to_number(a), js_to_number(b)),
    "%": lambda data, a=None, b=None, *_: js_remainder(js_to_number(a), js_to_number(b)),
    "min": _ops_minmax(min),
    "max": _ops_minmax(max),
    "cat": lambda data, *args: "".join("" if a is None else js_to_string(a) for a in args),
    "in": _ops_in,
    "substr": _ops_substr,
})


def reference(rule: Any, datum: Any) -> Any:
    return panzi_apply(rule, datum, JS_OPERATIONS)


# (rule, data, what json-logic-js returns): raw panzi returns something else for each.
PANZI_DIFFERS = [
    ({"==": [None, 0]}, {}, False),  # null == 0 is false in JS
    ({"===": [1, True]}, {}, False),  # Python's 1 == True
    ({"<": [None, "z"]}, {}, False),  # panzi compares "null" < "z" as strings
    ({">": [3, 2, 5]}, {}, True),  # JS > ignores a third argument
    ({"+": [None, 1]}, {}, NAN),  # json-logic-js + uses parseFloat: parseFloat(null) is NaN
    ({"-": ["", 1]}, {}, -1.0),  # Number("") is 0
    ({"%": [-7, 2]}, {}, -1.0),  # JS remainder takes the dividend's sign
    ({"max": [True, 0]}, {}, 1.0),  # panzi returns True
    ({"cat": ["a", None, 0.5]}, {}, "a0.5"),  # Array.join drops null
    ({"cat": [1e-7]}, {}, "1e-7"),  # Number::toString exponent format
    ({"in": [1, [True]]}, {}, False),  # indexOf uses ===
    ({"in": ["", ""]}, {}, False),  # json-logic-js: if (!b) return false
    ({"substr": ["abc", 1, None]}, {}, ""),  # substr(1, null) has length 0
    ({"var": ["a", 1]}, {"a": None}, None),  # the default is only for undefined
]


def same(got: Any, expected: Any) -> bool:
    """JSON equality a user expects: 1 == 1.0, but True != 1; NaN matches NaN."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(got) is type(expected) and got == expected
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return got == expected or (math.isnan(got) and math.isnan(expected))
    if isinstance(expected, list) and isinstance(got, list):
        return len(got) == len(expected) and all(same(g, e) for g, e in zip(got, expected))
    if isinstance(expected, dict) and isinstance(got, dict):
        return got.keys() == expected.keys() and all(same(got[k], expected[k]) for k in got)
    return type(got) is type(expected) and got == expected


@pytest.mark.parametrize(("rule", "data", "expected"), PANZI_DIFFERS, ids=lambda v: json.dumps(v)[:40])
def test_reference_patches_a_real_panzi_difference(rule, data, expected):
    assert not same(panzi_apply(rule, data), expected)
    assert same(reference(rule, data), expected)


def test_reference_divides_by_zero_like_javascript_where_panzi_raises():
    with pytest.raises(ZeroDivisionError):
        panzi_apply({"/": [1, 0]}, {})
    assert reference({"/": [1, 0]}, {}) == math.inf


def test_reference_number_format_matches_javascript():
    cases = {0.1 + 0.2: "0.30000000000000004", 1e21: "1e+21", 123e18: "123000000000000000000",
             2.5e-6: "0.0000025", -1.5e-7: "-1.5e-7", 100.0: "100", 0.5: "0.5"}
    assert {x: js_number_to_string(x) for x in cases} == cases


# ----------------------------------------------------------------------------------------------
# Profile-shaped rows and the typed DuckDB table they become
# ----------------------------------------------------------------------------------------------

COLUMNS = {"i1": "BIGINT", "f1": "DOUBLE", "s1": "VARCHAR", "s2": "VARCHAR", "b1": "BOOLEAN",
           "tier.handle": "VARCHAR", "tags": "VARCHAR[]"}
SCHEMA = pa.schema([("id", pa.int64()), ("i1", pa.int64()), ("f1", pa.float64()), ("s1", pa.string()),
                    ("s2", pa.string()), ("b1", pa.bool_()), ("tier.handle", pa.string()),
                    ("tags", pa.list_(pa.string())), ("attributes", pa.string())])
VARIABLES = Variables.from_columns(COLUMNS, json_columns=["attributes"])

STRINGS = ["", "0", "1", "2", "2.5", "-3", " 4 ", "abc", "gold", "Gold", "1e2", "12abc", "true", "null",
           "a,b", "x'y", "back\\slash", "é", ".5", "5.", "0x1A", "Infinity", "  ", "[object Object]"]
FLOATS = [-2.5, -1.0, 0.0, 0.5, 1.0, 2.5, 3.75, 100.125, 1e-7, 2.5e-6, 0.1, 1e21]

ints = st.integers(-3, 12)
floats = st.sampled_from(FLOATS)
strings = st.sampled_from(STRINGS)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, strings)
scalar_lists = st.lists(scalars, max_size=3)
attributes = st.fixed_dictionaries({}, optional={
    "n": scalars, "s": strings, "flag": st.one_of(st.booleans(), scalars),
    "list": st.one_of(st.none(), scalar_lists, st.lists(scalar_lists, max_size=2)),
    "obj": st.one_of(st.fixed_dictionaries({}, optional={"k": scalars}), st.none(), ints),
    "items": st.lists(st.fixed_dictionaries({"qty": ints, "sku": strings}), max_size=3),
})
rows = st.fixed_dictionaries({
    "i1": st.none() | ints, "f1": st.none() | floats, "s1": st.none() | strings, "s2": st.none() | strings,
    "b1": st.none() | st.booleans(), "tier.handle": st.none() | st.sampled_from(["gold", "silver", ""]),
    "tags": st.none() | st.lists(st.none() | strings, max_size=3),
    "attributes": st.none() | attributes,
})

# Fixed rows every example runs over: nulls, zeros, empties, numeric strings, nested JSON.
EDGE_ROWS = [
    {k: None for k in COLUMNS} | {"attributes": None},
    {"i1": 0, "f1": 0.0, "s1": "", "s2": "0", "b1": False, "tier.handle": "", "tags": [], "attributes": {}},
    {"i1": 1, "f1": 1.0, "s1": "1", "s2": "1.0", "b1": True, "tier.handle": "gold", "tags": ["gold"],
     "attributes": {"n": 1, "s": "1", "flag": True, "list": [1], "obj": {"k": 1}, "items": [{"qty": 1, "sku": "a"}]}},
    {"i1": -3, "f1": -2.5, "s1": "abc", "s2": " 4 ", "b1": None, "tier.handle": "silver", "tags": ["a,b", None],
     "attributes": {"n": "abc", "s": "", "flag": None, "list": [], "obj": None, "items": []}},
    {"i1": 12, "f1": 100.125, "s1": "12abc", "s2": "1e2", "b1": True, "tier.handle": None, "tags": ["", "0"],
     "attributes": {"n": 2.5, "s": "true", "flag": "0", "list": [None, "x'y", [1, 2]], "obj": 3,
                    "items": [{"qty": 2, "sku": "b"}, {"qty": -1, "sku": "0"}]}},
    {"i1": 2, "f1": 0.1, "s1": "Infinity", "s2": "0x1A", "b1": False, "tier.handle": "gold", "tags": None,
     "attributes": {"n": None, "s": "é", "flag": 0, "list": [[], [[3]]], "obj": {}, "items": [{"qty": 0, "sku": ""}]}},
    {"i1": 5, "f1": 1e21, "s1": "back\\slash", "s2": "", "b1": None, "tier.handle": "", "tags": ["x'y"],
     "attributes": {"n": False, "s": "5.", "flag": "", "list": [True, False], "obj": {"k": None}}},
]


def to_datum(row: dict) -> dict:
    """The row as JsonLogic data: NULL columns are absent (undefined), dotted paths nest."""
    datum: dict = {}
    for path, value in row.items():
        if value is None:
            continue
        head, _, tail = path.partition(".")
        if tail:
            datum.setdefault(head, {})[tail] = value
        else:
            datum[head] = value
    return datum


def to_arrow(batch: list[dict]) -> pa.Table:
    columns = {name: [row.get(name) for row in batch] for name in COLUMNS}
    columns["id"] = list(range(len(batch)))
    columns["attributes"] = [None if r["attributes"] is None else json.dumps(r["attributes"]) for r in batch]
    return pa.Table.from_pydict(columns, schema=SCHEMA)


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def decode_typed(value: Any, sql_type: str) -> Any:
    """compile_rule's typed value back to JSON-ish Python (JSON-typed parts arrive as text)."""
    if value is None:
        return None
    if sql_type == "JSON":
        return json.loads(value)
    if sql_type.endswith("[]"):
        return [decode_typed(v, sql_type[:-2]) for v in value]
    return value


def run_batch(con: duckdb.DuckDBPyConnection, rule: Any, batch: list[dict]) -> list[tuple]:
    """One query over the whole batch: typed value, JSON value and truthiness per row."""
    rule = json.dumps(rule)  # JSON text: a bare Python str would be read as JSON text anyway
    typed = compile_value(rule, VARIABLES)
    con.register("raw_profiles", to_arrow(batch))
    query = f"""
        SELECT {typed.sql} AS typed_value, {compile_json(rule, VARIABLES)} AS json_value,
               {compile_condition(rule, VARIABLES)} AS condition
        FROM (SELECT * REPLACE (CAST(attributes AS JSON) AS attributes) FROM raw_profiles)
        ORDER BY id"""
    return [(typed.sql_type, decode_typed(t, typed.sql_type), j, c) for t, j, c in con.execute(query).fetchall()]


def check_rule_on_rows(con, rule: Any, batch: list[dict]) -> None:
    results = run_batch(con, rule, batch)
    rule = json.loads(json.dumps(rule))
    assert len(results) == len(batch)
    for row, (sql_type, typed, json_text, condition) in zip(batch, results):
        expected = reference(rule, to_datum(row))
        got_json = None if json_text is None else json.loads(json_text)
        context = f"rule={json.dumps(rule)} row={row} expected={expected!r}"
        assert same(typed, expected), f"compile_rule gave {typed!r}; {context}"
        assert same(got_json, expected), f"compile_json gave {got_json!r}; {context}"
        assert condition is panzi_builtins.to_bool(expected), f"compile_condition gave {condition}; {context}"


# ----------------------------------------------------------------------------------------------
# Rule generator
# ----------------------------------------------------------------------------------------------

ROW_PATHS = ["i1", "f1", "s1", "s2", "b1", "tier.handle", "tags", "tags.0", "tags.1", "attributes",
             "attributes.n", "attributes.s", "attributes.flag", "attributes.list", "attributes.list.0",
             "attributes.obj", "attributes.obj.k", "attributes.items", "attributes.items.0.qty",
             "nope", "nope.deeper", "attributes.nope"]
LIST_PATHS = ["tags", "attributes.list", "attributes.items", "attributes.list.0", "nope"]
ITEM_PATHS = ["", "qty", "sku", "nope"]
REDUCE_PATHS = ["current", "accumulator", "current.qty", "current.sku"]

literals = st.one_of(st.none(), st.booleans(), ints, floats, strings)


def var_of(paths: list[str]) -> st.SearchStrategy:
    path = st.sampled_from(paths)
    return st.one_of(
        path.map(lambda p: {"var": p}),
        st.tuples(path, literals).map(lambda t: {"var": [t[0], t[1]]}),
    )


def operations(children: st.SearchStrategy, lists: st.SearchStrategy, item_rules, reduce_rules):
    two = st.tuples(children, children).map(list)
    some = lambda low, high: st.lists(children, min_size=low, max_size=high)  # noqa: E731
    named = lambda names, args: st.tuples(st.sampled_from(names), args).map(lambda t: {t[0]: t[1]})  # noqa: E731
    return st.one_of(
        named(["==", "===", "!=", "!==", "<", ">", "<=", ">="], two),
        named(["<", "<="], st.tuples(children, children, children).map(list)),
        named(["and", "or"], some(1, 3)),
        named(["!", "!!"], children.map(lambda c: [c])),
        named(["if"], some(0, 5)),
        named(["+", "min", "max", "cat"], some(1, 3)),
        named(["*"], some(2, 3)),
        named(["-"], some(1, 2)),
        named(["/", "%"], two),
        named(["in"], st.one_of(two, st.tuples(children, lists).map(list))),
        named(["substr"], st.tuples(children, ints.map(lambda i: i - 5)).map(list)),
        named(["substr"], st.tuples(children, ints.map(lambda i: i - 5), st.one_of(ints.map(lambda i: i - 6), st.none()))
              .map(list)),
        named(["merge"], st.lists(st.one_of(children, lists), max_size=3)),
        named(["map", "filter", "all", "some", "none"], st.tuples(lists, item_rules).map(list)),
        named(["reduce"], st.tuples(lists, reduce_rules, literals).map(list)),
        named(["missing"], st.lists(st.sampled_from(ROW_PATHS[:12]), max_size=3)),
        named(["missing_some"], st.tuples(st.integers(0, 3), st.lists(st.sampled_from(ROW_PATHS[:12]), max_size=3))
              .map(list)),
        st.sampled_from(["s1", "i1", "attributes.n", "nope", "tier.handle"]).map(
            lambda p: {"var": {"cat": [p[:-1], p[-1:]]}}),
    )


def rules_over(leaf_vars: st.SearchStrategy, max_leaves: int, lists: st.SearchStrategy,
               item_rules: st.SearchStrategy | None = None,
               reduce_rules: st.SearchStrategy | None = None) -> st.SearchStrategy:
    leaves = st.one_of(literals, leaf_vars, st.lists(literals, max_size=3))

    def extend(children: st.SearchStrategy) -> st.SearchStrategy:
        # Lambda bodies default to the same scope's rules (nested map/filter over items).
        return operations(children, lists, children if item_rules is None else item_rules,
                          children if reduce_rules is None else reduce_rules)

    return st.recursive(leaves, extend, max_leaves=max_leaves)


# Lambda bodies read the item ("" / "qty" / ...) or reduce's current/accumulator.
item_lists = st.one_of(st.lists(literals, max_size=3), var_of(["", "nope"]))
item_rules = rules_over(var_of(ITEM_PATHS), 4, item_lists)
reduce_rules = rules_over(var_of(REDUCE_PATHS), 4, st.lists(literals, max_size=3))
row_lists = st.one_of(var_of(LIST_PATHS), st.lists(literals, max_size=3))
row_rules = rules_over(var_of(ROW_PATHS), 7, row_lists, item_rules, reduce_rules)

EXAMPLES = 2000


def test_compiled_sql_agrees_with_reference_for_every_row(con):
    seen = {"examples": 0, "rows": 0}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(rule=row_rules, extra_rows=st.lists(rows, max_size=4))
    def agree(rule, extra_rows):
        batch = EDGE_ROWS + extra_rows
        check_rule_on_rows(con, rule, batch)
        seen["examples"] += 1
        seen["rows"] += len(batch)

    started = time.perf_counter()
    agree()
    print(f"\ndifferential: {seen['examples']} examples, {seen['rows']} rows, "
          f"{time.perf_counter() - started:.1f}s")
    assert seen["examples"] >= EXAMPLES
