"""Issuance state that outlives a run: every benefit this project has emitted.

`<state>/issued.parquet` holds one row per emitted external_id. It is read before
planning (so a rerun before Omneo's export catches up emits nothing twice) and replaced
atomically, with the new rows added, only after a run has written everything else.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from pipeline.db import copy_atomic
from pipeline.errors import StateInUse

STATE_FILE = "issued.parquet"
LOCK_FILE = "lock"
STATE_DDL = """(
    external_id VARCHAR, profile_id VARCHAR, definition_id BIGINT, issued_at_utc TIMESTAMPTZ,
    expires_at_utc TIMESTAMPTZ, max_redemptions BIGINT, campaign_id VARCHAR, run_id VARCHAR)"""


@contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the state folder for one run; a second run that shares it stops at once.

    Two runs planning from the same state would both see a benefit as not yet emitted and
    both emit it. The lock is the kernel's (flock): it goes with the process, so a killed
    run never leaves the folder locked. The file says who holds it, for the error message.
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
        yield
    finally:
        handle.close()  # closing releases the lock


def load(con: duckdb.DuckDBPyConnection, state_dir: Path) -> None:
    """Create table `issuance_state` from the state folder (empty when there is none yet)."""
    path = state_dir / STATE_FILE
    con.execute(f"CREATE OR REPLACE TABLE issuance_state {STATE_DDL}")
    if path.exists():
        con.execute("INSERT INTO issuance_state SELECT * FROM read_parquet(?)", [str(path)])


def record(con: duckdb.DuckDBPyConnection, state_dir: Path, run_id: str) -> int:
    """Add this run's issued plan rows to the state file; return how many were added."""
    added = con.execute(
        """
        INSERT INTO issuance_state
        SELECT p.external_id, p.profile_id, p.definition_id, p.issued_at_utc, p.expires_at_utc,
               d.max_redemptions, p.campaign_id, ?
        FROM plan p JOIN benefit_definitions d ON d.id = p.definition_id
        WHERE p.decision = 'issue'
          AND p.external_id NOT IN (SELECT external_id FROM issuance_state)
        """,
        [run_id],
    ).fetchall()[0][0]
    copy_atomic(con, "SELECT * FROM issuance_state", state_dir / STATE_FILE, "FORMAT parquet")
    return added
