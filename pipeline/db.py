"""The one place DuckDB connections are made and configured.

Every stage gets its connection from `connect`, so limits and time zone are set once.
"""

from __future__ import annotations

import glob
import os
import re
from importlib import resources
from pathlib import Path

import duckdb
from sqlglot import exp

from pipeline.files import atomic_path


def default_memory_limit() -> str:
    """A sixth of physical memory (at least 1 GiB): about 4 GB on a 24 GiB machine.

    The limit covers DuckDB's buffers only; pandera's chunks, Arrow, Python and the page
    cache for the Parquet files come on top (about 1 GB more at 10M profiles). Measured at
    10M profiles, 4 GB costs ~8% more time than half of RAM and halves peak memory (5 GB
    against 10.6 GB), so a nightly run shares its machine safely. --memory-limit raises it.
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return "4GB"
    return f"{max(1024, total // 6 // 2**20)}MiB"


def connect(
    database: str | Path = ":memory:",
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | Path | None = None,
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection with the project's settings applied."""
    con = duckdb.connect(str(database), read_only=read_only)
    # Timestamps are stored and compared in UTC; local times are computed explicitly.
    con.execute("SET TimeZone = 'UTC'")
    # Python variables must never be picked up as tables by a name in SQL text.
    con.execute("SET python_enable_replacements = false")
    con.execute("SET memory_limit = ?", [memory_limit or default_memory_limit()])
    con.execute("SET threads = ?", [threads or os.cpu_count() or 1])
    if temp_directory is not None:
        Path(temp_directory).mkdir(parents=True, exist_ok=True)
        con.execute("SET temp_directory = ?", [str(temp_directory)])
    con.execute("SET preserve_insertion_order = true")
    if str(database) == ":memory:":
        # Since DuckDB 1.4 an in-memory database checkpoints (vacuums) itself every 16 MB
        # of changes: after each big CREATE TABLE AS or INSERT, a pass over what changed
        # that nothing here needs (tables are built once, then dropped). Measured: 0.29 s
        # of a campaign's 0.38 s at 1M profiles.
        con.execute("SET checkpoint_threshold = '1TB'")
    # Progress is this program's to show (rich bars, json events, or nothing with --quiet):
    # DuckDB's own bar would print over them, and into the json lines, on any query > 2 s.
    con.execute("SET enable_progress_bar = false")
    return con


def sql_text(name: str) -> str:
    """The text of `pipeline/sql/<name>.sql`, shipped inside the package."""
    return resources.files("pipeline").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def sql_parts(name: str) -> dict[str, str]:
    """The statements of `pipeline/sql/<name>.sql`, each headed by a `-- part: <key>` line."""
    text = sql_text(name)
    found = re.findall(r"^-- part: (\w+)\n(.*?)(?=^-- part:|\Z)", text, re.S | re.M)
    return {key: body.strip() for key, body in found}


def named(sql: str, values: dict) -> dict:
    """The entries of `values` that `sql` names as `$name`: DuckDB refuses any other.

    A `$name` in a `--` comment is not a parameter: comments are left out before looking.
    """
    code = re.sub(r"--[^\n]*", "", sql)
    return {key: value for key, value in values.items() if re.search(rf"\${re.escape(key)}\b", code)}


# DuckDB 2.0 streams results: an execute() result left half-read owns the connection and
# makes the next con.sql() fail. These helpers always read a result to its end.


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> list[tuple]:
    """All rows of a query, the result drained."""
    return con.execute(sql, params or []).fetchall()


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None):
    """The first column of the first row of a query, the result drained."""
    result = rows(con, sql, params)
    return result[0][0] if result else None


def quote(name: str) -> str:
    """A column or table name as a quoted DuckDB identifier: any text is safe in SQL."""
    return exp.to_identifier(name, quoted=True).sql("duckdb")


def drop_statement(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """`DROP TABLE` or `DROP VIEW` for whatever `name` is now (nothing when it does not exist)."""
    kinds = rows(con, "SELECT 'VIEW' FROM duckdb_views() WHERE view_name = ? AND NOT internal "
                      "UNION ALL SELECT 'TABLE' FROM duckdb_tables() WHERE table_name = ?", [name, name])
    return "".join(f"DROP {kind} IF EXISTS {quote(name)};" for (kind,) in kinds)


def literal(value: str | Path | list) -> str:
    """A value as a quoted SQL string literal (a list as a list of them): for a path in COPY or read_*."""
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return exp.Literal.string(str(value)).sql("duckdb")


def duckdb_path(path: str | Path) -> str:
    """`path` as DuckDB's readers must be given it to read exactly that file and no other.

    read_parquet, read_csv and the rest expand globs in every path, so `runs/[1]/x.parquet`
    would read `runs/1/x.parquet`: `[`, `*` and `?` are escaped as one-character classes
    (`[[]`), which match only themselves. The path is made absolute, so that `~` or a
    `scheme://` prefix is never interpreted either.
    """
    return glob.escape(str(Path(path).absolute()))


def path_literal(path: str | Path | list) -> str:
    """`duckdb_path` as a SQL string literal (a list as a list of them), for a view or COPY."""
    if isinstance(path, list):
        return "[" + ", ".join(path_literal(p) for p in path) + "]"
    return literal(duckdb_path(path))


def copy_atomic(
    con: duckdb.DuckDBPyConnection, select: str, final: Path, options: str, params: list | None = None
) -> int:
    """COPY a SELECT's rows to `final` under a temporary name, then rename; return rows written."""
    with atomic_path(final) as temporary:
        # COPY … TO takes no bound parameter for its target: a quoted string literal instead.
        target = literal(temporary)
        return scalar(con, f"COPY ({select}) TO {target} ({options})", params)
