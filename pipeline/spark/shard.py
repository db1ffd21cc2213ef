"""DuckDB on one shard: the datasets of a shard go in as one Arrow table, SQL results come out.

Spark's `groupBy("shard").applyInArrow` hands a function one `pyarrow.Table` per shard, and
takes one back, of exactly the declared schema (no implicit casts: int64 for `int` fails).
Datasets of different shapes travel together packed (`pack`): one row per input row, a
`shard` column, a `dataset` column naming it, and one struct column per dataset holding the
row (null for the other datasets' rows). `unpack` gives each dataset back as its own table,
with zero rows but every column when the shard has none of it.

A shard's SQL runs on a connection from `pipeline.db.connect`, with the default engine's
settings (UTC, insertion order kept, no Python replacement scans): the same statements, in
the same DuckDB, decide the same way on every shard. The functions here have no side effects
but the optional `FailOnce` test hook, so Spark may run a shard again (a retry, a lost
executor) and get the same answer.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

SHARD = "shard"
DATASET = "dataset"
# A command's shard or task to fail once (tests only): see `FailOnce.from_environment`.
FAIL_ONCE_VARIABLE = "OMNEO_BULK_TEST_FAIL_ONCE"


# DuckDB's types that Spark reads from DuckDB's Parquet as the same values.
SPARK_TYPES = {"VARCHAR": "string", "BIGINT": "bigint", "INTEGER": "int", "DOUBLE": "double", "DATE": "date",
               "TIMESTAMP WITH TIME ZONE": "timestamp", "TIMESTAMP": "timestamp_ntz", "BOOLEAN": "boolean",
               "JSON": "string"}


def spark_type(kind: str) -> str | None:
    """The Spark type that reads a DuckDB column of type `kind` from Parquet unchanged, or None
    (nanosecond timestamps, UUID, INTERVAL, unsigned integers, structs: Spark has no such type
    or refuses the Parquet it is written as)."""
    if kind in SPARK_TYPES:
        return SPARK_TYPES[kind]
    if kind.endswith("[]"):
        inner = spark_type(kind[:-2])
        return f"array<{inner}>" if inner else None
    decimal = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", kind)
    return f"decimal({decimal[1]},{decimal[2]})" if decimal else None


def conformed(kinds: Mapping[str, str], present: Collection[str]) -> str:
    """A SELECT list giving exactly the columns of `kinds` (name -> DuckDB type), in its order:
    each one in `present` cast to its type (what Spark or a file carried may be another),
    the others null of that type."""
    from pipeline import db

    return ", ".join(f"CAST({db.quote(c) if c in present else 'NULL'} AS {kind}) AS {db.quote(c)}"
                     for c, kind in kinds.items())


def shard_of(column: str, shards: int) -> str:
    """Spark SQL for a row's shard: `pmod(hash(column), shards)`.

    Spark's `hash` is Murmur3 with seed 42, the same function `repartition(n, column)` uses,
    so the shard of a value is the same on every run, machine and cluster (a null key hashes
    to one fixed shard).
    """
    return f"pmod(hash(`{column}`), {int(shards)})"


def shard_labels(spark, shards: int) -> list[int]:
    """For each shard k, a number whose Spark hash lands in partition k of `shards`.

    `groupBy("shard")` hashes the shard column again (`pmod(hash(shard), partitions)`), so
    rows tagged 0..n-1 can put two shards in one partition, one task, run one after the
    other (at 1M profiles on two shards they did: 8 s of a 25 s stage). Tagged with these
    labels instead, shard k is partition k of n: every shard a task of its own, and no more
    partitions than shards. One query over 64 candidates per shard finds them.
    """
    n = int(shards)
    found = dict(spark.sql(
        f"SELECT pmod(hash(CAST(id AS INT)), {n}) AS k, CAST(min(id) AS INT) AS label "
        f"FROM range({64 * n}) GROUP BY 1").collect())
    if len(found) < n:  # (1 - 1/n) ** (64 n): never seen
        raise RuntimeError(f"no label found for every one of {n} shards")
    return [found[k] for k in range(n)]


def labelled(function: Callable[[tuple, pa.Table], pa.Table], labels: Sequence[int]):
    """`function` for a DataFrame packed with `labels`: called with the shard's number, not its label."""
    number = {label: shard for shard, label in enumerate(labels)}

    def run(key, table):
        return function((pa.scalar(number[key[0].as_py()]),), table)

    return run


def pack(frames: Mapping[str, object], keys: Mapping[str, str], shards: int, labels: Sequence[int] | None = None):
    """One DataFrame of every dataset in `frames`, each row tagged with its shard by `keys[name]`
    (with `labels`, the shard's label: see `shard_labels`)."""
    from pyspark.sql import functions as F

    shard = shard_of("{}", shards)
    if labels is not None:
        shard = f"element_at(array({', '.join(str(int(label)) for label in labels)}), {shard} + 1)"
    packed = None
    for name, frame in frames.items():
        part = frame.select(
            F.expr(shard.format(keys[name])).alias(SHARD),
            F.lit(name).alias(DATASET),
            F.struct(*[F.col(f"`{c}`") for c in frame.columns]).alias(name),
        )
        packed = part if packed is None else packed.unionByName(part, allowMissingColumns=True)
    return packed


def unpack(table: pa.Table, names: Sequence[str]) -> dict[str, pa.Table]:
    """Each dataset of a packed shard as its own table (empty, with its columns, when absent)."""
    found = {}
    for name in names:
        rows = table.filter(pc.equal(table.column(DATASET), name)).column(name)
        found[name] = pa.Table.from_struct_array(rows.combine_chunks())
    return found


@dataclass(frozen=True)
class FailOnce:
    """Test hook: shard `shard` fails on its first attempt, by raising or by killing its worker.

    `marker` is a path every executor sees (a local session's file system): made when the
    shard fails, so the retry passes. `kill` ends the Python worker with SIGKILL, as a lost
    executor would; otherwise the shard raises.
    """

    shard: int
    marker: str
    kill: bool = False

    @classmethod
    def from_environment(cls, stage: str) -> FailOnce | None:
        """The hook a test sets for a stage of a command: `OMNEO_BULK_TEST_FAIL_ONCE=<n>:<marker>`
        (the validate stage's task n), `issue/<n>:<marker>` or `reconcile/<n>:<marker>` (that
        stage's shard n), any of them with `:kill` after. Unset (always, outside the tests), or for another stage, None."""
        wanted = os.environ.get(FAIL_ONCE_VARIABLE)
        if not wanted:
            return None
        named, named_one, rest = wanted.partition("/")
        if not named_one or ":" in named:  # no stage named: the marker's path holds the "/"
            named, rest = "validate", wanted
        if named != stage:
            return None
        shard, marker, *kill = rest.split(":")
        return cls(int(shard), marker, kill == ["kill"])

    def reach(self, shard: int) -> None:
        if shard != self.shard or os.path.exists(self.marker):
            return
        with open(self.marker, "w", encoding="utf-8") as handle:
            handle.write(f"shard {shard} failed once in pid {os.getpid()}\n")
        if self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"shard {shard}: failing once on purpose (FailOnce)")


def duckdb_shard(
    sql: str,
    schema,
    datasets: Sequence[str],
    *,
    params: Mapping[str, object] | None = None,
    threads: int = 1,
    memory_limit: str | None = None,
    fail_once: FailOnce | None = None,
) -> Callable[[tuple, pa.Table], pa.Table]:
    """A function for `groupBy("shard").applyInArrow(f, schema)`: `sql` over the shard's datasets.

    The datasets are registered under their names; `sql` may read `$shard` besides `params`.
    Its result is returned as Arrow of `schema` (a Spark StructType), columns by name.
    `threads` is DuckDB's per shard: Spark already runs one task per core.
    """
    target = arrow_schema(schema)
    names = tuple(datasets)
    bound = dict(params or {})

    def run(key: tuple, table: pa.Table) -> pa.Table:
        from pipeline import db

        shard = key[0].as_py()
        if fail_once is not None:
            fail_once.reach(shard)
        con = db.connect(threads=threads, memory_limit=memory_limit)
        try:
            for name, rows in unpack(table, names).items():
                con.register(name, rows)
            used = {k: v for k, v in {**bound, "shard": shard}.items() if f"${k}" in sql}
            result = con.sql(sql, params=used or None).to_arrow_table()
        finally:
            con.close()
        return result.select(target.names).cast(target)

    return run


def arrow_schema(schema) -> pa.Schema:
    """The Arrow schema Spark expects back for a StructType (session time zone UTC)."""
    return pa.schema([pa.field(f.name, arrow_type(f.dataType), f.nullable) for f in schema.fields])


def arrow_type(kind) -> pa.DataType:
    """The Arrow type of a Spark type, as Spark's Arrow exchange has it (UTC instants)."""
    from pyspark.sql import types as T

    simple = {
        T.StringType: pa.string(), T.LongType: pa.int64(), T.IntegerType: pa.int32(),
        T.ShortType: pa.int16(), T.ByteType: pa.int8(), T.DoubleType: pa.float64(),
        T.FloatType: pa.float32(), T.BooleanType: pa.bool_(), T.DateType: pa.date32(),
        T.BinaryType: pa.binary(), T.NullType: pa.null(),
        # An instant (DuckDB TIMESTAMPTZ) and a wall time (DuckDB TIMESTAMP) stay apart.
        T.TimestampType: pa.timestamp("us", tz="UTC"), T.TimestampNTZType: pa.timestamp("us"),
    }
    for spark_type, arrow in simple.items():
        if isinstance(kind, spark_type):
            return arrow
    if isinstance(kind, T.DecimalType):
        return pa.decimal128(kind.precision, kind.scale)
    if isinstance(kind, T.ArrayType):
        return pa.list_(pa.field("element", arrow_type(kind.elementType), kind.containsNull))
    if isinstance(kind, T.StructType):
        return pa.struct([pa.field(f.name, arrow_type(f.dataType), f.nullable) for f in kind.fields])
    if isinstance(kind, T.MapType):
        return pa.map_(arrow_type(kind.keyType), arrow_type(kind.valueType))
    raise TypeError(f"no Arrow type for Spark type {kind.simpleString()}")


def task_error(error: Exception) -> Exception:
    """A task's own fault (a file that cannot be read, named with its row and column; DuckDB
    out of memory under --memory-limit), as the default engine raises it, instead of Spark's
    report of the failed job around it."""
    import duckdb

    from pipeline import errors

    # Out of memory first: a reader's "cannot be read" around it would send the user to a
    # sound export (the default engine finds it in the exception's chain; here, in the text).
    # The task's traceback names DuckDB's error, or only its words inside the reader's.
    memory = re.findall(r"Out of Memory Error: [^\n]*", str(error))
    if memory:
        message = memory[-1].strip()
        while message.endswith(")") and message.count(")") > message.count("("):
            message = message[:-1]  # the reader's parenthesis around DuckDB's words
        return duckdb.OutOfMemoryException(message)
    found = re.findall(r"pipeline\.errors\.(\w+): (.+)", str(error))
    if found:
        kind, message = found[-1]
        cause = getattr(errors, kind, None)
        if isinstance(cause, type) and issubclass(cause, errors.PipelineError):
            return cause(message.strip())
    return error


def jvm_stopped(error: Exception) -> bool:
    """Did the JVM under the session go away (killed, out of memory), rather than a job fail?"""
    from py4j.protocol import Py4JError, Py4JJavaError, Py4JNetworkError

    if isinstance(error, (ConnectionError, EOFError, Py4JNetworkError)):
        return True
    return isinstance(error, Py4JError) and not isinstance(error, Py4JJavaError)
