"""Benchmark a realistic eligibility rule: compiled to DuckDB SQL over N profiles vs panzi-json-logic row by row.
Run: python benchmarks/bench_jsonlogic.py [--rows 10000000] [--python-rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import duckdb
from json_logic import jsonLogic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.jsonlogic import Variables, compile_condition  # noqa: E402

# Ten clauses over typed columns, one dotted typed column, a list column and a JSON column.
RULE = {
    "and": [
        {"in": [{"var": "birth_month"}, [10, 11, 12]]},
        {"in": [{"var": "tier.handle"}, ["gold", "platinum"]]},
        {"==": [{"var": "attributes.comms.email_promo"}, True]},
        {">=": [{"var": "aggregations.spend_12m"}, 250]},
        {"in": ["vip", {"var": "flattened_tags"}]},
        {"<=": [{"var": "days_since_joined"}, 3000]},
        {"<=": [18, {"var": "age"}, 65]},
        {"!=": [{"var": "gender"}, "unknown"]},
        {"==": [{"var": "profile_type"}, "member"]},
        {"or": [{"!": {"var": "is_deleted"}}, {">": [{"var": "aggregations.spend_12m"}, 1000]}]},
    ]
}

COLUMNS = {
    "birth_month": "INTEGER",
    "tier.handle": "VARCHAR",
    "aggregations.spend_12m": "DOUBLE",
    "flattened_tags": "VARCHAR[]",
    "days_since_joined": "INTEGER",
    "age": "INTEGER",
    "gender": "VARCHAR",
    "profile_type": "VARCHAR",
    "is_deleted": "BOOLEAN",
}

# Deterministic pseudo-random profiles: hash(id * prime + salt) gives independent columns, ~2% NULLs where realistic.
PROFILES_SQL = """
CREATE OR REPLACE TABLE profiles AS
SELECT
    i AS id,
    CASE WHEN hash(i * 1000003 + 1) % 50 = 0 THEN NULL ELSE CAST(hash(i * 1000003 + 1) % 12 + 1 AS INTEGER) END AS birth_month,
    (['bronze', 'silver', 'gold', 'platinum'])[CAST(hash(i * 1000003 + 2) % 4 + 1 AS INTEGER)] AS "tier.handle",
    CAST(hash(i * 1000003 + 3) % 200000 AS DOUBLE) / 100 AS "aggregations.spend_12m",
    CASE hash(i * 1000003 + 4) % 4 WHEN 0 THEN ['vip', 'newsletter'] WHEN 1 THEN ['newsletter']
                        WHEN 2 THEN CAST([] AS VARCHAR[]) ELSE ['vip'] END AS flattened_tags,
    CAST(hash(i * 1000003 + 5) % 3650 AS INTEGER) AS days_since_joined,
    CASE WHEN hash(i * 1000003 + 6) % 40 = 0 THEN NULL ELSE CAST(14 + hash(i * 1000003 + 6) % 70 AS INTEGER) END AS age,
    (['female', 'male', 'unknown', 'other'])[CAST(hash(i * 1000003 + 7) % 4 + 1 AS INTEGER)] AS gender,
    (['member', 'staff', 'guest'])[CAST(hash(i * 1000003 + 8) % 3 + 1 AS INTEGER)] AS profile_type,
    hash(i * 1000003 + 11) % 20 = 0 AS is_deleted,
    CASE WHEN hash(i * 1000003 + 9) % 10 = 0 THEN CAST('{}' AS JSON)
         ELSE json_object('comms', json_object('email_promo', hash(i * 1000003 + 9) % 3 = 0, 'sms', hash(i * 1000003 + 10) % 2 = 0),
                          'nickname', 'n' || CAST(i % 1000 AS VARCHAR)) END AS attributes
FROM range(?) t(i)
"""


def build_table(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    con.execute(PROFILES_SQL, [rows])


def time_sql(con: duckdb.DuckDBPyConnection, condition: str, repeat: int) -> tuple[float, int]:
    """Median seconds to materialise the ids of eligible profiles (what issuance does)."""
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TEMP TABLE eligible AS SELECT id FROM profiles WHERE {condition}")
        timings.append(time.perf_counter() - start)
    (count,) = con.execute("SELECT count(*) FROM eligible").fetchone()
    return statistics.median(timings), count


def time_count(con: duckdb.DuckDBPyConnection, condition: str, repeat: int) -> float:
    """Median seconds for SELECT count(*) FILTER (WHERE rule): evaluation without materialising."""
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        con.execute(f"SELECT count(*) FILTER (WHERE {condition}) FROM profiles").fetchall()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def python_rows(con: duckdb.DuckDBPyConnection, rows: int) -> list[dict]:
    """The first `rows` profiles as the nested dicts a row-by-row evaluator would receive."""
    import json

    cursor = con.execute(f"SELECT * FROM profiles ORDER BY id LIMIT {int(rows)}")
    names = [d[0] for d in cursor.description]
    datums = []
    for record in cursor.fetchall():
        datum: dict = {}
        for name, value in zip(names, record):
            if value is None:
                continue
            if name == "attributes":
                value = json.loads(value)
            head, _, tail = name.partition(".")
            if tail:
                datum.setdefault(head, {})[tail] = value
            else:
                datum[head] = value
        datums.append(datum)
    return datums


def time_python(datums: list[dict]) -> tuple[float, int]:
    start = time.perf_counter()
    count = sum(1 for datum in datums if jsonLogic(RULE, datum))
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--python-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    con = duckdb.connect()
    variables = Variables.from_columns(COLUMNS, json_columns=["attributes"])
    condition = compile_condition(RULE, variables)

    start = time.perf_counter()
    build_table(con, args.rows)
    print(f"generated {args.rows:,} profiles in {time.perf_counter() - start:.1f}s (not timed below)")

    sql_seconds, sql_count = time_sql(con, condition, args.repeat)
    count_seconds = time_count(con, condition, args.repeat)
    datums = python_rows(con, min(args.python_rows, args.rows))
    py_seconds, py_count = time_python(datums)

    # Same rule, same rows: the SQL count over the Python sample must match the interpreter's.
    (sample_count,) = con.execute(
        f"SELECT count(*) FROM eligible WHERE id < {len(datums)}").fetchone()
    if sample_count != py_count:
        raise SystemExit(f"disagreement on the first {len(datums)} rows: SQL {sample_count}, Python {py_count}")

    sql_per_row = sql_seconds / args.rows
    py_per_row = py_seconds / len(datums)
    print(f"python {platform.python_version()}, duckdb {duckdb.__version__}")
    print(f"DuckDB compiled SQL: {args.rows:,} rows in {sql_seconds:.3f}s (median of {args.repeat}), "
          f"{sql_per_row * 1e9:.1f} ns/row, {sql_count:,} eligible")
    print(f"DuckDB count FILTER: {args.rows:,} rows in {count_seconds:.3f}s (median of {args.repeat}), "
          f"{count_seconds / args.rows * 1e9:.1f} ns/row")
    print(f"panzi-json-logic:    {len(datums):,} rows in {py_seconds:.3f}s, "
          f"{py_per_row * 1e9:.0f} ns/row, {py_count:,} eligible")
    print(f"per-row speed-up: {py_per_row / sql_per_row:,.0f}x (sample counts agree: {sample_count:,})")


if __name__ == "__main__":
    main()
