"""A stage's Parquet output written on a second connection while the first goes on
(`RunContext.copy_behind`): the file, its rows and its digest are what a copy in line
would give, a failed copy fails the stage's commit, and a table swapped for a view over
its file is never missing in between."""

from __future__ import annotations

import json

import duckdb
import pytest

from pipeline.context import RunContext


@pytest.fixture
def context(tmp_path):
    context = RunContext(out_dir=tmp_path / "run").open()
    yield context
    context.close()


def manifest(context: RunContext) -> dict:
    return json.loads((context.out_dir / "manifest.json").read_text())


def test_copied_behind_file_is_listed_with_its_rows_and_digest(context):
    context.con.execute("CREATE TABLE t AS SELECT range AS n, 'x' || range AS s FROM range(100000)")
    rows = context.copy_behind("SELECT * FROM t ORDER BY n", "out/t.parquet")
    context.stage_output("out/t.parquet", rows)
    context.commit("stage", {})
    listed = {o["path"]: o for o in manifest(context)["outputs"]}
    assert listed["out/t.parquet"]["rows"] == 100000
    final = context.out_dir / "out" / "t.parquet"
    assert context.con.execute(f"SELECT count(*), sum(n) FROM read_parquet('{final}')").fetchone() == (
        100000, sum(range(100000)))
    import hashlib

    assert listed["out/t.parquet"]["sha256"] == hashlib.sha256(final.read_bytes()).hexdigest()


def test_failed_copy_fails_the_commit_and_lists_nothing(context):
    rows = context.copy_behind("SELECT error('the disk is full') AS n", "out/t.parquet")
    context.stage_output("out/t.parquet", rows)
    with pytest.raises(duckdb.Error, match="the disk is full"):
        context.commit("stage", {})
    assert not (context.out_dir / "out" / "t.parquet").exists()
    assert not (context.out_dir / "manifest.json").exists()


def test_a_failed_copy_is_raised_by_the_next_one_at_the_latest(context):
    context.copy_behind("SELECT error('first copy failed') AS n", "out/a.parquet")
    with pytest.raises(duckdb.Error, match="first copy failed"):
        context.copy_behind("SELECT 1 AS n", "out/b.parquet")


def test_table_swapped_for_its_view_is_never_missing_to_a_reader(context):
    con = context.con
    for attempt in range(20):
        con.execute("CREATE OR REPLACE TABLE t AS SELECT range AS n FROM range(200000)")
        staged = context.staged_path(f"out/t{attempt}.parquet")
        done = context.copy_behind(
            "SELECT * FROM t", f"out/t{attempt}.parquet",
            then=("DROP TABLE t", f"CREATE VIEW t AS SELECT * FROM read_parquet('{staged}')"))
        # Read it all along the copy and the swap: a moment with neither table nor view
        # would be a CatalogException here.
        while not done.done():
            assert con.execute("SELECT count(*) FROM t").fetchone() == (200000,)
        done.result()
        assert con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 't'"
                           ).fetchone() == ("VIEW",)
        con.execute("DROP VIEW t")
