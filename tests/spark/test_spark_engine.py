"""`--engine spark` on the command line: the same run folder as the default engine's.

Each test starts real `omneo-bulk` processes, each with a Spark session of its own on
`local[2,2]`, as a user's scheduler would. A run on Spark must write what the default
engine writes: the same manifest counts, every payload, plan and reconciliation file
byte for byte, the same validated and rejected rows (validated/ as a folder of parts), and
a warehouse that answers the same. Killed at any instant and rerun, it ends where a clean
run on Spark does; a bad input file is the default engine's one line and exit status.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import failpoints
from pipeline.spark.shard import FAIL_ONCE_VARIABLE
from spark.compare import assert_same_outputs
from spark.conftest import MASTER

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
OMNEO_BULK = str(Path(sys.executable).with_name("omneo-bulk"))
AS_OF = "2026-11-22T09:00:00+11:00"
SPARK = ("--engine", "spark", "--spark-master", MASTER)
# Outputs that name the run or the moment they were made.
OWN_BYTES = {"report.html", "report.md", "warehouse.duckdb"}


def omneo(*args: str, kill_at: str | None = None, fail_once: str | None = None,
          timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNEO_BULK")}
    if kill_at:
        env[failpoints.VARIABLE] = kill_at
    if fail_once:
        env[FAIL_ONCE_VARIABLE] = fail_once
    return subprocess.run([OMNEO_BULK, *args], capture_output=True, text=True, env=env, timeout=timeout)


def night(export: Path, out: Path, *engine: str) -> list[str]:
    return ["run", "--input", str(export), "--campaigns", str(export / "campaigns.toml"), "--out", str(out),
            "--state", str(out.with_name(out.name + "-state")), "--as-of", AS_OF, "--max-reject-ratio", "1", "-q",
            *engine]


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def digests(folder: Path, skip=OWN_BYTES) -> dict[str, str]:
    return {o["path"]: o["sha256"] for o in manifest(folder)["outputs"] if o["path"] not in skip}


def stage_records(folder: Path) -> list[dict]:
    """Each stage's record without what names the run, its clock, its state folder or engine."""
    own = {"seconds", "run_id", "commit", "state", "state_relative", "engine"}
    return [{k: v for k, v in stage.items() if k not in own} for stage in manifest(folder)["stages"]]


def on_disk(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    shutil.copytree(REPO / "sample_data", root / "sample")
    result = omneo("generate", "--out", str(root / "generated"), "--profiles", "20000", "--seed", "7", "-q")
    assert result.returncode == 0, result.stderr
    return {"sample": root / "sample", "generated": root / "generated"}


@pytest.fixture(scope="module")
def clean(exports, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """A clean night of each export on each engine."""
    root = tmp_path_factory.mktemp("clean")
    folders = {}
    for name, export in exports.items():
        folders[name] = {"default": root / f"{name}-default", "spark": root / f"{name}-spark"}
        for engine, extra in (("default", ()), ("spark", SPARK)):
            result = omneo(*night(export, folders[name][engine], *extra))
            assert result.returncode == 0, result.stderr
    return folders


@pytest.mark.parametrize("export", ["sample", "generated"])
def test_a_night_on_spark_writes_what_the_default_engine_writes(clean, export):
    default, spark = clean[export]["default"], clean[export]["spark"]
    assert manifest(spark)["inputs"] == manifest(default)["inputs"]
    assert stage_records(spark) == stage_records(default)
    assert [s["engine"] for s in manifest(spark)["stages"] if s["stage"] == "validate"] == ["spark"]
    # The payloads, the plan and the reconciliation: byte for byte.
    written_alike = {p: d for p, d in digests(default).items() if not p.startswith(("validated/", "rejects/"))}
    assert any(p.startswith("payloads/benefits/") for p in written_alike), "no benefit call: nothing compared"
    assert {p: d for p, d in digests(spark).items() if p in written_alike} == written_alike
    # validated/: the same rows, as a folder of parts, each listed; nothing on disk unlisted.
    assert "validated/profiles.parquet/part-00001.parquet" in digests(spark)
    assert on_disk(spark) == sorted([*digests(spark, skip=()), "manifest.json"])
    assert_same_outputs(default, spark)
    # The analyst's warehouse hides the parts: the same answers.
    answers = [omneo("query", "--out", str(folder), "--format", "csv",
                     "SELECT * FROM summary UNION ALL SELECT 'x', 'profiles', count(*) FROM profiles")
               for folder in (default, spark)]
    assert answers[0].returncode == answers[1].returncode == 0, answers[1].stderr
    assert answers[1].stdout == answers[0].stdout
    assert "profiles" in answers[0].stdout


def test_a_night_on_spark_killed_amid_spark_then_amid_its_commit_then_rerun_ends_where_a_clean_one_does(
        exports, clean, tmp_path):
    """Killed while Spark's jobs run (the JVM and its Python workers die with the driver);
    the rerun killed while the validated parts move into place; then rerun to the end, with
    the Python worker of one file's task killed once (an executor lost), which Spark retries."""
    out = tmp_path / "night"
    started = time.monotonic()
    process = subprocess.Popen([OMNEO_BULK, *night(exports["sample"], out, *SPARK)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Past the session's start, inside Spark's jobs: the typed copies of the inputs begin.
    while not list(out.glob(".tmp/spark-*/scratch/typed")) and process.poll() is None \
            and time.monotonic() - started < 120:
        time.sleep(0.1)
    time.sleep(1)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the night ended before the kill: the test proves nothing"
    assert not (out / "manifest.json").exists()

    moving = omneo(*night(exports["sample"], out, *SPARK), kill_at="commit_moving@1")
    assert moving.returncode == -signal.SIGKILL, moving.stderr
    assert (out / ".commit.json").exists(), "killed before its commit: not the instant asked for"

    lost = tmp_path / "worker-lost-once"
    rerun = omneo(*night(exports["sample"], out, *SPARK), fail_once=f"1:{lost}:kill")
    assert rerun.returncode == 0, rerun.stderr
    assert lost.exists(), "no task failed: the retry was not exercised"
    assert digests(out) == digests(clean["sample"]["spark"])
    assert on_disk(out) == on_disk(clean["sample"]["spark"])


def test_a_spark_validate_into_a_folder_the_default_engine_wrote_replaces_its_files(exports, tmp_path):
    """The default engine's file validated/x.parquet gives way to the folder of parts of its
    name, in one commit, and back: no old file or part stays beside the new ones. The Spark
    run logs in JSON: every line, the JVM's own included, is one JSON object."""
    out = tmp_path / "folder"
    validate = ["validate", "--input", str(exports["sample"]), "--out", str(out), "--max-reject-ratio", "1"]
    listed = []
    for engine in (("-q",), (*SPARK, "--log-format", "json"), ("--engine", "duckdb", "-q")):
        result = omneo(*validate, *engine)
        assert result.returncode == 0, result.stderr
        if "json" in engine:
            lines = (result.stdout + result.stderr).splitlines()
            assert any(json.loads(line)["event"] == "manifest_written" for line in lines)
            for line in lines:
                assert isinstance(json.loads(line), dict), line
        assert on_disk(out) == sorted([*digests(out, skip=()), "manifest.json"])
        listed.append(sorted(digests(out)))
    assert "validated/profiles.parquet" in listed[0]
    assert "validated/profiles.parquet/part-00001.parquet" in listed[1]
    assert listed[2] == listed[0]


def test_a_damaged_input_file_on_spark_is_the_default_engines_one_line_and_exit(exports, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(exports["sample"], bad)
    (bad / "transactions.csv").unlink()
    (bad / "transactions.parquet").write_bytes(b"PAR1 but not Parquet at all")
    results = {engine: omneo("validate", "--input", str(bad), "--out", str(tmp_path / engine), *extra)
               for engine, extra in (("default", ()), ("spark", SPARK))}
    errors = {engine: [line for line in r.stderr.splitlines() if line.startswith("error:")] for engine, r in results.items()}
    assert errors["default"] == ["error: transactions.parquet: not a readable Parquet file (Parquet magic bytes not "
                                 "found in footer. Either the file is corrupted or this is not a parquet file.)"]
    assert errors["spark"] == errors["default"]
    assert results["spark"].returncode == results["default"].returncode == 1
    assert "Traceback" not in results["spark"].stderr and "Py4J" not in results["spark"].stderr
    assert not (tmp_path / "spark" / "manifest.json").exists()


def test_an_out_path_spark_would_read_as_a_pattern_is_refused_before_anything_runs(exports, tmp_path):
    out = tmp_path / "runs[1]"
    result = omneo("validate", "--input", str(exports["sample"]), "--out", str(out), *SPARK)
    assert result.returncode == 2
    assert f"error: --out {out}: the Spark engine needs a path without any of [ ] * ? {{ }} :" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("master", ["bogus", "local[0]", "local[2,x]"])
def test_a_master_spark_would_refuse_is_a_usage_error_before_anything_runs(exports, tmp_path, master):
    out = tmp_path / "night"
    result = omneo("validate", "--input", str(exports["sample"]), "--out", str(out), "--engine", "spark",
                   "--spark-master", master)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: --spark-master {master!r} is not a Spark master: local, local[N]")
    assert "Traceback" not in result.stderr and "at org.apache" not in result.stderr
    assert not out.exists()


def test_a_stale_java_home_is_a_usage_error_naming_it(exports, tmp_path):
    out = tmp_path / "night"
    env = {"JAVA_HOME": str(tmp_path / "no-java")}
    result = subprocess.run([OMNEO_BULK, "validate", "--input", str(exports["sample"]), "--out", str(out), *SPARK],
                            capture_output=True, text=True, env={**os.environ, **env})
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: JAVA_HOME {tmp_path / 'no-java'} holds no bin/java")
    assert not out.exists()


def test_the_memory_limit_holds_in_spark_tasks_and_its_fault_reads_as_the_default_engines(exports, tmp_path):
    results = [omneo("validate", "--input", str(exports["sample"]), "--out", str(tmp_path / name), "--memory-limit",
                     "2MB", *engine) for name, engine in (("duckdb", ()), ("spark", SPARK))]
    for result in results:
        assert result.returncode == 1
        [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert line.startswith("error: DuckDB ran out of memory under --memory-limit 2MB (Out of Memory Error: "), line
        assert line.count("(") == line.count(")"), line


def test_a_jvm_killed_under_a_night_is_one_line_saying_so(exports, tmp_path):
    """The OOM killer's way: Spark's JVM dies, the command names it (not the disk)."""
    out = tmp_path / "night"
    process = subprocess.Popen([OMNEO_BULK, *night(exports["sample"], out, *SPARK)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    while not list(out.glob(".tmp/spark-*/scratch/typed")) and process.poll() is None \
            and time.monotonic() - started < 120:
        time.sleep(0.1)
    jvms = subprocess.run(["pgrep", "-P", str(process.pid), "java"], capture_output=True, text=True).stdout.split()
    assert jvms, "no JVM under the command: the test proves nothing"
    for pid in jvms:
        os.kill(int(pid), signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "error: Spark's JVM stopped during the validate stage (killed, or out of memory?)" in stderr
    assert "hint: a rerun into the same --out picks up where it stopped" in stderr
    assert not (out / "manifest.json").exists()
