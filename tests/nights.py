"""Helpers for tests that run whole nights as a scheduler would: `omneo-bulk` subprocesses.

Each call is a real process with the developer's OMNEO_BULK_* settings and token unset;
the sample exports issue 62 benefits and a few corrective calls in about 2 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

TOKEN = "tok-5e2b9c0d7a4f4e1b8c3d6a9f0e2b4c7d"
AS_OF = "2026-11-22T09:00:00+11:00"
NEXT_NIGHT = "2026-11-23T09:00:00+11:00"
OMNEO_BULK = str(Path(sys.executable).with_name("omneo-bulk"))
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
# In the sample, the birthday campaign has a fixed issued_at; the welcome one is issued at --as-of.
BIRTHDAY_PROFILE = "00718dd1-9ac2-4728-a2bf-51d8c7e50080"
WELCOME_PROFILE = "4952a42a-12b7-47d5-a9f4-50f228d1c0e3"


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNEO_BULK") and k != "OMNEO_TOKEN"}
    return {**env, **extra}


def cli(*args: str, cwd: Path | None = None, token: str | None = TOKEN, timeout: float = 120,
        **extra: str) -> subprocess.CompletedProcess:
    env = environment(**({"OMNEO_TOKEN": token} if token else {}), **extra)
    return subprocess.run([OMNEO_BULK, *args], env=env, capture_output=True, text=True, cwd=cwd, timeout=timeout)


def make_run(out: Path, state: Path, *extra: str, as_of: str = AS_OF, exports: Path = SAMPLE) -> None:
    made = cli("run", "--input", str(exports), "--campaigns", str(exports / "campaigns.toml"), "--out", str(out),
               "--state", str(state), "--as-of", as_of, "--max-reject-ratio", "1", "-q", *extra)
    assert made.returncode == 0, made.stderr


# Fixtures for the modules that push finished nights; a module imports the ones it uses.

@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, Path]:
    """The sample exports run once per module: its run folder and state."""
    root = tmp_path_factory.mktemp("sample")
    make_run(root / "run", root / "state")
    return root / "run", root / "state"


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> tuple[Path, Path]:
    """The sample issued with --single --lines-per-file 1: 62 benefit calls, one per file."""
    root = tmp_path_factory.mktemp("single")
    make_run(root / "run", root / "state", "--single", "--lines-per-file", "1")
    return root / "run", root / "state"


@pytest.fixture
def copy(tmp_path):
    """A fresh copy of a finished run and its state, for one test to change."""
    def copied(made: tuple[Path, Path]) -> tuple[Path, Path]:
        run, state = made
        shutil.copytree(run, tmp_path / "run")
        shutil.copytree(state, tmp_path / "state")
        return tmp_path / "run", tmp_path / "state"
    return copied


def push(run: Path, state: Path | None, base_url: str, *extra: str, **kwargs) -> subprocess.CompletedProcess:
    args = ["push", "--out", str(run), "--base-url", base_url, *extra]
    if state is not None:
        args[3:3] = ["--state", str(state)]
    if "--queue-wait" not in extra:
        args += ["--queue-wait", "0"]
    return cli(*args, **kwargs)


def payload_ids(run: Path) -> list[str]:
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    ids = []
    for output in manifest["outputs"]:
        if output["path"].startswith("payloads/benefits/"):
            for line in (run / output["path"]).read_text(encoding="utf-8").splitlines():
                body = json.loads(line)["body"]
                ids += [b["external_id"] for b in body.get("benefits", [body])]
    return ids


def emitted(state: Path) -> set[str]:
    files = [f for f in (state / "issued").glob("*.parquet") if not f.name.endswith(".pending.parquet")]
    return set(pl.concat([pl.read_parquet(f) for f in files])["external_id"]) if files else set()


