"""`omneo-bulk query` only reads its own run folder: each way out a hostile analyst might try, refused.

The sample data is run once (state in `.omneo-bulk/` beside the run folder, the default) and
queried through the real CLI. An attempt to write gets its own copy of that run, and the test
checks what the user sees (exit 2, one `error:` line) and that no file anywhere changed.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from pathlib import Path
from typing import NamedTuple

import pytest

from conftest import assert_ok, invoke, sha256_file

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
AS_OF = "2026-11-22T09:00:00+11:00"
VIEWS = ("profiles", "benefit_definitions", "benefits", "redemptions", "redemption_items", "returns", "transactions",
         "plan", "ledger", "matches", "exceptions", "rejects", "payloads", "summary")
SECRET = "top-secret-7f3a"  # the content of a file outside the run folder


class Run(NamedTuple):
    run: Path  # the run folder
    state: Path  # its issuance state, .omneo-bulk/ beside it
    outside: Path  # a folder beside the run holding secret.csv and other.duckdb
    home: Path  # HOME for DuckDB (extensions, secrets), so no test touches the real one


def make_run(base: Path) -> Run:
    (base / "home").mkdir()
    result = invoke(["run", "--input", SAMPLE, "--campaigns", SAMPLE / "campaigns.toml", "--out", base / "run",
                     "--as-of", AS_OF], env={"HOME": str(base / "home")})
    assert_ok(result)
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(f"secret\n{SECRET}\n", encoding="utf-8")
    return Run(base / "run", base / ".omneo-bulk", outside, base / "home")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Run:
    """The sample run, for attempts that only read (they must not change it either)."""
    return make_run(tmp_path_factory.mktemp("sandbox"))


@pytest.fixture
def fresh(sample, tmp_path) -> Run:
    """A copy of the sample run of one's own, for an attempt that would write if it could."""
    for name in ("run", ".omneo-bulk", "outside"):
        shutil.copytree(sample.run.parent / name, tmp_path / name, symlinks=True)
    copy = Run(tmp_path / "run", tmp_path / ".omneo-bulk", tmp_path / "outside", tmp_path / "home")
    copy.home.mkdir()
    assert_ok(invoke(["report", "--out", copy.run], env={"HOME": str(copy.home)}))  # views over the copy's files
    return copy


def query(run: Run, sql: str, **env: str | None):
    return invoke(["query", "--out", run.run, "--format", "json", sql], env={"HOME": str(run.home), **env})


def files_under(*folders: Path) -> dict[str, str]:
    """Every file below the folders (the folders' parent included), each with its sha256."""
    found = {}
    for folder in folders:
        for path in sorted(folder.parent.rglob("*")):
            if path.is_file() and not path.is_symlink():
                found[str(path)] = sha256_file(path)
    return found


def assert_refused(result) -> str:
    """Exit 2, nothing on stdout, and one `error: query failed: refused, …` line: the sandbox said no."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: query failed: refused, "), result.stderr
    return errors[0]


def assert_nothing_written(run: Run, before: dict[str, str], *absent: Path) -> None:
    assert files_under(run.run) == before
    for path in absent:
        assert not path.exists(), f"{path} was written"


# Writing ---------------------------------------------------------------------------------


def copy_to(target: str) -> str:
    return f"COPY (SELECT 'forged' AS id) TO '{target}' (FORMAT parquet)"


def test_copy_to_a_file_outside_the_run_is_refused(fresh):
    before = files_under(fresh.run)
    target = fresh.outside / "x.csv"

    result = query(fresh, f"COPY (SELECT 1) TO '{target}'")

    assert_refused(result)
    assert_nothing_written(fresh, before, target)


def quoted(sql: str) -> str:
    return "'" + sql.replace("'", "''") + "'"


# Four ways to write a file. DuckDB 2.0 allows COPY inside a WITH clause, and the statement is
# still a SELECT; json_execute_serialized_sql runs such a statement given as text, and query()
# hides that call in a string in turn.
WRITE_FORMS = {
    "COPY": lambda copy: copy,
    "WITH (COPY ...) SELECT": lambda copy: f"WITH forged AS ({copy}) SELECT 1",
    "json_execute_serialized_sql": lambda copy: "SELECT * FROM json_execute_serialized_sql(json_serialize_sql("
                                                + quoted(f"WITH forged AS ({copy}) SELECT 1") + "))",
    "query(json_execute_serialized_sql)": lambda copy: "SELECT * FROM query(" + quoted(
        "SELECT * FROM json_execute_serialized_sql(json_serialize_sql("
        + quoted(f"WITH forged AS ({copy}) SELECT 1") + "))") + ")",
}


@pytest.mark.parametrize("form", list(WRITE_FORMS))
def test_the_runs_validated_parquet_cannot_be_overwritten(fresh, form):
    target = fresh.run / "validated" / "profiles.parquet"
    before = files_under(fresh.run)
    sql = WRITE_FORMS[form](copy_to(target))

    result = query(fresh, sql)

    assert_refused(result)
    assert_nothing_written(fresh, before)


@pytest.mark.parametrize("form", list(WRITE_FORMS))
def test_the_issued_state_cannot_be_overwritten(fresh, form):
    # An empty issued.parquet made the next run issue the whole night again.
    target = fresh.state / "issued.parquet"
    before = files_under(fresh.run)
    sql = WRITE_FORMS[form](copy_to(target))

    result = query(fresh, sql)

    assert_refused(result)
    assert_nothing_written(fresh, before)


def test_a_second_statement_after_a_select_is_refused_and_neither_runs(fresh):
    before = files_under(fresh.run)
    target = fresh.run / "x.csv"

    result = query(fresh, f"SELECT 1; COPY (SELECT 1) TO '{target}'")

    assert_refused(result)
    assert_nothing_written(fresh, before, target)


@pytest.mark.parametrize("where", ["run", "outside"])
def test_export_database_is_refused(fresh, where):
    before = files_under(fresh.run)
    target = (fresh.run if where == "run" else fresh.outside) / "export"

    result = query(fresh, f"EXPORT DATABASE '{target}'")

    assert_refused(result)
    assert_nothing_written(fresh, before, target)


@pytest.mark.parametrize("options", ["", " (READ_WRITE)"], ids=["attach", "attach read_write"])
def test_attach_cannot_create_a_database(fresh, options):
    before = files_under(fresh.run)
    target = fresh.outside / "new.duckdb"

    result = query(fresh, f"ATTACH '{target}' AS created{options}")

    assert_refused(result)
    assert_nothing_written(fresh, before, target)


@pytest.mark.parametrize("sql", [
    "CREATE TABLE forged AS SELECT 1",
    "CREATE VIEW forged AS SELECT 1",
    "CREATE TEMP TABLE forged AS SELECT 1",
    "CREATE TEMP VIEW forged AS SELECT 1",
    "CREATE TEMP MACRO forged() AS 1",
    "DROP VIEW plan",
    "CHECKPOINT",
    "CALL pragma_version()",
])
def test_statements_other_than_a_select_are_refused(fresh, sql):
    before = files_under(fresh.run)

    result = query(fresh, sql)

    assert_refused(result)
    assert_nothing_written(fresh, before)


@pytest.mark.parametrize("sql, named", [("INSTALL httpfs", "an INSTALL statement"), ("CHECKPOINT", "a CHECKPOINT statement"),
                                        ("USE memory", "a USE statement"), ("ATTACH ':memory:' AS m", "an ATTACH statement"),
                                        ("EXPLAIN SELECT 1", "an EXPLAIN statement")])
def test_a_refused_statement_is_named_as_written(fresh, sql, named):
    # DuckDB's own type names called INSTALL "a LOAD statement" and CHECKPOINT "a CALL" one.
    result = query(fresh, sql)

    assert_refused(result)
    assert named in result.stderr, result.stderr


@pytest.mark.parametrize("form", ["call", "select"])
def test_duckdb_logging_cannot_be_turned_on_to_write_a_file(fresh, form):
    # CALL is refused as a statement; the same table function in a SELECT is stopped by the lock.
    before = files_under(fresh.run)
    logs = fresh.outside / "logs"
    function = f"enable_logging(storage = 'file', storage_path = '{logs}')"
    sql = f"CALL {function}" if form == "call" else f"SELECT * FROM {function}"

    result = query(fresh, sql)

    assert_refused(result)
    assert_nothing_written(fresh, before, logs)


def test_every_function_that_takes_sql_text_is_known(sample):
    # A function that runs SQL text escapes the parse-tree check unless warehouse.RUNS_SQL_TEXT
    # lists it. A DuckDB upgrade that adds one fails here: read what it does before adding it.
    result = query(sample, "SELECT DISTINCT function_name AS name FROM duckdb_functions() WHERE list_filter("
                           "parameters, lambda p: regexp_matches(p, 'sql|query|statement', 'i')) <> [] ORDER BY 1")

    assert_ok(result)
    assert [row["name"] for row in json.loads(result.stdout)] == [
        "json_execute_serialized_sql",  # runs it: refused
        "json_serialize_plan",  # binds and plans it, runs nothing
        "json_serialize_sql",  # parses it
        "query",  # binds it: refused, as it can hide json_execute_serialized_sql
    ]


# Reading outside the run folder -----------------------------------------------------------


# {secret} is outside/secret.csv, {issued} the state's issued.parquet, {run} the run folder.
OUTSIDE_READS = {
    "read_csv /etc/passwd": "SELECT * FROM read_csv('/etc/passwd', sep = ':', header = false)",
    "read_text /etc/passwd": "SELECT * FROM read_text('/etc/passwd')",
    "read_blob": "SELECT * FROM read_blob('{secret}')",
    "glob /*": "SELECT * FROM glob('/*')",
    "read_parquet state": "SELECT count(*) FROM read_parquet('{issued}')",
    "replacement scan": "SELECT count(*) FROM '{issued}'",
    "parquet_metadata": "SELECT * FROM parquet_metadata('{issued}')",
    "sniff_csv": "SELECT * FROM sniff_csv('{secret}')",
    "absolute ..": "SELECT * FROM read_csv('{run}/../outside/secret.csv')",
    "sibling with the run's name as prefix": "SELECT * FROM read_csv('{run}-other/secret.csv')",
    "attach and read": "ATTACH '{other}' AS other; SELECT * FROM other.t",
}


@pytest.fixture(scope="module")
def outside_files(sample) -> Run:
    """The sample run with a sibling folder named like it, and a DuckDB file beside it."""
    import duckdb

    sibling = sample.run.parent / "run-other"
    sibling.mkdir()
    shutil.copy(sample.outside / "secret.csv", sibling / "secret.csv")
    con = duckdb.connect(str(sample.outside / "other.duckdb"))
    con.execute(f"CREATE TABLE t AS SELECT '{SECRET}' AS secret")
    con.close()
    return sample


@pytest.mark.parametrize("name", list(OUTSIDE_READS))
def test_a_file_outside_the_run_folder_cannot_be_read(outside_files, name):
    run = outside_files
    before = files_under(run.run)
    sql = OUTSIDE_READS[name].format(secret=run.outside / "secret.csv", issued=run.state / "issued.parquet",
                                     run=run.run, other=run.outside / "other.duckdb")

    result = query(run, sql)

    assert_refused(result)
    assert SECRET not in result.output and "root:" not in result.output
    assert_nothing_written(run, before)


@pytest.mark.parametrize("sql", ["SELECT * FROM read_csv('../outside/secret.csv')",
                                 "SELECT count(*) FROM read_parquet('../.omneo-bulk/issued.parquet')"])
def test_a_relative_path_cannot_climb_out_of_the_run_folder(outside_files, monkeypatch, sql):
    monkeypatch.chdir(outside_files.run)

    result = query(outside_files, sql)

    assert_refused(result)
    assert SECRET not in result.output


def test_a_symlink_inside_the_run_folder_cannot_lead_out_of_it(fresh):
    (fresh.run / "innocent.csv").symlink_to(fresh.outside / "secret.csv")
    (fresh.run / "innocent").symlink_to(fresh.outside, target_is_directory=True)

    for sql in (f"SELECT * FROM read_csv('{fresh.run / 'innocent.csv'}')",
                f"SELECT * FROM read_text('{fresh.run / 'innocent' / 'secret.csv'}')"):
        result = query(fresh, sql)

        assert_refused(result)
        assert SECRET not in result.output


# Extensions and the network: a loopback listener stands in for the internet ---------------


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1, also set as HTTP(S) proxy: any request DuckDB makes arrives here."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    arrived: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(1)
                try:
                    arrived.append(connection.recv(1024) or b"(connected)")
                except OSError:
                    arrived.append(b"(connected)")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    proxy = f"http://127.0.0.1:{port}"
    env = {name: proxy for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    env.update({"NO_PROXY": None, "no_proxy": None})
    yield port, env, arrived
    stop.set()
    thread.join()
    server.close()


@pytest.mark.parametrize("sql", [
    "INSTALL httpfs",
    "FORCE INSTALL httpfs",
    "INSTALL httpfs FROM 'http://127.0.0.1:{port}'",
    "LOAD httpfs",
    "UPDATE EXTENSIONS",
    "SELECT * FROM read_json('http://127.0.0.1:{port}/x.json')",
    "SELECT * FROM read_parquet('https://127.0.0.1:{port}/x.parquet')",
    "CREATE SECRET (TYPE s3, KEY_ID 'key', SECRET 'secret')",
])
def test_no_extension_is_installed_or_loaded_and_nothing_goes_on_the_network(fresh, listener, sql):
    port, env, arrived = listener

    result = query(fresh, sql.format(port=port), **env)

    assert arrived == []
    assert_refused(result)
    assert not (fresh.home / ".duckdb").exists()  # no extension folder, no stored secret


# Settings that would lift the limits ------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "SET allowed_directories = ['/']",
    "SET allowed_paths = ['/etc/passwd']",
    "SET lock_configuration = false",
    "SET autoinstall_known_extensions = true",
    "PRAGMA enable_profiling",
    "SET allowed_directories = ['/']; SELECT * FROM read_text('/etc/passwd')",
])
def test_no_setting_that_would_lift_the_limits_can_be_changed(sample, sql):
    result = query(sample, sql)

    assert_refused(result)
    assert "root:" not in result.output


def test_the_sandbox_settings_can_be_read_and_are_locked(sample):
    names = ("enable_external_access", "lock_configuration", "autoinstall_known_extensions",
             "autoload_known_extensions", "allow_community_extensions", "allow_unsigned_extensions")
    result = query(sample, "SELECT name, value FROM duckdb_settings() WHERE name IN ("
                           + ", ".join(f"'{name}'" for name in names) + ")")
    folders = query(sample, "SELECT current_setting('allowed_directories') AS directories, "
                            "current_setting('allowed_paths') AS paths")

    assert_ok(result)
    assert_ok(folders)
    settings = {row["name"]: row["value"] for row in json.loads(result.stdout)}
    assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                        **{name: "false" for name in names[2:]}}
    # The run folder; DuckDB adds its own files (warehouse.duckdb and its .wal) and spill folder.
    [allowed] = json.loads(folders.stdout)
    inside = f"{sample.run.resolve()}/"
    assert allowed["directories"][0] == inside
    assert all(entry.startswith(inside) for entry in allowed["directories"] + allowed["paths"]), allowed


# What the sandbox must still allow --------------------------------------------------------


def test_every_view_still_answers(sample):
    for view in VIEWS:
        result = query(sample, f"SELECT count(*) AS n FROM {view}")

        assert_ok(result)


@pytest.mark.parametrize("sql", [
    "DESCRIBE plan",
    "SHOW TABLES",
    "SUMMARIZE exceptions",
    "FROM summary",
    "WITH issued AS (SELECT * FROM plan WHERE decision = 'issue') SELECT count(*) FROM issued",
    "PIVOT plan ON decision IN ('issue', 'skip') USING count(*) GROUP BY campaign_id",
    "SELECT count(*) FROM read_parquet('{run}/issuance/plan.parquet')",
    "SELECT * FROM read_text('{run}/report.md')",
    "SELECT count(*) FROM glob('{run}/*')",
])
def test_reading_the_run_folder_in_any_select_still_works(sample, sql):
    result = query(sample, sql.format(run=sample.run))

    assert_ok(result)
    assert result.stdout.startswith("[")


def test_report_still_reads_through_the_sandboxed_warehouse(fresh):
    (fresh.run / "report.md").unlink()

    result = invoke(["report", "--out", fresh.run], env={"HOME": str(fresh.home)})

    assert_ok(result)
    assert "benefits issued" in (fresh.run / "report.md").read_text(encoding="utf-8")


def test_a_moved_run_folder_still_says_how_to_rebuild_its_views(fresh, tmp_path):
    moved = Run(Path(shutil.move(str(fresh.run), str(tmp_path / "moved"))), fresh.state, fresh.outside, fresh.home)

    result = query(moved, "SELECT count(*) FROM plan")

    assert result.exit_code == 2
    assert "report --out" in result.stderr


def test_two_connections_to_one_warehouse_in_one_process_are_both_sandboxed(sample):
    # DuckDB's Python client shares one database instance per file, and the lock is the instance's.
    from pipeline import db, warehouse

    first = warehouse.connect(sample.run)
    try:
        second = warehouse.connect(sample.run)
        try:
            for con in (first, second):
                assert db.scalar(con, "SELECT count(*) FROM plan") > 0
                assert db.scalar(con, "SELECT current_setting('enable_external_access')") is False
        finally:
            second.close()
    finally:
        first.close()
