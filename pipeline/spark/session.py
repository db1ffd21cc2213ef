"""The one place the Spark engine's SparkSession is made and configured (like `pipeline.db.connect`).

A local master (`local[N]`, `local[N,F]`, `local[*]`) runs the driver and executors in this
process's JVM, on loopback, with this interpreter as the Python of every worker. Any other
master (`spark://…`, `yarn`, `k8s://…`), or none inside spark-submit or a Databricks job, is
the cluster's own: only the settings the engine relies on are applied.

Retries: in local mode Spark ignores `spark.task.maxFailures`; a task is tried once unless
the master says `local[N,F]` (F attempts in all). The default local master is
`local[*,2]`, so a shard that fails once is retried as on a cluster (default: 4 attempts).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources

from pipeline.errors import ConfigError

DEFAULT_LOCAL_MASTER = "local[*,2]"
LOCAL_MASTER = re.compile(r"^local(\[\s*([1-9]\d*|\*)\s*(,\s*[1-9]\d*\s*)?\])?$")
# The cluster managers Spark knows (SparkContext refuses any other master).
CLUSTER_MASTER = re.compile(r"^(yarn|spark://.+|k8s://.+|local-cluster\[.+\])$")

# SQL settings every session gets, local or not (they can be set on a running session too).
SQL_SETTINGS = {
    # Instants are shown and parsed in UTC, as DuckDB's connections do (`SET TimeZone = 'UTC'`);
    # a TIMESTAMP reaches a shard as Arrow timestamp[us, tz=UTC].
    "spark.sql.session.timeZone": "UTC",
    # Spark 4's default, stated: a bad cast fails instead of becoming null.
    "spark.sql.ansi.enabled": "true",
    # Instants as Parquet INT64 micros adjusted to UTC, which DuckDB reads as TIMESTAMPTZ.
    # Spark's default, INT96, reads back as a naive TIMESTAMP: an instant would lose its kind.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # createDataFrame(pandas) / toPandas through Arrow (mapInArrow and applyInArrow always are).
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


# Inputs below this size get a local JVM with only the JIT's quick tier (_local_settings).
QUICK_JIT_BELOW = 16 * 1024 * 1024


def is_local(master: str) -> bool:
    return bool(LOCAL_MASTER.match(master.strip()))


def check_master(master: str | None) -> None:
    """A usage error for a master Spark would refuse, before a JVM is started for it."""
    if master is not None and not (is_local(master) or CLUSTER_MASTER.match(master.strip())):
        raise ConfigError(
            f"--spark-master {master!r} is not a Spark master: local, local[N], local[N,F] (N, F at least 1), "
            "local[*], spark://HOST:PORT, yarn or k8s://URL"
        )


def build_session(
    master: str | None = None,
    *,
    shards: int | None = None,
    app_name: str = "omneo-bulk",
    log_level: str = "ERROR",
    settings: dict[str, str] | None = None,
    jvm_output: Callable[[str], None] | None = None,
    input_bytes: int | None = None,
):
    """A SparkSession for the engine: `master` (default: the submitter's, else local[*,2]).

    `shards` sets `spark.sql.shuffle.partitions`, the partitions of every shuffle by shard.
    `settings` are applied last (e.g. `{"spark.driver.memory": "4g"}`). A session already
    running in this process is reused (its static settings stay as they were).
    `jvm_output`, when this process starts the JVM, is given each line the JVM and its
    Python workers write to stderr (the command's log prints them in its own format).
    `input_bytes`, the size of the inputs, lets a local JVM skip its optimising compiler
    when they are small (`QUICK_JIT_BELOW`).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "--engine spark needs PySpark: pip install 'omneo-bulk[spark]' (and Java 17)"
        ) from None
    check_master(master)
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ or SparkSession.getActiveSession() is not None
    if master is None and not submitted:
        master = DEFAULT_LOCAL_MASTER
    chosen = dict(SQL_SETTINGS)
    if master is not None and is_local(master):
        require_java()
        chosen.update(_local_settings(settings or {}, quick=input_bytes is not None and input_bytes < QUICK_JIT_BELOW))
    if shards is not None:
        chosen["spark.sql.shuffle.partitions"] = str(shards)
    # The caller's last; a local session's Java options already hold theirs (_local_settings).
    merged = "spark.driver.extraJavaOptions" if "spark.driver.extraJavaOptions" in chosen else None
    chosen.update({key: value for key, value in (settings or {}).items() if key != merged})
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    for key, value in chosen.items():
        builder = builder.config(key, value)
    launches = jvm_output is not None and not submitted and master is not None and is_local(master)
    try:
        if launches:
            with _stderr_to(jvm_output):
                spark = builder.getOrCreate()
        else:
            spark = builder.getOrCreate()
    except Exception as error:  # the JVM did not start, or the master did not answer
        from pipeline.errors import SparkError, first_line

        raise SparkError(f"Spark could not start a session on {master or 'the submitter'}'s master: "
                         f"{first_line(error)}") from None
    # A reused session keeps its static settings, but SQL settings can still be set.
    for key, value in SQL_SETTINGS.items():
        spark.conf.set(key, value)
    if shards is not None:
        spark.conf.set("spark.sql.shuffle.partitions", str(shards))
    spark.sparkContext.setLogLevel(log_level)
    return spark


@contextmanager
def _stderr_to(handle: Callable[[str], None]) -> Iterator[None]:
    """While the JVM starts, this process's stderr is a pipe whose lines go to `handle`.

    The JVM inherits the pipe as its stderr for life (and so do its Python workers); this
    process gets its own stderr back as soon as the JVM is up. A thread reads the pipe from
    the start, so a chatty JVM never fills it, and holds what it reads until then: `handle`
    prints to stderr, which until then is the pipe itself.
    """
    read_end, write_end = os.pipe()
    held: list[str] | None = []  # None once stderr is this process's own again
    lock = threading.Lock()

    def forward() -> None:
        with os.fdopen(read_end, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                with lock:
                    if held is not None:
                        held.append(line.rstrip("\n"))
                        continue
                handle(line.rstrip("\n"))

    threading.Thread(target=forward, name="jvm-stderr", daemon=True).start()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write_end)
        with lock:
            lines, held = held, None
        for line in lines:
            handle(line)


def _local_settings(settings: dict[str, str], quick: bool = False) -> dict[str, str]:
    """What a local session needs: this Python for workers, loopback only, a quiet driver."""
    # The JVM is started by this process and inherits its environment: binding to loopback
    # here also silences "hostname resolves to a loopback address".
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Without it, workers run `python3` from PATH, which may lack pyarrow and duckdb.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    log_config = resources.files("pipeline.spark").joinpath("log4j2.properties")
    # On small inputs, the JIT's quick tier only: the JVM then mostly plans small jobs, and
    # the optimising tier's compiling was 40% of the CPU of a validate of sample_data/
    # (22.7 s against 37.6 s, 2026-12-02). On large ones the JVM moves every row a shard
    # gets, and needs that tier: at 1M profiles (86 MB) on 8 shards the issue stage took
    # 52.0 s with the quick tier alone, 24.3 s with both. The caller's options come after.
    java_options = "-XX:TieredStopAtLevel=1" if quick else ""
    if settings.get("spark.driver.extraJavaOptions"):
        java_options = f"{java_options} {settings['spark.driver.extraJavaOptions']}"
    java_options = f"{java_options} -Dlog4j2.configurationFile=file:{log_config}".strip()
    return {
        "spark.pyspark.python": os.environ["PYSPARK_PYTHON"],
        "spark.pyspark.driver.python": sys.executable,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": java_options,
    }


def require_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and not os.path.exists(os.path.join(java_home, "bin", "java")):
        # Spark's launcher takes JAVA_HOME before PATH: a stale one fails with a shell error.
        raise ConfigError(f"JAVA_HOME {java_home} holds no bin/java; point it at a Java 17 runtime, or unset it")
    if shutil.which("java") is None and not java_home:
        raise ConfigError(
            "--engine spark in local mode needs Java 17 (java on PATH or JAVA_HOME); "
            "on Debian: apt-get install openjdk-17-jre-headless"
        )
