"""Issuance state that outlives a run: every benefit this project has emitted.

`<state>/issued/<run_id>.parquet` holds the benefits one run emitted, one row per
external_id. A run first writes its rows as `<run_id>.pending.parquet`, whose metadata
names its run folder and the commit that will list the payloads there; only after that
commit is the file renamed to `<run_id>.parquet` (emitted). A pending file left by a
killed run is settled by the next run that holds the state: promoted when its commit
reached the run folder, removed when it did not. So the state says "emitted" only for
payloads that are in place and listed. See docs/runs.md.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from pipeline import db, failpoints, runfolder
from pipeline.errors import RunFolderError, StateError, StateInUse, first_line
from pipeline.files import TEMPORARY, atomic_path, fsync_dir

ISSUED = "issued"
PENDING = ".pending.parquet"
LEGACY_FILE = "issued.parquet"  # the one-file state of earlier versions, read as emitted
LOCK_FILE = "lock"
STATE_DDL = """(
    external_id VARCHAR, profile_id VARCHAR, definition_id BIGINT, issued_at_utc TIMESTAMPTZ,
    expires_at_utc TIMESTAMPTZ, max_redemptions BIGINT, campaign_id VARCHAR, run_id VARCHAR)"""
STATE_COLUMNS = "external_id, profile_id, definition_id, issued_at_utc, expires_at_utc, max_redemptions, campaign_id, run_id"


@contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the state folder for one run; a second run that shares it stops at once.

    Two runs planning from the same state would both see a benefit as not yet emitted and
    both emit it. The lock is the kernel's (flock): it goes with the process, so a killed
    run never leaves the folder locked. The file says who holds it, for the error message.
    Holding it, the run clears the temporary files a killed run left in the folder.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / LOCK_FILE, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StateInUse(
                f"state folder {state_dir} is in use by another run ({holder}); two runs sharing "
                "one state could issue the same benefit twice: wait for it, or give this run its own --state"
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n")
        handle.flush()
        for root, _folders, files in os.walk(state_dir):
            for name in files:
                if TEMPORARY.match(name):
                    (Path(root) / name).unlink(missing_ok=True)
        yield
    finally:
        handle.close()  # closing releases the lock


def settle(con: duckdb.DuckDBPyConnection, state_dir: Path) -> None:
    """Promote or remove the pending files killed runs left, by what their run folder shows."""
    for pending in sorted((state_dir / ISSUED).glob(f"*{PENDING}")):
        run_id = pending.name.removesuffix(PENDING)
        metadata = _metadata(con, pending)
        try:
            done = runfolder.committed(Path(metadata.get("run_dir", "")), metadata.get("commit_id", ""))
        except RunFolderError as error:
            raise StateError(
                f"{pending}: cannot tell whether run {run_id} listed its payloads ({error})"
            ) from None
        if done:
            promote(state_dir, run_id)
        else:
            pending.unlink()
            fsync_dir(pending.parent)


def load(con: duckdb.DuckDBPyConnection, state_dir: Path, resumed_run: str | None = None) -> None:
    """Create table `issuance_state` from the emitted files (empty when there are none).

    A resumed run's own file is left out: the rerun plans afresh, as the run it continues
    did, and replaces that file when it commits.
    """
    files = emitted_files(state_dir)
    if resumed_run is not None:
        files = [f for f in files if f.name != f"{resumed_run}.parquet"]
    con.execute(f"CREATE OR REPLACE TABLE issuance_state {STATE_DDL}")
    for file in files:
        try:
            con.execute(
                f"INSERT INTO issuance_state BY NAME SELECT {STATE_COLUMNS} FROM read_parquet({db.path_literal(file)})"
            )
        except duckdb.Error as error:
            raise _unreadable(file, state_dir, error) from None


def emitted_files(state_dir: Path) -> list[Path]:
    """Every file whose benefits count as emitted: one per run, and an earlier version's."""
    folder = state_dir / ISSUED
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.endswith(PENDING)) if folder.is_dir() else []
    legacy = state_dir / LEGACY_FILE
    return ([legacy] if legacy.is_file() else []) + files


def stage(con: duckdb.DuckDBPyConnection, state_dir: Path, run_id: str, run_dir: Path, commit_id: str) -> int:
    """Write tonight's issued plan rows as pending, naming the commit that will list them."""
    metadata = f"run_dir: {db.literal(run_dir.resolve())}, commit_id: {db.literal(commit_id)}"
    with atomic_path(state_dir / ISSUED / f"{run_id}{PENDING}") as temporary:
        rows = db.scalar(
            con,
            f"""COPY (
                SELECT p.external_id, p.profile_id, p.definition_id, p.issued_at_utc, p.expires_at_utc,
                       d.max_redemptions, p.campaign_id, ? AS run_id
                FROM plan p JOIN benefit_definitions d ON d.id = p.definition_id
                WHERE p.decision = 'issue'
            ) TO {db.literal(temporary)} (FORMAT parquet, KV_METADATA {{{metadata}}})""",
            [run_id],
        )
    failpoints.reach("state_pending")
    return rows


def promote(state_dir: Path, run_id: str) -> None:
    """The run's payloads are listed in its folder: its pending benefits are emitted now."""
    folder = state_dir / ISSUED
    os.replace(folder / f"{run_id}{PENDING}", folder / f"{run_id}.parquet")
    fsync_dir(folder)
    failpoints.reach("state_emitted")


def prune(con: duckdb.DuckDBPyConnection, state_dir: Path, keep_run: str) -> int:
    """Drop emitted rows the benefits export now shows: Omneo's export is their authority from then on.

    Holdings already ignore such rows (holdings.sql), so the state only stops growing. Each
    file with confirmed rows is rewritten atomically, or removed when all are confirmed;
    `keep_run`'s own file (tonight's) is never touched. Returns the rows dropped.
    """
    files = [f for f in emitted_files(state_dir) if f.name != f"{keep_run}.parquet"]
    if not files:
        return 0
    con.execute("CREATE OR REPLACE TEMP TABLE confirmed AS SELECT DISTINCT external_id FROM benefits "
                "WHERE external_id IS NOT NULL")
    dropped = 0
    for file in files:
        source = db.path_literal(file)
        try:
            total, seen = db.rows(con, f"SELECT count(*), count(*) FILTER (WHERE external_id IN "
                                       f"(SELECT external_id FROM confirmed)) FROM read_parquet({source})")[0]
        except duckdb.Error as error:
            raise _unreadable(file, state_dir, error) from None
        if not seen:
            continue
        if seen == total:
            file.unlink()
            fsync_dir(file.parent)
        else:
            with atomic_path(file) as temporary:
                con.execute(f"COPY (SELECT * FROM read_parquet({source}) WHERE external_id NOT IN "
                            f"(SELECT external_id FROM confirmed)) TO {db.literal(temporary)} (FORMAT parquet)")
        dropped += seen
    con.execute("DROP TABLE confirmed")
    return dropped


def forget(con: duckdb.DuckDBPyConnection, state_dir: Path, run_id: str, external_ids: list[str]) -> int:
    """Omneo refused these benefits: the state stops counting them, so the next run may issue them.

    They leave the run's emitted file (rewritten atomically); return how many were there.
    """
    path = state_dir / ISSUED / f"{run_id}.parquet"
    if not path.exists() or not external_ids:
        return 0
    source = db.path_literal(path)
    con.execute("CREATE OR REPLACE TEMP TABLE forgotten (external_id VARCHAR)")
    con.executemany("INSERT INTO forgotten VALUES (?)", [[i] for i in external_ids])
    before = db.scalar(con, f"SELECT count(*) FROM read_parquet({source})")
    with atomic_path(path) as temporary:
        kept = db.scalar(
            con,
            f"COPY (SELECT * FROM read_parquet({source}) WHERE external_id NOT IN (SELECT external_id FROM forgotten)) "
            f"TO {db.literal(temporary)} (FORMAT parquet)",
        )
    con.execute("DROP TABLE forgotten")
    return before - kept


def _metadata(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    try:
        pairs = db.rows(
            con, f"SELECT decode(key), decode(value) FROM parquet_kv_metadata({db.path_literal(path)})"
        )
    except duckdb.Error as error:
        raise _unreadable(path, path.parent.parent, error) from None
    return dict(pairs)


def _unreadable(file: Path, state_dir: Path, error: Exception) -> StateError:
    return StateError(
        f"{file}: issuance state file cannot be read ({first_line(error)}). Restore it from a backup; only if every "
        f"benefit it lists shows in Omneo's benefits export, move it out of {state_dir} (without it, "
        "those benefits could be issued again)"
    )
