"""The Spark engine's building blocks on a real local[2,2] session: DuckDB SQL on every shard
of packed datasets, a shard that fails once (raising, or its worker killed) retried by
Spark with the same result, and Parquet from Spark read back by DuckDB with the same types."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from pipeline.spark.shard import FailOnce, duckdb_shard, pack

pytestmark = pytest.mark.spark

SHARDS = 4
# Per profile: its benefits and spend, with the profile's zone applied in DuckDB (ICU), as
# the default engine's SQL does. Empty shards are never called; `$shard` is the shard's own.
PER_PROFILE = """
SELECT p.id AS profile_id, $shard AS shard,
       count(b.id) AS benefits,
       sum(b.total) AS total,
       max(timezone(coalesce(p.timezone, 'UTC'), b.issued_at)) AS last_issued_local,
       max(b.issued_at) AS last_issued
FROM profiles p LEFT JOIN benefits b ON b.profile_id = p.id
GROUP BY p.id
ORDER BY p.id
"""
SCHEMA = ("profile_id string, shard long, benefits long, total decimal(38,6), "
          "last_issued_local timestamp_ntz, last_issued timestamp")


def inputs(spark):
    """Five profiles (p4 holds every benefit of its shard's history), one with none."""
    profiles = spark.createDataFrame(
        [("p0", "Australia/Melbourne"), ("p1", None), ("p2", "America/New_York"), ("p3", None), ("p4", "UTC")],
        "id string, timezone string",
    )
    issued = datetime(2026, 4, 5, 15, 30, tzinfo=timezone.utc)  # 01:30 in Melbourne, just after DST ends
    rows = [(n, "p4", Decimal(n) / 100, issued) for n in range(1, 40)]
    rows += [(100, "p0", Decimal("1.10"), issued), (101, "p2", Decimal("2.20"), issued), (102, "p2", None, issued)]
    benefits = spark.createDataFrame(rows, "id long, profile_id string, total decimal(38,6), issued_at timestamp")
    return pack({"profiles": profiles, "benefits": benefits}, {"profiles": "id", "benefits": "profile_id"}, SHARDS)


def run(spark, fail_once=None):
    shard_sql = duckdb_shard(PER_PROFILE, _struct(spark, SCHEMA), ["profiles", "benefits"], fail_once=fail_once)
    return inputs(spark).groupBy("shard").applyInArrow(shard_sql, SCHEMA).orderBy("profile_id").toArrow()


def _struct(spark, ddl):
    from pyspark.sql.types import _parse_datatype_string

    return _parse_datatype_string(ddl)


def test_duckdb_runs_on_every_shard_and_the_shards_make_the_whole(spark):
    assert spark.sparkContext.master == "local[2,2]"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    result = run(spark).to_pylist()
    by_profile = {row["profile_id"]: row for row in result}
    assert sorted(by_profile) == ["p0", "p1", "p2", "p3", "p4"]
    # Each profile's row came from the shard Spark's hash put it in, and only from there.
    shards = dict(spark.sql(
        "SELECT id, pmod(hash(id), 4) FROM VALUES ('p0'), ('p1'), ('p2'), ('p3'), ('p4') AS t(id)").collect())
    assert {p: r["shard"] for p, r in by_profile.items()} == shards
    # Shard 2 holds no row (never called: nothing is missing for it); p3's shard has no benefit.
    assert sorted(set(shards.values())) == [0, 1, 3] and shards["p3"] not in (shards["p0"], shards["p2"], shards["p4"])
    assert by_profile["p4"]["benefits"] == 39 and by_profile["p4"]["total"] == Decimal("7.800000")
    assert by_profile["p2"]["benefits"] == 2 and by_profile["p2"]["total"] == Decimal("2.200000")
    assert by_profile["p1"]["benefits"] == 0 and by_profile["p1"]["total"] is None
    # ICU's zone rules in the shard: 15:30 UTC is 01:30 in Melbourne (AEST, after DST), 11:30 in New York.
    assert by_profile["p0"]["last_issued_local"] == datetime(2026, 4, 6, 1, 30)
    assert by_profile["p2"]["last_issued_local"] == datetime(2026, 4, 5, 11, 30)
    assert by_profile["p0"]["last_issued"] == datetime(2026, 4, 5, 15, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("kill", [False, True], ids=["raises", "worker_killed"])
def test_a_shard_that_fails_once_is_retried_and_the_result_is_the_same(spark, tmp_path, kill):
    expected = run(spark)
    failing = expected.column("shard")[0].as_py()  # a shard that has rows, so it is called
    marker = tmp_path / "failed-once"
    again = run(spark, FailOnce(failing, str(marker), kill=kill))
    assert marker.exists(), "the shard never failed: the test proves nothing"
    assert again.equals(expected)


def test_parquet_that_spark_writes_reads_back_in_duckdb_with_the_default_engines_types(spark, tmp_path):
    from pipeline import db

    spark.sql("""SELECT 'p1' AS profile_id, CAST(1.5 AS DECIMAL(38, 6)) AS total,
                        TIMESTAMP_NTZ'2026-04-06 01:30:00' AS issued_at_local,
                        TIMESTAMP'2026-04-05 15:30:00.123456' AS issued_at_utc""").write.parquet(str(tmp_path / "out"))
    con = db.connect(threads=1)
    kinds = {name: kind for name, kind, *_ in db.rows(con, f"DESCRIBE SELECT * FROM read_parquet({db.literal(str(tmp_path / 'out' / '*.parquet'))})")}
    assert kinds == {"profile_id": "VARCHAR", "total": "DECIMAL(38,6)", "issued_at_local": "TIMESTAMP",
                     "issued_at_utc": "TIMESTAMP WITH TIME ZONE"}


def test_shards_packed_with_their_labels_run_each_in_a_task_of_its_own(spark):
    """groupBy("shard") hashes the shard numbers again: with as many partitions as shards,
    two shards can share a task and run one after the other. Packed with `shard_labels`,
    shard k is partition k, and the function is still given k."""
    from pyspark.sql import functions as F

    from pipeline.spark.shard import labelled, shard_labels

    def where(key, table):
        import pyarrow as pa
        from pyspark import TaskContext

        return pa.table({"shard": pa.array([key[0].as_py()], pa.int32()),
                         "task": pa.array([TaskContext.get().partitionId()], pa.int32()),
                         "rows": pa.array([table.num_rows], pa.int64())})

    shared = []
    for shards in (2, 3, 8):
        rows = spark.range(400).select(F.col("id").cast("string").alias("id"))
        expected = {r.s: r.n for r in rows.groupBy(F.expr(f"pmod(hash(id), {shards})").alias("s"))
                    .agg(F.count("*").alias("n")).collect()}
        settings = {"spark.sql.shuffle.partitions": str(shards), "spark.sql.adaptive.coalescePartitions.enabled": "false"}
        before = {key: spark.conf.get(key) for key in settings}
        for key, value in settings.items():
            spark.conf.set(key, value)
        try:
            plain = pack({"profiles": rows}, {"profiles": "id"}, shards)
            found = plain.groupBy("shard").applyInArrow(where, "shard int, task int, rows long").collect()
            shared.append(len({r.task for r in found}) < shards)
            labels = shard_labels(spark, shards)
            packed = pack({"profiles": rows}, {"profiles": "id"}, shards, labels)
            found = packed.groupBy("shard").applyInArrow(labelled(where, labels), "shard int, task int, rows long").collect()
        finally:
            for key, value in before.items():
                spark.conf.set(key, value)
        assert {r.shard: r.rows for r in found} == expected  # the shard numbers, each with its rows
        assert {r.shard: r.task for r in found} == {k: k for k in expected}, f"{shards} shards"
    assert any(shared), "no shard count shared a task unlabelled: the test proves nothing"


@pytest.mark.parametrize("size, quick", [(200_000, True), (86_000_000, False)])
def test_a_local_jvm_skips_its_optimising_compiler_only_for_small_inputs(size, quick):
    """The quick JIT tier alone saves CPU on small inputs and doubles a large stage's time."""
    from pipeline.spark.session import QUICK_JIT_BELOW, _local_settings

    options = _local_settings({}, quick=size < QUICK_JIT_BELOW)["spark.driver.extraJavaOptions"]
    assert ("-XX:TieredStopAtLevel=1" in options) == quick
    assert "-Dlog4j2.configurationFile=" in options
