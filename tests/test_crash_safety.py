"""A `run` SIGKILLed at any instant, then rerun, ends exactly where a clean run would.

Each trial starts a real `omneo-bulk run` subprocess on generated exports and kills it:
at a named instant (`pipeline/failpoints.py`: between every state write, payload write and
commit step) or after a fraction of a clean run's wall time. Then it checks the killed
folder (its manifest describes the disk; the state calls emitted only listed benefits) and
reruns:

- into the same folder (the same run, resumed): every output ends byte-identical to the
  clean run's;
- into a new folder (a new run): the benefits listed in the killed folder and in the new
  one are together the clean run's, each exactly once. A campaign's `limit` is per run, so
  a new run may rightly issue more: these trials use the campaigns without their limits.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from pipeline import failpoints
from pipeline.runfolder import RunFolder

AS_OF = "2026-11-22T09:00:00+11:00"
OMNEO_BULK = str(Path(sys.executable).with_name("omneo-bulk"))
# Outputs that name the run or the moment they were made; every other one must be identical.
OWN_BYTES = {"manifest.json", "report.html", "report.md", "warehouse.duckdb"}

# Named instants, in run order. `name@n` is the n-th time the point is reached: a run
# commits validate (1), issue (2), reconcile (3), report (4 and 5), then marks itself complete (6).
POINTS = [
    "validated_staged",
    "commit_journaled@1",
    "commit_moving@1",
    "commit_manifest_written@1",
    "payloads_staged",
    "state_pending",
    "commit_journaled@2",
    "commit_moving@2",
    "commit_manifest_written@2",
    "issue_committed",
    "state_emitted",
    "reconcile_staged",
    "commit_moving@3",
    "report_staged",
    "commit_journaled@6",
]
FRACTIONS = [0.2, 0.35, 0.5, 0.65, 0.8, 0.95]


def environment(kill_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNEO_BULK")}
    if kill_at:
        env[failpoints.VARIABLE] = kill_at
    return env


def command(campaigns: Path, out: Path, state: Path) -> list[str]:
    return [OMNEO_BULK, "run", "--input", str(campaigns.parent), "--campaigns", str(campaigns),
            "--out", str(out), "--state", str(state), "--as-of", AS_OF, "--max-reject-ratio", "1", "-q"]


def run(campaigns: Path, out: Path, state: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command(campaigns, out, state), env=environment(kill_at), capture_output=True,
                          text=True, timeout=300)


def kill_after(campaigns: Path, out: Path, state: Path, seconds: float) -> int:
    process = subprocess.Popen(command(campaigns, out, state), env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
    return process.wait()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def listed_payloads(folder: Path) -> list[Path]:
    """The benefit payload files the folder's manifest lists (none without a manifest)."""
    if not (folder / "manifest.json").exists():
        return []
    return [folder / o["path"] for o in manifest(folder)["outputs"] if o["path"].startswith("payloads/benefits/")]


def benefit_ids(files: list[Path]) -> list[str]:
    """Every benefit external_id in these payload files, repeats kept."""
    ids = []
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            body = json.loads(line)["body"]
            ids += [b["external_id"] for b in body.get("benefits", [body])]
    return ids


def emitted(state: Path) -> set[str]:
    files = [p for p in (state / "issued").glob("*.parquet") if not p.name.endswith(".pending.parquet")]
    return set(pl.concat([pl.read_parquet(f) for f in files])["external_id"]) if files else set()


def outputs(folder: Path) -> dict[str, str]:
    return {o["path"]: o["sha256"] for o in manifest(folder)["outputs"] if o["path"] not in OWN_BYTES}


def assert_folder_is_true(folder: Path) -> None:
    """The manifest lists exactly the finished files on disk, each with its sha256."""
    if not folder.exists():
        return
    # A kill inside a commit leaves its journal; any command into the folder finishes it first.
    RunFolder.open(folder).close()
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
               if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}
    if not (folder / "manifest.json").exists():
        assert on_disk == set(), "finished files with no manifest to list them"
        return
    listed = {o["path"]: o["sha256"] for o in manifest(folder)["outputs"]}
    assert on_disk - {"manifest.json"} == set(listed), "listed and finished files differ"
    for path, digest in listed.items():
        assert sha256(folder / path) == digest, path


def assert_no_leftovers(folder: Path) -> None:
    hidden = [p.relative_to(folder).as_posix() for p in folder.rglob(".*")]
    assert hidden == [], f"temporary files left behind: {hidden}"


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crash") / "exports"
    generated = subprocess.run([OMNEO_BULK, "generate", "--out", str(folder), "--profiles", "3000", "--seed", "5",
                                "-q"], env=environment(), capture_output=True, text=True)
    assert generated.returncode == 0, generated.stderr
    text = (folder / "campaigns.toml").read_text(encoding="utf-8")
    assert "\nlimit = " in text  # the resumed trials hold a per-run limit across the kill
    unlimited = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("limit = "))
    (folder / "campaigns-unlimited.toml").write_text(unlimited, encoding="utf-8")
    return folder


def clean_run(campaigns: Path, root: Path) -> dict:
    """The uninterrupted run every trial is held to, and how long it took."""
    started = time.monotonic()
    result = run(campaigns, root / "run", root / "state")
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    ids = benefit_ids(listed_payloads(root / "run"))
    assert len(ids) > 100 and len(set(ids)) == len(ids)
    return {"campaigns": campaigns, "seconds": seconds, "ids": set(ids), "outputs": outputs(root / "run")}


@pytest.fixture(scope="module")
def clean(exports: Path, tmp_path_factory) -> dict[str, dict]:
    """Clean runs for each rerun kind: with the campaigns' limits (same_out) and without (new_out)."""
    return {
        "same_out": clean_run(exports / "campaigns.toml", tmp_path_factory.mktemp("clean")),
        "new_out": clean_run(exports / "campaigns-unlimited.toml", tmp_path_factory.mktemp("clean")),
    }


def check_killed(out: Path, state: Path) -> None:
    assert_folder_is_true(out)
    # The state calls emitted only benefits whose payloads are in place and listed.
    assert emitted(state) <= set(benefit_ids(listed_payloads(out)))


def rerun_in_same_folder(out: Path, state: Path, clean: dict) -> None:
    result = run(clean["campaigns"], out, state)
    assert result.returncode == 0, result.stderr
    assert manifest(out)["status"] == "complete"
    assert outputs(out) == clean["outputs"]
    assert emitted(state) == clean["ids"]
    assert_folder_is_true(out)
    assert_no_leftovers(out)


def rerun_in_new_folder(killed: Path, state: Path, clean: dict) -> None:
    fresh = killed.with_name("next")
    result = run(clean["campaigns"], fresh, state)
    assert result.returncode == 0, result.stderr
    assert_folder_is_true(killed)  # finishes a commit the kill interrupted, as any command would
    ids = benefit_ids(listed_payloads(killed)) + benefit_ids(listed_payloads(fresh))
    assert sorted(ids) == sorted(clean["ids"]), "a benefit is missing or emitted twice"
    assert emitted(state) == clean["ids"]
    assert_no_leftovers(fresh)


@pytest.mark.parametrize("rerun", ["same_out", "new_out"])
@pytest.mark.parametrize("point", POINTS)
def test_killed_at_a_named_instant(clean, tmp_path, point, rerun):
    out, state = tmp_path / "run", tmp_path / "state"

    killed = run(clean[rerun]["campaigns"], out, state, kill_at=point)

    assert killed.returncode == -signal.SIGKILL, f"never reached {point}: {killed.stderr}"
    check_killed(out, state)
    if rerun == "same_out":
        rerun_in_same_folder(out, state, clean[rerun])
    else:
        rerun_in_new_folder(out, state, clean[rerun])


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_killed_at_any_moment(clean, tmp_path, fraction):
    # Wherever the kill lands (or after the run, if it was quicker this time), a new run
    # completes the night: together the two folders list each benefit exactly once.
    out, state, reference = tmp_path / "run", tmp_path / "state", clean["new_out"]

    kill_after(reference["campaigns"], out, state, reference["seconds"] * fraction)

    check_killed(out, state)
    rerun_in_new_folder(out, state, reference)


@pytest.mark.parametrize("fraction", FRACTIONS[:3])
def test_killed_at_any_moment_then_resumed(clean, tmp_path, fraction):
    out, state, reference = tmp_path / "run", tmp_path / "state", clean["same_out"]

    code = kill_after(reference["campaigns"], out, state, reference["seconds"] * fraction)
    assert code == -signal.SIGKILL, "the run finished before the kill: nothing to resume"

    check_killed(out, state)
    rerun_in_same_folder(out, state, reference)


def test_kill_points_cover_every_failpoint():
    assert {p.partition("@")[0] for p in POINTS} == set(failpoints.POINTS)


def test_leftovers_of_a_killed_run_are_removed_by_the_next(clean, tmp_path):
    out, state, reference = tmp_path / "run", tmp_path / "state", clean["same_out"]
    assert run(reference["campaigns"], out, state, kill_at="reconcile_staged").returncode == -signal.SIGKILL
    (out / "payloads" / "benefits" / ".part-00000.ndjson.tmp-4242").write_text("half", encoding="utf-8")
    (out / ".warehouse.duckdb.tmp-4242.wal").write_text("log", encoding="utf-8")
    assert (out / ".staging").is_dir() and (out / ".tmp").is_dir()

    rerun_in_same_folder(out, state, reference)
