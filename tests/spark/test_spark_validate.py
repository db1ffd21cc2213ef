"""The validate stage on Spark, as a library call, against the default engine: every
validated and rejected row, every column type and every per-file count equal on a folder of
parts (keys repeated across files, an extra column typed differently per file, an empty
part, one dataset split across CSV and Parquet); and the same when a task fails once,
raising or with its worker killed. The sample exports and 20,000 generated profiles are
compared by command, a whole night each, in test_spark_engine.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import db
from pipeline.spark.shard import FailOnce
from pipeline.spark.validate import validate
from spark.compare import assert_same_outputs

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2026-11-22T09:00:00+11:00"


def cli(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    sample = root / "sample"
    shutil.copytree(REPO / "sample_data", sample)
    cli("generate", "--out", str(root / "source"), "--profiles", "5000", "--seed", "3", "--format", "parquet", "-q")
    parts = _parts(root / "source", root / "parts")
    # Fewer files: a part gone, and no returns at all (the dataset must still be there, empty).
    fewer = root / "fewer"
    shutil.copytree(parts, fewer)
    (fewer / "profiles" / "part-2.parquet").unlink()
    (fewer / "returns.parquet").unlink()
    return {"sample": sample, "parts": parts, "fewer": fewer}


def _parts(source: Path, parts: Path) -> Path:
    """Profiles as four Parquet parts (1,000 keys in two files, an extra column INTEGER in one
    part and VARCHAR in another, an empty part); benefits as one CSV and one Parquet file."""
    shutil.copytree(source, parts)
    (parts / "profiles.parquet").unlink()
    (parts / "benefits.parquet").unlink()
    (parts / "profiles").mkdir()
    con = db.connect(threads=1)
    con.execute(f"CREATE TABLE p AS SELECT *, row_number() OVER () AS n FROM read_parquet({db.literal(str(source / 'profiles.parquet'))})")
    con.execute(f"CREATE TABLE b AS SELECT *, row_number() OVER () AS n FROM read_parquet({db.literal(str(source / 'benefits.parquet'))})")
    for number, select in enumerate([
        "SELECT * EXCLUDE (n) FROM p WHERE n <= 2000",
        "SELECT * EXCLUDE (n), CAST(n AS INTEGER) AS loyalty_score FROM p WHERE n > 1000 AND n <= 4000",
        "SELECT * EXCLUDE (n), 'x' || n AS loyalty_score FROM p WHERE n > 4000",
        "SELECT * EXCLUDE (n) FROM p WHERE false",
    ]):
        con.execute(f"COPY ({select}) TO {db.literal(str(parts / 'profiles' / f'part-{number}.parquet'))}")
    con.execute(f"COPY (SELECT * EXCLUDE (n) FROM b WHERE n <= 2000) TO {db.literal(str(parts / 'benefits-a.csv'))} (HEADER)")
    con.execute(f"COPY (SELECT * EXCLUDE (n) FROM b WHERE n > 1500) TO {db.literal(str(parts / 'benefits-b.parquet'))}")
    con.close()
    return parts


def default_engine(export: Path, out: Path) -> list[dict]:
    cli("validate", "--input", str(export), "--out", str(out), "--max-reject-ratio", "1", "-q")
    return json.loads((out / "manifest.json").read_text())["inputs"]


def counts(records: list[dict], path_key: str) -> list[tuple]:
    return sorted((r["dataset"], r[path_key], r["sha256"], r["rows_read"], r["accepted"], r["rejected"]) for r in records)


def test_spark_validate_equals_the_default_engine_on_a_folder_of_parts(spark, exports, tmp_path):
    """(sample_data/ and 20,000 generated profiles: tests/spark/test_spark_engine.py, by command.)"""
    expected = default_engine(exports["parts"], tmp_path / "default")
    done = validate(spark, exports["parts"], tmp_path / "spark", "UTC")
    found = done.files
    # What the call says it wrote is what is there, row for row: the run folder lists it.
    written = sorted(p.relative_to(tmp_path / "spark").as_posix() for p in (tmp_path / "spark").rglob("*.parquet")
                     if p.is_file())
    assert sorted(done.outputs) == written
    con = db.connect(threads=1)
    for relative, rows in done.outputs.items():
        assert db.scalar(con, f"SELECT count(*) FROM read_parquet({db.literal(str(tmp_path / 'spark' / relative))})") == rows
    con.close()
    assert counts(found, "display") == counts(expected, "path")
    # In the manifest's order: dataset by dataset, then file by file.
    assert [(r["dataset"], r["display"]) for r in found] == [(r["dataset"], r["path"]) for r in expected]
    assert sum(r["rejected"] for r in found) > 0, "no row was rejected: the rules were not exercised"
    assert_same_outputs(tmp_path / "default", tmp_path / "spark")
    assert not (tmp_path / "spark" / ".spark-scratch").exists()


@pytest.mark.parametrize("kill", [False, True], ids=["raises", "worker_killed"])
def test_a_file_task_that_fails_once_is_retried_and_the_outputs_are_the_same(spark, exports, tmp_path, kill):
    expected = default_engine(exports["parts"], tmp_path / "default")
    marker = tmp_path / "failed-once"
    found = validate(spark, exports["parts"], tmp_path / "spark", "UTC", fail_once=FailOnce(1, str(marker), kill=kill)).files
    assert marker.exists(), "the task never failed: the test proves nothing"
    assert counts(found, "display") == counts(expected, "path")
    assert_same_outputs(tmp_path / "default", tmp_path / "spark")


def test_a_second_call_into_the_same_folder_with_fewer_files_leaves_nothing_of_the_first(spark, exports, tmp_path):
    """The first call's parts are gone (a left-over part would read as accepted rows), and a
    dataset with no file still has its validated folder, empty, with every declared column."""
    validate(spark, exports["parts"], tmp_path / "spark", "UTC")
    expected = default_engine(exports["fewer"], tmp_path / "default")
    found = validate(spark, exports["fewer"], tmp_path / "spark", "UTC").files
    assert "returns" not in {r["dataset"] for r in found}
    assert counts(found, "display") == counts(expected, "path")
    assert_same_outputs(tmp_path / "default", tmp_path / "spark")


def test_an_out_path_spark_would_read_as_a_glob_is_refused_before_anything_runs(spark, exports, tmp_path):
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match=r"without any of \[ \] \* \?"):
        validate(spark, exports["sample"], tmp_path / "runs[1]", "UTC")
    assert not (tmp_path / "runs[1]").exists()
