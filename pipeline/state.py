"""Issuance state that outlives a run: every benefit this project has emitted.

`<state>/issued.parquet` holds one row per emitted external_id. It is read before
planning (so a rerun before Omneo's export catches up emits nothing twice) and replaced
atomically, with the new rows added, only after a run has written everything else.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.db import copy_atomic

STATE_FILE = "issued.parquet"
STATE_DDL = """(
    external_id VARCHAR, profile_id VARCHAR, definition_id BIGINT, issued_at_utc TIMESTAMPTZ,
    expires_at_utc TIMESTAMPTZ, max_redemptions BIGINT, campaign_id VARCHAR, run_id VARCHAR)"""


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
