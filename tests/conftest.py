"""Shared test helpers: tiny input folders built in tmp_path, CLI runs, outputs read back.

Every test builds its own fixture files inline; nothing here knows about a particular test.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result

from pipeline.cli import main

# Every dataset the validate stage writes, whether or not it had an input file.
DATASET_NAMES = (
    "profiles",
    "benefit_definitions",
    "benefits",
    "redemptions",
    "redemption_items",
    "returns",
    "transactions",
)
REJECT_COLUMNS = ["dataset", "source_file", "source_row", "column", "check", "value", "reason", "detail"]


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """An OMNEO_BULK_* variable in the developer's shell must not change a test's outcome."""
    import os

    for name in list(os.environ):
        if name.startswith("OMNEO_BULK"):
            monkeypatch.delenv(name)


@pytest.fixture
def input_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def write_csv(folder: Path, name: str, rows: Iterable[Sequence[object]]) -> Path:
    """Write rows (the header first) as CSV with the csv module; None becomes an empty field."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    return write_file(folder, name, buffer.getvalue())


def write_file(folder: Path, name: str, content: str | bytes) -> Path:
    """Write text (UTF-8, exactly as given) or bytes to folder/name, creating subfolders."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


def write_ndjson(folder: Path, name: str, objects: Iterable[object]) -> Path:
    return write_file(folder, name, "".join(json.dumps(o) + "\n" for o in objects))


def invoke(args: Sequence[str], env: dict[str, str] | None = None) -> Result:
    """Run `omneo-bulk <args>` in-process, as a user would from a shell."""
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def validate(input_dir: Path, run_dir: Path, *options: str) -> Result:
    """`omneo-bulk validate --input … --out …` with a reject ratio that never stops the run.

    Tests about the ratio itself pass their own --max-reject-ratio, which comes last and wins.
    """
    return invoke(["validate", "--input", input_dir, "--out", run_dir, "--max-reject-ratio", "1", *options])


def read_rejects(run_dir: Path, dataset: str) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "rejects" / f"{dataset}.parquet")


def read_validated(run_dir: Path, dataset: str) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "validated" / f"{dataset}.parquet")


def read_manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))


def reasons_by_row(rejects: pl.DataFrame) -> dict[int, set[str]]:
    """source_row → the set of reasons its reject rows give (one file per test)."""
    found: dict[int, set[str]] = {}
    for row in rejects.iter_rows(named=True):
        found.setdefault(row["source_row"], set()).add(row["reason"])
    return found


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_ok(result: Result) -> None:
    """Exit 0, with the output shown when it is not (the traceback of a crash included)."""
    assert result.exit_code == 0, (result.output, result.exception)
