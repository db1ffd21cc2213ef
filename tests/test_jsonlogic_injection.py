"""Rule text is data: hostile variable names and string literals compile to inert SQL.

Each hostile string must come back as the right answer, the query must stay one statement, and a
canary table must survive the query.
"""

from __future__ import annotations

import duckdb
import pytest

from pipeline.jsonlogic import Variables, compile_condition, compile_rule, evaluate

HOSTILE = [
    "x'; DROP TABLE canary; --",
    'x"; DROP TABLE canary; --',
    "x' OR '1'='1",
    "a -- trailing comment",
    "a /* unclosed comment",
    "a */ b",
    "back\\slash",
    "trailing backslash\\",
    "quote\\'escaped",
    "semi;colon",
    "new\nline",
    "$$dollar$$",
    "e'escape\\x41'",
    "unicode é 😀",
    "slash/and~tilde~1",
]
IDS = [repr(s)[:30] for s in HOSTILE]


@pytest.fixture
def con():
    connection = duckdb.connect()
    connection.execute("CREATE TABLE canary AS SELECT 42 AS alive")
    yield connection
    connection.close()


def run_one(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None):
    """Run a query that must be exactly one statement, then check the canary."""
    assert len(con.extract_statements(query)) == 1
    result = con.execute(query, params or []).fetchall()
    assert con.execute("SELECT alive FROM canary").fetchall() == [(42,)]
    return result


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_hostile_string_literal_compares_as_data(con, text):
    variables = Variables.from_columns({"name": "VARCHAR"})
    condition = compile_condition({"==": [{"var": "name"}, text]}, variables)
    rows = run_one(con, f"SELECT {condition} FROM (SELECT ? AS name)", [text])
    assert rows == [(True,)]


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_hostile_string_literal_is_returned_verbatim(con, text):
    value = compile_rule({"cat": [text, "!"]}, Variables.from_columns({}))
    assert run_one(con, f"SELECT {value}") == [(text + "!",)]


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_hostile_typed_column_name_reads_that_column(con, name):
    quoted = '"' + name.replace('"', '""') + '"'
    con.execute(f"CREATE TABLE profiles AS SELECT 7 AS {quoted}")
    value = compile_rule({"+": [{"var": name}, 1]}, Variables.from_columns({name: "INTEGER"}))
    assert run_one(con, f"SELECT {value} FROM profiles") == [(8.0,)]


@pytest.mark.parametrize("key", HOSTILE, ids=IDS)
def test_hostile_json_key_is_read_from_the_json_column(con, key):
    # A dot splits a JsonLogic path, so the key itself must not contain one.
    key = key.replace(".", "")
    con.execute("CREATE TABLE profiles AS SELECT json_object(?, 'found') AS attributes", [key])
    variables = Variables.from_columns({}, json_columns=["attributes"])
    value = compile_rule({"var": f"attributes.{key}"}, variables)
    assert run_one(con, f"SELECT {value} FROM profiles") == [('"found"',)]


@pytest.mark.parametrize("name", HOSTILE, ids=IDS)
def test_hostile_unknown_variable_is_null(con, name):
    condition = compile_condition({"==": [{"var": name}, None]}, Variables.from_columns({"x": "INTEGER"}))
    assert run_one(con, f"SELECT {condition} FROM (SELECT 1 AS x)") == [(True,)]


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_hostile_computed_path_is_a_lookup_not_sql(con, text):
    # var with a computed path: the path is a run-time string, matched against known names.
    variables = Variables.from_columns({"name": "VARCHAR"})
    value = compile_rule({"var": {"cat": ["na", "me", text]}}, variables)
    assert run_one(con, f"SELECT {value} FROM (SELECT 'v' AS name)") == [(None,)]


@pytest.mark.parametrize("text", HOSTILE, ids=IDS)
def test_hostile_values_in_evaluate_data_are_bound_not_pasted(text):
    rule = {"if": [{"in": [text, {"var": "tags"}]}, {"var": text.replace(".", "")}, "missing"]}
    data = {"tags": [text], text.replace(".", ""): text}
    assert evaluate(rule, data) == text


def test_hostile_alias_and_table_qualifier_are_quoted(con):
    con.execute('CREATE TABLE "p; DROP TABLE canary" AS SELECT 3 AS "col""umn"')
    variables = Variables.from_columns({"n": "INTEGER"}, aliases={"n": 'col"umn'}, table="p; DROP TABLE canary")
    value = compile_rule({"*": [{"var": "n"}, 2]}, variables)
    assert run_one(con, f'SELECT {value} FROM "p; DROP TABLE canary"') == [(6.0,)]
