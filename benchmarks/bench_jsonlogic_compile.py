"""Benchmark the JsonLogic compiler itself: SQL size and compile time against rule size, and evaluate().
Run: python benchmarks/bench_jsonlogic_compile.py [--rows 10000000] [--baseline af66094] [--no-record]

Deterministic random rules of depth 1..8 are compiled over typed columns and over the same
columns declared JSON (untyped). Each figure is also measured for a baseline compiler, the
single-file pipeline/jsonlogic.py of a git commit (by default the one issue 13 measured),
loaded side by side so before and after share one process and one machine state.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import duckdb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import pipeline.jsonlogic as current  # noqa: E402
from _results import machine, update_section  # noqa: E402
from bench_jsonlogic import COLUMNS, PROFILES_SQL, RULE  # noqa: E402
# The typed columns of the random rules; the untyped path declares the same names JSON.
from random_rules import TYPED, rule_of_depth  # noqa: E402

DEPTHS = range(1, 9)
RULES_PER_DEPTH = 12
SEED = 13

# The rule was 389 characters of or / if / in / chained <= over untyped JSON; the
# tests keep one of the same operators and size (the issue did not quote it).
_NESTED = json.loads((ROOT / "tests" / "data" / "nested_rule.json").read_text(encoding="utf-8"))
NESTED_RULE, NESTED_DATA = _NESTED["rule"], _NESTED["data"]



# ----------------------------------------------------------------------------------------------
# Random rules
# ----------------------------------------------------------------------------------------------


def random_rules() -> dict[int, list]:
    rng = random.Random(SEED)
    return {depth: [rule_of_depth(rng, depth) for _ in range(RULES_PER_DEPTH)] for depth in DEPTHS}


# ----------------------------------------------------------------------------------------------
# The baseline compiler, loaded from git next to the current one
# ----------------------------------------------------------------------------------------------


def load_baseline(commit: str) -> ModuleType | None:
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:pipeline/jsonlogic.py"],
                                capture_output=True, text=True, check=True).stdout
    except subprocess.CalledProcessError:
        print(f"baseline {commit}: no single-file pipeline/jsonlogic.py there; skipped")
        return None
    path = Path(tempfile.mkdtemp()) / "jsonlogic_baseline.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("jsonlogic_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["jsonlogic_baseline"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


def variables(jl: ModuleType, typed: bool):
    if typed:
        return jl.Variables.from_columns(TYPED)
    return jl.Variables.from_columns({}, json_columns=list(TYPED))


def empty_table(con: duckdb.DuckDBPyConnection, typed: bool) -> None:
    columns = ", ".join(f'"{name}" {kind if typed else "JSON"}' for name, kind in TYPED.items())
    con.execute(f"CREATE OR REPLACE TABLE t ({columns})")


def compile_once(jl: ModuleType, rule: object, vs, con: duckdb.DuckDBPyConnection) -> tuple[int, float, float]:
    """SQL chars, compile ms, and DuckDB planning ms (EXPLAIN over an empty table)."""
    text = json.dumps(rule)
    started = time.perf_counter()
    sql = jl.compile_condition(text, vs)
    compiled = time.perf_counter()
    con.execute(f"EXPLAIN SELECT count(*) FROM t WHERE {sql}").fetchall()
    planned = time.perf_counter()
    return len(sql), (compiled - started) * 1e3, (planned - compiled) * 1e3


def size_table(rules: dict[int, list], compilers: dict[str, ModuleType], budget_s: float) -> tuple[str, dict]:
    """Markdown rows per depth and path, and the largest SQL/rule ratio per compiler and path."""
    con = duckdb.connect()
    lines, worst = [], {}
    skipped: set[tuple[str, bool]] = set()
    for typed in (True, False):
        empty_table(con, typed)
        vs = {name: variables(jl, typed) for name, jl in compilers.items()}
        for depth, batch in rules.items():
            rule_chars = [len(json.dumps(r)) for r in batch]
            cells = [f"{'typed' if typed else 'untyped'}", str(depth), f"{statistics.median(rule_chars):,.0f}",
                     f"{max(rule_chars):,}"]
            for name, jl in compilers.items():
                if (name, typed) in skipped:
                    cells += ["—"] * 4
                    continue
                started = time.perf_counter()
                results = [compile_once(jl, r, vs[name], con) for r in batch]
                if time.perf_counter() - started > budget_s:
                    skipped.add((name, typed))  # deeper rules would take minutes
                ratios = [sql / chars for (sql, _, _), chars in zip(results, rule_chars)]
                key = (name, typed)
                worst[key] = max(worst.get(key, 0.0), *ratios)
                cells += [f"{statistics.median(r[0] for r in results):,.0f}", f"{max(ratios):,.1f}",
                          f"{statistics.median(r[1] for r in results):,.1f}",
                          f"{statistics.median(r[2] for r in results):,.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    return "\n".join(lines), worst


def suite_cases() -> list[tuple[str, object]]:
    suite = json.loads((ROOT / "tests" / "data" / "jsonlogic" / "tests.json").read_text(encoding="utf-8"))
    return [(json.dumps(rule), data) for rule, data, _ in (c for c in suite if not isinstance(c, str))]


def evaluate_figures(jl: ModuleType, repeat: int) -> dict:
    """evaluate() ms per call after a warm-up: every official case, then the nested rule."""
    jl.evaluate('{"==": [1, 1]}', {})  # the first call pays for the connection and imports
    cases = suite_cases()
    times, later = [], []
    for runs in (times, later):  # each rule's first call (compiled then), then its second
        for rule, data in cases:
            started = time.perf_counter()
            jl.evaluate(rule, data)
            runs.append((time.perf_counter() - started) * 1e3)
    nested = json.dumps(NESTED_RULE)
    first = time.perf_counter()
    value = jl.evaluate(nested, NESTED_DATA)
    first_ms = (time.perf_counter() - first) * 1e3
    again = []
    for i in range(repeat):
        data = dict(NESTED_DATA, visits=i)  # same rule, new datum each call
        started = time.perf_counter()
        jl.evaluate(nested, data)
        again.append((time.perf_counter() - started) * 1e3)
    times.sort()
    later.sort()
    return {"suite_total": sum(times), "suite_median": statistics.median(times),
            "suite_p90": times[int(0.9 * len(times))], "suite_max": times[-1], "cases": len(times),
            "later_median": statistics.median(later), "later_p90": later[int(0.9 * len(later))],
            "later_max": later[-1],
            "nested_first": first_ms, "nested_again": statistics.median(again), "nested_value": value}


def nested_sql(jl: ModuleType) -> tuple[int, float]:
    """SQL chars and compile ms of the nested rule as evaluate() compiles it (every path JSON)."""
    vs = jl.Variables.for_datum("__jsonlogic_datum")
    started = time.perf_counter()
    sql = jl.compile_json(json.dumps(NESTED_RULE), vs)
    return len(sql), (time.perf_counter() - started) * 1e3


def per_row(con: duckdb.DuckDBPyConnection, conditions: dict[str, str], rows: int, repeat: int,
            table: str) -> dict[str, tuple[float, int]]:
    """Median ns per row of `CREATE TABLE AS SELECT id ... WHERE <condition>`, compilers interleaved."""
    timings: dict[str, list[float]] = {name: [] for name in conditions}
    counts = {}
    for _ in range(repeat):
        for name, condition in conditions.items():
            started = time.perf_counter()
            con.execute(f"CREATE OR REPLACE TEMP TABLE eligible AS SELECT id FROM {table} WHERE {condition}")
            timings[name].append(time.perf_counter() - started)
            (counts[name],) = con.execute("SELECT count(*) FROM eligible").fetchone()
    if len(set(counts.values())) != 1:
        raise SystemExit(f"compilers disagree on {table}: {counts}")
    return {name: (statistics.median(t) / rows * 1e9, counts[name]) for name, t in timings.items()}


# The nested rule's variables as a JSON column of the bench profiles, so it reads real values.
ATTRIBUTES_SQL = """
CREATE OR REPLACE TABLE profiles_json AS
SELECT id, json_object(
    'tier', "tier.handle", 'spend', CASE WHEN id % 3 = 0 THEN CAST("aggregations.spend_12m" AS VARCHAR)
                                         ELSE to_json("aggregations.spend_12m") END,
    'tags', flattened_tags, 'age', age, 'senior', age > 60, 'limit', 40 + id % 30,
    'city', (['Perth', 'Sydney', 'Hobart'])[1 + id % 3], 'cities', ['Sydney', 'Darwin'],
    'visits', days_since_joined % 50, 'maxv', CAST(id % 40 AS VARCHAR), 'code', gender,
    'flag', is_deleted) AS attributes
FROM profiles
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="profiles for the typed ns/row figure")
    parser.add_argument("--json-rows", type=int, default=1_000_000, help="profiles for the untyped ns/row figure")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", default="af66094", help="git commit of the compiler to compare with, or 'none'")
    parser.add_argument("--budget", type=float, default=20.0,
                        help="seconds per depth after which the baseline stops compiling deeper rules")
    parser.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()

    compilers = {"after": current}
    baseline = load_baseline(args.baseline) if args.baseline != "none" else None
    if baseline is not None:
        compilers = {"before": baseline, "after": current}

    print("rule size vs SQL size vs compile time (medians over", RULES_PER_DEPTH, "rules per depth)")
    table, worst = size_table(random_rules(), compilers, args.budget)

    nested = {name: nested_sql(jl) for name, jl in compilers.items()}
    evaluation = {name: evaluate_figures(jl, args.repeat * 4) for name, jl in compilers.items()}
    for name, figures in evaluation.items():
        print(name, "nested SQL chars / compile ms", nested[name], "evaluate", figures)

    con = duckdb.connect()
    start = time.perf_counter()
    con.execute(PROFILES_SQL, [args.rows])
    print(f"generated {args.rows:,} profiles in {time.perf_counter() - start:.1f}s (not timed)")
    typed_vars = {name: jl.Variables.from_columns(COLUMNS, json_columns=["attributes"])
                  for name, jl in compilers.items()}
    typed_rows = per_row(con, {name: jl.compile_condition(RULE, typed_vars[name]) for name, jl in compilers.items()},
                         args.rows, args.repeat, "profiles")
    con.execute(f"DELETE FROM profiles WHERE id >= {args.json_rows}")
    con.execute(ATTRIBUTES_SQL)
    json_vars = {name: jl.Variables.from_columns({}, json_columns=["attributes"]) for name, jl in compilers.items()}
    prefixed = json.loads(json.dumps(NESTED_RULE).replace('{"var": "', '{"var": "attributes.'))
    json_rows = per_row(con, {name: jl.compile_condition(prefixed, json_vars[name]) for name, jl in compilers.items()},
                        min(args.rows, args.json_rows), max(1, args.repeat // 2), "profiles_json")
    print("typed rule ns/row", typed_rows, "nested untyped rule ns/row", json_rows)

    names = list(compilers)
    header = "| path | depth | rule chars (median) | rule chars (max) | " + " | ".join(
        f"{n}: SQL chars (median) | {n}: SQL/rule (max) | {n}: compile ms | {n}: DuckDB plan ms" for n in names) + " |"
    rule_line = "|---|---:|---:|---:|" + "---:|" * (4 * len(names))
    ratio = ", ".join(f"{n} {'typed' if t else 'untyped'} {worst[(n, t)]:,.1f}" for n in names for t in (True, False))
    rows = "\n".join(
        f"| {n} | {nested[n][0]:,} | {nested[n][1]:,.1f} | {e['suite_median']:.2f} / {e['suite_p90']:.2f} / "
        f"{e['suite_max']:.1f} / {e['suite_total'] / 1e3:.2f} s | {e['later_median']:.2f} / {e['later_p90']:.2f} / "
        f"{e['later_max']:.1f} | {e['nested_first']:,.1f} | {e['nested_again']:,.1f} "
        f"| {typed_rows[n][0]:.1f} | {json_rows[n][0]:,.0f} |"
        for n, e in evaluation.items())
    baseline_note = (f"`before` is `pipeline/jsonlogic.py` at commit {args.baseline}; `after` is this tree. "
                     if baseline is not None else "")
    body = f"""
Compiler output and speed: SQL size and compile time against rule size for deterministic random
rules (seed {SEED}, {RULES_PER_DEPTH} rules per depth; `or`, `and`, `if`, `in`, chained `<=`,
`<`, `==`, `!`, `+`, `cat` over six variables), compiled with `compile_condition` over typed
columns and over the same columns declared JSON (untyped); the DuckDB plan time is an `EXPLAIN`
of `SELECT count(*) FROM t WHERE <rule>` over an empty table. {baseline_note}A `—` means the
compiler took more than {args.budget:.0f} s for the previous depth and deeper rules were skipped.

{header}
{rule_line}
{table}

Largest SQL chars / rule chars over all depths: {ratio}.

The nested rule (`{json.dumps(NESTED_RULE)}`, {len(json.dumps(NESTED_RULE))} characters, the
operators and size of the issue's 389-character rule) as `evaluate` compiles it (every variable
JSON), `evaluate()` over the {evaluation[names[-1]]['cases']} official cases after one warm-up
call (median / p90 / max ms per call / total), first each rule's first call (which compiles it),
then each rule's second call (the compiled statement cached), and ns per row in a `WHERE` over generated
profiles: the ten-clause typed rule of `bench_jsonlogic.py` over {args.rows:,} rows (median of
{args.repeat}), and the nested rule over a JSON `attributes` column of {min(args.rows, args.json_rows):,} rows:

| compiler | nested SQL chars | nested compile ms | evaluate, official cases, first call | evaluate, official cases, second call | evaluate nested, first call ms | evaluate nested, later calls ms | typed rule ns/row | nested JSON rule ns/row |
|---|---:|---:|---|---|---:|---:|---:|---:|
{rows}

Machine: {machine()}; sqlglot {__import__('sqlglot').__version__}. Command: `python benchmarks/bench_jsonlogic_compile.py --rows {args.rows} --json-rows {args.json_rows} --repeat {args.repeat}`.
"""
    print(body)
    if not args.no_record:
        update_section("JsonLogic compiler: SQL size, compile time, evaluate", body)


if __name__ == "__main__":
    main()
