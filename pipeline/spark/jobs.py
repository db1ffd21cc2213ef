"""A stage's Spark work on the driver's side: a scratch folder of the process, tables handed
to Spark and back as Parquet, and a task's faults raised as the default engine raises them.

The driver's DuckDB and Spark exchange whole Parquet files under the run folder's scratch
(`.tmp/spark-<pid>/`), not rows collected in Python (only small tables, such as the benefit
definitions, travel inside a task's function): a task still running for a killed command
writes only there, and the rerun's process has a folder of its own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import db
from pipeline.errors import SparkError, first_line
from pipeline.spark.shard import SHARD, jvm_stopped, labelled, pack, shard_labels, spark_type, task_error


class Job:
    """What a stage's Spark work needs: the session, the driver's DuckDB, its scratch and shards."""

    def __init__(self, context, own: Path):
        self.context = context
        self.con = context.con
        self.spark = context.spark
        self.own = own
        # --shards, else one shard per core Spark has (two at least: a shard boundary is
        # what the engine is about).
        self.shards = context.shards or max(2, self.spark.sparkContext.defaultParallelism)
        self.labels = shard_labels(self.spark, self.shards)

    def pack(self, frames: dict, keys: dict):
        """`frames` packed by shard (`shard.pack`), each shard in a partition of its own."""
        return pack(frames, keys, self.shards, self.labels)

    def on_shards(self, packed, function, schema):
        """`function(key, table)` over each shard of a `pack` that holds rows, `key` its number."""
        return packed.groupBy(SHARD).applyInArrow(labelled(function, self.labels), schema)

    def from_driver(self, name: str, select: str):
        """A DataFrame of a SELECT on the driver's DuckDB, through a Parquet file of scratch."""
        from pipeline.context import PARQUET

        path = self.own / f"{name}.parquet"
        db.copy_atomic(self.con, select, path, PARQUET)
        return self.spark.read.parquet(str(path))

    def validated(self, name: str, columns):
        """A DataFrame of some columns of a dataset's accepted rows (its file or parts in the
        run folder), read with the driver's types: a user's extra columns, whatever their
        types, are never read. A column Spark has no type for (`spark_type`) comes through
        the driver as text instead, which the shards cast back."""
        from pipeline.runfolder import validated_paths

        context = self.context
        kinds = {column: kind for column, kind, *_ in db.rows(self.con, f"DESCRIBE {name}") if column in set(columns)}
        wanted = [column for column in kinds]  # the dataset's order
        if all(spark_type(kinds[column]) for column in wanted):
            schema = ", ".join(f"`{column}` {spark_type(kinds[column])}" for column in wanted)
            paths = [str(context.out_dir / p) for p in validated_paths(context.outputs, name)]
            return self.spark.read.schema(schema).parquet(*paths)
        select = ", ".join(db.quote(c) if spark_type(kinds[c]) else f"CAST({db.quote(c)} AS VARCHAR) AS {db.quote(c)}"
                           for c in wanted)
        return self.from_driver(name, f"SELECT {select} FROM {name}")

    def to_driver(self, frame, table: str) -> None:
        """Run `frame` and keep its rows as table `table` of the driver's DuckDB."""
        path = self.own / table
        frame.write.mode("overwrite").parquet(str(path))
        self.con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet("
                         + db.literal(db.duckdb_path(path) + "/*.parquet") + ")")


@contextmanager
def scratch(context, stage: str) -> Iterator[Path]:
    """This process's own folder for `stage`'s Spark work, under the run folder's scratch, gone
    when the work ends; a fault inside reads as the default engine's."""
    from pipeline.runfolder import SCRATCH

    own = context.out_dir / SCRATCH / f"spark-{os.getpid()}"
    shutil.rmtree(own, ignore_errors=True)
    own.mkdir(parents=True)
    try:
        yield own
    except Exception as error:
        if jvm_stopped(error):
            raise SparkError(f"Spark's JVM stopped during the {stage} stage (killed, or out of memory?): "
                             f"{first_line(error)}") from None
        raise task_error(error) from None
    finally:
        shutil.rmtree(own, ignore_errors=True)


@contextmanager
def spark_job(context, stage: str) -> Iterator[Job]:
    """A `Job` for `stage`, in its `scratch`, with the session's settings for sharded work
    while it runs."""
    with scratch(context, stage) as own:
        job = Job(context, own)
        conf = job.spark.conf
        # Every shard a task of its own, run side by side: a partition per shard (the labels
        # see to it), none merged by adaptive execution (they are small to it).
        wanted = {"spark.sql.shuffle.partitions": str(job.shards),
                  "spark.sql.adaptive.coalescePartitions.enabled": "false"}
        settings = {}
        try:
            for key, value in wanted.items():
                settings[key] = conf.get(key)
                conf.set(key, value)
            yield job
        finally:
            for key, value in settings.items():
                try:
                    conf.set(key, value)
                except Exception:  # noqa: BLE001 - the JVM is gone: the error raised says so
                    break
