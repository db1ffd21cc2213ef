"""`warehouse.duckdb`: a DuckDB file in the run folder with a view for every output.

The views read the run's Parquet and payload files where they are (no copy of the data:
seconds and gigabytes saved at 10M profiles), by absolute path, so the warehouse answers
the same from any working directory. A relative path would be looked up in the current
directory first and could silently read another run's files. A run folder that is moved
or copied gets fresh views with `omneo-bulk report --out NEW_PLACE`. See docs/outputs.md.

Which views exist follows the run's manifest: a view for each output the run wrote.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import os
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import duckdb

from pipeline import db
from pipeline.errors import QueryError, first_line
from pipeline.files import atomic_path
from pipeline.glossary import COLUMNS, PROVENANCE, TABLES
from pipeline.runfolder import validated_paths

FILE = "warehouse.duckdb"
DATASETS = ("profiles", "benefit_definitions", "benefits", "redemptions", "redemption_items", "returns", "transactions")
OUTPUTS = {
    "plan": "issuance/plan.parquet",
    "ledger": "reconciliation/ledger.parquet",
    "matches": "reconciliation/matches.parquet",
    "exceptions": "reconciliation/exceptions.parquet",
    "push_results": "push/results.parquet",
}
PAYLOAD_COLUMNS = "{method: 'VARCHAR', path: 'VARCHAR', idempotency_key: 'VARCHAR', body: 'JSON'}"
AREAS = ("inputs", "issuance", "reconciliation", "payloads", "push")


def build(run_dir: Path, outputs: list[str], target: Path | None = None) -> Path:
    """Write warehouse.duckdb (at `target`, default in run_dir) with views over `outputs`.

    `outputs` are paths relative to run_dir; a run stages the file and commits it.
    """
    final = target or run_dir / FILE
    listed = set(outputs)
    with atomic_path(final) as temporary:
        con = duckdb.connect(str(temporary))
        try:
            # One transaction: each view and comment committed alone costs a commit to disk
            # (0.16-0.23 s against 0.09 s for a run's some 200 statements).
            con.execute("BEGIN")
            _create_views(con, run_dir.resolve(), listed)
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        wal = temporary.with_name(temporary.name + ".wal")
        if wal.exists():  # nothing left to replay after a checkpoint; never ship a stray log
            wal.unlink()
    return final


def _create_views(con: duckdb.DuckDBPyConnection, run_dir: Path, listed: set[str]) -> None:
    def at(relative: str | list[str]) -> str:
        if isinstance(relative, list):
            return db.path_literal([str(run_dir / r) for r in relative])
        return db.path_literal(str(run_dir / relative))

    views: dict[str, str] = {}
    for name in DATASETS:
        # One file, or the Spark engine's folder of parts: one view either way.
        parts = validated_paths(listed, name)
        if parts:
            views[name] = f"SELECT * FROM read_parquet({at(parts)})"
    rejects = sorted(path for path in listed if path.startswith("rejects/") and path.endswith(".parquet"))
    if rejects:
        views["rejects"] = f"SELECT * FROM read_parquet({at(rejects)}) ORDER BY dataset, source_file, source_row"
    for name, path in OUTPUTS.items():
        if path in listed:
            views[name] = f"SELECT * FROM read_parquet({at(path)})"
    payloads = sorted(path for path in listed if path.startswith("payloads/") and path.endswith(".ndjson"))
    if payloads:
        views["payloads"] = (
            "SELECT split_part(file, '/', 2) AS kind, file, method, path, idempotency_key, body FROM ("
            "SELECT regexp_extract(filename, '(payloads/[^/]+/[^/]+)$', 1) AS file, * EXCLUDE (filename) "
            f"FROM read_ndjson({at(payloads)}, filename = true, columns = {PAYLOAD_COLUMNS}))"
        )
    for name, select in views.items():
        con.execute(f"CREATE VIEW {db.quote(name)} AS {select}")
    con.execute(f"CREATE VIEW summary AS {summary_sql(set(views))}")
    _comment(con, [*views, "summary"])


def summary_sql(views: set[str]) -> str:
    """The summary view's SELECT: the blocks of summary.sql whose view exists, plus inputs."""
    blocks = []
    present = [name for name in DATASETS if name in views]
    for name in present:
        blocks.append(f"SELECT 'inputs', {db.literal(name + '_accepted')}, count(*) FROM {db.quote(name)}")
    if present and "rejects" in views:
        # Every dataset's rejected rows in one read of the rejects, 0 for a dataset with none.
        names = ", ".join(f"({db.literal(name)})" for name in present)
        blocks.append(
            "SELECT 'inputs', d.name || '_rejected', "
            "count(DISTINCT CASE WHEN r.dataset IS NOT NULL THEN (r.source_file, r.source_row) END) "
            f"FROM (VALUES {names}) AS d(name) LEFT JOIN rejects r ON r.dataset = d.name GROUP BY d.name"
        )
    for needs, block in db.sql_parts("summary").items():
        if needs in views:
            blocks.append(block)
    if not blocks:
        return "SELECT NULL::VARCHAR AS area, NULL::VARCHAR AS metric, NULL::BIGINT AS value WHERE false"
    union = "\nUNION ALL ".join(f"SELECT * FROM ({block})" for block in blocks)
    order = ", ".join(f"{db.literal(area)}" for area in AREAS)
    return (
        f"SELECT col0 AS area, col1 AS metric, col2::BIGINT AS value FROM ({union}) AS t(col0, col1, col2) "
        f"ORDER BY list_position([{order}], area), metric"
    )


def _comment(con: duckdb.DuckDBPyConnection, views: list[str]) -> None:
    for view in views:
        con.execute(f"COMMENT ON VIEW {db.quote(view)} IS {db.literal(TABLES[view])}")
        notes = {**PROVENANCE, **COLUMNS.get(view, {})}
        for (column,) in db.rows(con, f"SELECT column_name FROM duckdb_columns() WHERE table_name = {db.literal(view)}"):
            if column in notes:
                con.execute(f"COMMENT ON COLUMN {db.quote(view)}.{db.quote(column)} IS {db.literal(notes[column])}")


# Reading --------------------------------------------------------------------------------


def connect(run_dir: Path) -> duckdb.DuckDBPyConnection:
    """The run's warehouse, read-only, able to read files in the run folder and nothing else.

    DuckDB's own access controls do it: external access off except for the run folder
    (`allowed_directories`), no extension installed or loaded, and the configuration locked
    so no statement can lift any of it. See docs/outputs.md, "What a query can do".
    """
    path = run_dir / FILE
    if not path.is_file():
        raise QueryError(f"{path}: no warehouse here (run `omneo-bulk run` or `omneo-bulk report --out {run_dir}` first)")
    try:
        con = duckdb.connect(str(path), read_only=True, config=CLOSED_AT_START)
    except duckdb.Error as error:
        raise QueryError(f"{path}: cannot open the warehouse ({first_line(error)})") from None
    try:
        _confine(con, run_dir)
    except duckdb.Error as error:
        con.close()
        raise QueryError(f"{path}: cannot open the warehouse ({first_line(error)})") from None
    except BaseException:
        con.close()
        raise
    return con


# Set as the database opens, before any SQL; the lock in _confine keeps them.
CLOSED_AT_START = {
    "autoinstall_known_extensions": False,  # read_json('https://…') would fetch httpfs from the internet
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "python_enable_replacements": False,  # a name in the SQL never reads a Python variable
}


def _confine(con: duckdb.DuckDBPyConnection, run_dir: Path) -> None:
    """Allow the run folder, turn external access off, then lock: in that order, as DuckDB requires.

    DuckDB refuses `allowed_directories` once external access is off, and every SET once the
    configuration is locked; it also refuses `allowed_directories` before the database has
    started, so these three cannot go in CLOSED_AT_START.
    """
    folder = os.path.join(str(run_dir.resolve()), "")  # the trailing / keeps run-other/ out
    # The views name the run's files as db.duckdb_path spells them (`[`, `*` escaped as
    # `[[]`, `[*]`), and DuckDB checks that spelling: a folder named `night [1]` is allowed
    # under both. The escaped prefix matches, as a pattern, only that same folder.
    spelled = os.path.join(db.duckdb_path(run_dir.resolve()), "")
    allowed_dirs = [folder] if spelled == folder else [folder, spelled]
    if db.scalar(con, "SELECT current_setting('lock_configuration')"):
        # DuckDB's Python client shares one database per file among its connections, settings
        # and lock included: an earlier connect() in this process locked it. Use it only if
        # it is this very sandbox.
        allowed = db.scalar(con, "SELECT current_setting('allowed_directories')")
        external = db.scalar(con, "SELECT current_setting('enable_external_access')")
        if external or not allowed or not all(str(entry).startswith(tuple(allowed_dirs)) for entry in allowed):
            raise QueryError(f"{run_dir / FILE}: already open in this process with other settings")
        return
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB's bar would print into --format csv/json output (see db.connect); after the lock
    # a query could no longer turn it off itself.
    con.execute("SET enable_progress_bar = false")
    con.execute("SET allowed_directories = ?", [allowed_dirs])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


TABLE_ROWS = 1000  # a terminal table stops here; csv and json stream every row
BATCH = 10_000


def write_result(con: duckdb.DuckDBPyConnection, sql: str, output_format: str, stream: TextIO) -> int:
    """Run one read-only SELECT and write its rows to `stream` as a table, CSV or a JSON array; return rows.

    Anything else is refused before it runs (see `_one_select`). Any DuckDB error (syntax, unknown
    view, a file outside the run folder, a bad value met while streaming) becomes one QueryError
    line; the statement itself is not echoed.
    """
    statement = _one_select(con, sql)
    try:
        result = con.execute(statement)
        columns = [d[0] for d in result.description]
        if output_format == "table":
            return _write_table(result, columns, stream)
        # A JSON column arrives as text: written as the value it holds, not as a string of it.
        json_columns = [str(d[1]).upper() == "JSON" for d in result.description]
        writer = _write_csv if output_format == "csv" else _write_json
        return writer(result, columns, json_columns, stream)
    except duckdb.PermissionException as error:  # a path outside the run folder
        failure = QueryError(f"query failed: refused, a file outside the run folder: {first_line(error)}")
        failure.hint = ("query reads only files inside its run folder; a run folder moved or copied since "
                        "its run reads its old place: rebuild its views with omneo-bulk report --out RUN")
        raise failure from None
    except duckdb.Error as error:
        message = first_line(error)
        if "the configuration has been locked" in message:  # a SELECT of a function that changes a setting
            raise QueryError(f"query failed: refused, a setting: {message}") from None
        failure = QueryError(f"query failed: {message}")
        if "No files found" in str(error):
            failure.hint = "the run folder was moved or changed: rebuild its views with omneo-bulk report --out RUN"
        raise failure from None


# Query nodes that only read. DuckDB 2.0 also parses COPY, INSERT, UPDATE, DELETE and MERGE as
# the body of a WITH clause, and the statement is still a SELECT: `WITH x AS (COPY … TO …)
# SELECT 1` writes the file. Any node not listed here, including one a later DuckDB adds, is refused.
READ_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "CTE_NODE", "RECURSIVE_CTE_NODE"})
# Table functions that run SQL given as text, out of sight of the parse tree and of DuckDB's
# planner: json_execute_serialized_sql() runs a serialized statement, a COPY in its WITH
# included, as the query runs; query() parses its text only when bound, so it could hide the
# first. tests/test_query_sandbox.py lists every function of this DuckDB that takes SQL text.
RUNS_SQL_TEXT = frozenset({"query", "json_execute_serialized_sql"})


def _one_select(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.Statement:
    """The one read-only SELECT in `sql`, parsed by DuckDB; anything else is refused before it runs.

    The file controls of `connect` let DuckDB write inside the run folder (allowed directories
    are for reading and writing alike), so a write is stopped here: by the statement's type, by
    the kind of every query node in DuckDB's parse tree of it (json_serialize_sql), and by the
    functions it calls. What then runs is that very parsed statement, not the text again.
    """
    try:
        statements = con.extract_statements(sql)
        kinds = [statement.type.name for statement in statements]
    except duckdb.Error as error:
        raise QueryError(f"query failed: {first_line(error)}") from None
    except ValueError:  # a statement type this duckdb module has no name for (2.0.1: UPDATE EXTENSIONS)
        raise _refused("not a SELECT") from None
    if not statements:
        raise QueryError("query failed: no SQL statement given")
    if len(statements) > 1:
        raise _refused(f"{len(statements)} statements")
    [statement] = statements
    if kinds != ["SELECT"]:
        if kinds == ["MULTI"]:
            raise _refused("several statements in one, as a PIVOT without IN (…) is")
        # Named as written: DuckDB files INSTALL under LOAD, CHECKPOINT under CALL, USE under SET.
        word = (statement.query.split(None, 1) or [kinds[0]])[0].upper()
        word = word if word.isalpha() and word != "WITH" else kinds[0]
        vowel = word[0] in "AEIO" or (word[0] == "U" and not word.startswith("US"))  # an UPDATE, a USE
        raise _refused(f"{'an' if vowel else 'a'} {word} statement")
    tree = json.loads(db.scalar(con, "SELECT json_serialize_sql(?)", [statement.query]))
    if tree.get("error"):
        raise _refused(tree.get("error_message") or "DuckDB cannot read it as a SELECT")
    nodes, functions = _parts(tree)
    if writes := sorted(nodes - READ_NODES):
        names = ", ".join(name.removesuffix("_NODE").removesuffix("_QUERY") for name in writes)
        raise _refused(f"a {names} inside WITH")
    if hidden := sorted(functions & RUNS_SQL_TEXT):
        raise _refused(f"{hidden[0]}() runs SQL given as text")
    return statement


def _parts(tree: object) -> tuple[set[str], set[str]]:
    """The query node types (only those end in _NODE) and function names in a json_serialize_sql tree."""
    nodes: set[str] = set()
    functions: set[str] = set()
    pending = [tree]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if str(item.get("type", "")).endswith("_NODE"):
                nodes.add(item["type"])
            if isinstance(item.get("function_name"), str):
                functions.add(item["function_name"].lower())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return nodes, functions


def _refused(what: str) -> QueryError:
    # One line, like every query error: what was refused, and what query does instead.
    return QueryError(f"query failed: refused, {what}: query runs one SELECT (DESCRIBE, SHOW and SUMMARIZE "
                      "are SELECTs) and writes nothing")


def _batches(result: duckdb.DuckDBPyConnection) -> Iterator[list[tuple]]:
    while batch := result.fetchmany(BATCH):
        yield batch


def _write_table(result: duckdb.DuckDBPyConnection, columns: list[str], stream: TextIO) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    rows = result.fetchmany(TABLE_ROWS + 1)
    # Text, never markup: a value such as "[red]" or "[/]" is data and is shown as it is.
    table = Table(header_style="bold")
    for column in columns:
        table.add_column(Text(column))
    for row in rows[:TABLE_ROWS]:
        table.add_row(*(Text(_text(value)) for value in row))
    Console(file=stream, width=max(80, min(240, 24 * len(columns)))).print(table)
    if len(rows) > TABLE_ROWS:
        stream.write(f"(first {TABLE_ROWS} rows shown: add LIMIT, or use --format csv for every row)\n")
    return min(len(rows), TABLE_ROWS)


def _write_csv(result: duckdb.DuckDBPyConnection, columns: list[str], _json: list[bool], stream: TextIO) -> int:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for batch in _batches(result):
        writer.writerows([_text(value) for value in row] for row in batch)
        count += len(batch)
    return count


def _write_json(result: duckdb.DuckDBPyConnection, columns: list[str], json_columns: list[bool], stream: TextIO) -> int:
    count = 0
    stream.write("[")
    for batch in _batches(result):
        for row in batch:
            record = {
                name: (json.loads(value) if is_json and value is not None else _finite(value))
                for name, value, is_json in zip(columns, row, json_columns)
            }
            line = json.dumps(record, default=_json_value, ensure_ascii=False, allow_nan=False)
            stream.write(("," if count else "") + "\n" + line)
            count += 1
    stream.write("\n]\n" if count else "]\n")
    return count


def _finite(value: object) -> object:
    """NaN and ±Infinity have no JSON spelling: they are written as null (strict parsers, jq)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _text(value: object) -> str:
    """A value as one cell: empty for null, ISO for times, JSON for lists and structs."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=_json_value, ensure_ascii=False)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value)


def _json_value(value: object) -> object:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, timedelta):
        return _iso_duration(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def _iso_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    sign = "-" if seconds < 0 else ""
    days, rest = divmod(abs(seconds), 86400)
    return f"{sign}P{int(days)}DT{rest:g}S"
