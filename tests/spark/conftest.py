"""One Spark session for every Spark test of a pytest process (a JVM takes seconds to start).

`make test` runs these tests in one process of their own (`make test-spark`), so one
session serves them all; under `pytest -n N` each worker that draws one starts its own.
Tests batch their work: a Spark job costs about half a second even on a few rows.
"""

from __future__ import annotations

import shutil

import pytest

# Two cores, two attempts per task: a shard that fails once is retried, as on a cluster.
MASTER = "local[2,2]"
SHARDS = 4


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark", reason="needs the spark extra: pip install -e '.[test,spark]'")
    if shutil.which("java") is None:
        pytest.skip("needs Java 17 (make java)")
    from pipeline.spark.session import build_session

    # The tests' inputs are small: the JVM's quick JIT tier, as a command on them gets.
    session = build_session(MASTER, shards=SHARDS, app_name="omneo-bulk-tests", log_level="OFF", input_bytes=0)
    yield session
    session.stop()
