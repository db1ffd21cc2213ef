"""The push journal: every call to Omneo and the state it is in, made durable before each move.

SQLite in WAL mode, in the state folder (`<state>/push/journal.sqlite`): one row per call
and one small transaction per change of state, each flushed to disk before the sender acts
on it. SQLite rather than DuckDB: thousands of tiny durable single-row commits while other
work goes on is SQLite's job, and DuckDB's per-commit cost and single-writer file lock are
made for the opposite. A restart reads it before it sends anything.

States: `pending` (to send), `in_flight` (marked before the request leaves, so a kill leaves
the call known as possibly sent), `sent` (Omneo answered 2xx, or a lookup found it),
`rejected` (Omneo answered 4xx: a fault of the call, kept with Omneo's message) and
`ambiguous` (the outcome is unknown: a 5xx, a timeout, a reset, a kill while in flight).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipeline import failpoints
from pipeline.errors import PushError

FILE = "journal.sqlite"
STATES = ("pending", "in_flight", "sent", "rejected", "ambiguous")
FINAL = ("sent", "rejected")

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key          TEXT PRIMARY KEY,   -- the call's idempotency key
    kind         TEXT NOT NULL,      -- benefits, claim_redeem, redemptions, returns
    run_id       TEXT NOT NULL,      -- the run whose payloads hold the call
    file         TEXT NOT NULL,      -- payload file, relative to the run folder
    line         INTEGER NOT NULL,   -- line in that file, from 1
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    body_sha256  TEXT NOT NULL,      -- of the JSON body text as it is sent
    body         TEXT,               -- kept only for a call made here (the rest of a batch)
    parent       TEXT,               -- the call this one resends part of
    position     INTEGER NOT NULL,   -- send order: kinds in order, then file, then line
    state        TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'sent', 'rejected', 'ambiguous')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    http_status  INTEGER,
    response_id  TEXT,               -- Omneo's id: the batch_id, or the created object's id
    error        TEXT,
    latency_ms   REAL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_run ON calls (run_id, state);
-- The calls of each run: a corrective call (keyed by its finding) recurs on the next night
-- while Omneo's export has not caught up, and must then be neither sent twice nor missed.
CREATE TABLE IF NOT EXISTS run_calls (
    run_id       TEXT NOT NULL,
    key          TEXT NOT NULL,
    file         TEXT NOT NULL,      -- this run's payload file holding the call
    line         INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS rejected_benefits (
    external_id  TEXT PRIMARY KEY,   -- a benefit Omneo refused: the next issue may issue it again
    run_id       TEXT NOT NULL,
    key          TEXT NOT NULL,      -- the call that carried it
    reason       TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Entry:
    """One row of the journal."""

    key: str
    kind: str
    run_id: str
    file: str
    line: int
    method: str
    path: str
    body_sha256: str
    body: str | None
    parent: str | None
    position: int
    state: str
    attempts: int
    http_status: int | None
    response_id: str | None
    error: str | None
    latency_ms: float | None
    updated_at: str


COLUMNS = [name for name in Entry.__dataclass_fields__]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Journal:
    """The journal of one state folder, open for one push at a time (the state lock)."""

    def __init__(self, path: Path, secrets: tuple[str | None, ...] = ()) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Text from the network (Omneo's messages) is stored; a server that echoes a header
        # must not put the token on disk.
        self._secrets = [s for s in secrets if s]
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit is on the disk before it returns, so `in_flight` is never lost
            # to a power cut while its request may already have reached Omneo.
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            raise PushError(
                f"{path}: the push journal cannot be read ({error}); restore it from a backup: without it, "
                "calls already sent could be sent again"
            ) from None

    def close(self) -> None:
        self._db.close()

    def _masked(self, text: str | None) -> str | None:
        for secret in self._secrets:
            text = text.replace(secret, "***") if text else text
        return text

    # Registering the calls of a run -------------------------------------------------------

    def register(self, run_id: str, calls: Iterable[dict]) -> int:
        """Journal the run's calls: new ones as pending, known ones linked to this run too.

        A key journaled with another body is a fault: the same idempotency key must always
        mean the same call, or a resend could apply something that was never checked.
        Returns how many calls were new.
        """
        added = 0
        with self._transaction():
            for call in calls:
                row = self._db.execute(
                    "SELECT body_sha256, file, line, run_id, state, kind FROM calls WHERE key = ?", [call["key"]]
                ).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO calls (key, kind, run_id, file, line, method, path, body_sha256, position, "
                        "state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                        [call["key"], call["kind"], run_id, call["file"], call["line"], call["method"],
                         call["path"], call["body_sha256"], call["position"], _now()],
                    )
                    added += 1
                elif row[0] != call["body_sha256"]:
                    raise PushError(
                        f"{call['file']} line {call['line']}: idempotency key {call['key']} was journaled with "
                        f"another body (run {row[3]}, {row[1]} line {row[2]}); the same key must be the same call. "
                        "Check the payloads; nothing was sent"
                    )
                elif row[4] == "rejected" and row[5] == "benefits" and row[3] != run_id:
                    # Omneo refused it on an earlier night, the state forgot it, and this run
                    # issued it again: a new attempt.
                    self._db.execute("UPDATE calls SET state = 'pending', run_id = ?, updated_at = ? WHERE key = ?",
                                     [run_id, _now(), call["key"]])
                self._db.execute(
                    "INSERT OR IGNORE INTO run_calls VALUES (?, ?, ?, ?, ?)",
                    [run_id, call["key"], call["file"], call["line"], call["position"]],
                )
        return added

    def _add_remainder(self, parent: Entry, run_id: str, key: str, body: str, body_sha256: str) -> None:
        """A call made here: the part of `parent` that Omneo did not apply, to send again
        (inside a transaction: `settle` journals it with its parent's outcome)."""
        self._db.execute(
            "INSERT OR IGNORE INTO calls (key, kind, run_id, file, line, method, path, body_sha256, body, "
            "parent, position, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            [key, parent.kind, parent.run_id, parent.file, parent.line, parent.method, parent.path,
             body_sha256, body, parent.key, parent.position, _now()],
        )
        self._db.execute("INSERT OR IGNORE INTO run_calls VALUES (?, ?, ?, ?, ?)",
                         [run_id, key, parent.file, parent.line, parent.position])

    def knows(self, run_id: str) -> bool:
        """Has this journal seen a push of the run?"""
        return self._db.execute("SELECT count(*) FROM run_calls WHERE run_id = ?", [run_id]).fetchone()[0] > 0

    # Moving calls between states -----------------------------------------------------------

    def start(self, key: str) -> None:
        """`in_flight`, durably, before the request is sent."""
        with self._transaction():
            self._db.execute(
                "UPDATE calls SET state = 'in_flight', attempts = attempts + 1, updated_at = ? WHERE key = ?",
                [_now(), key],
            )

    def finish(self, key: str, state: str, *, http_status: int | None = None, response_id: str | None = None,
               error: str | None = None, latency_ms: float | None = None) -> None:
        self.settle(key, state, http_status=http_status, response_id=response_id, error=error, latency_ms=latency_ms)

    def settle(self, key: str, state: str, *, remainder: tuple[Entry, str, str, str, str] | None = None,
               rejected: tuple[Entry, dict[str, str]] | None = None, http_status: int | None = None,
               response_id: str | None = None, error: str | None = None, latency_ms: float | None = None) -> None:
        """A call's outcome, with what it adds, in one transaction: the benefits Omneo refused
        (`rejected`: the entry and external_id -> message) and the call made of the rest
        (`remainder`: parent, run id, key, body, body sha256).

        Journaled one after another, a kill between them left the call in flight beside its
        remainder: the rerun looked it up, found nothing applied, sent it again and made a
        second remainder of the same benefits, and both were applied.
        """
        assert state in STATES
        error = self._masked(error)
        with self._transaction():
            if rejected is not None:
                entry, reasons = rejected
                self._db.executemany(
                    "INSERT OR REPLACE INTO rejected_benefits VALUES (?, ?, ?, ?)",
                    [(external_id, entry.run_id, entry.key, self._masked(reason))
                     for external_id, reason in reasons.items()],
                )
            if remainder is not None:
                self._add_remainder(*remainder)
            self._db.execute(
                "UPDATE calls SET state = ?, http_status = coalesce(?, http_status), "
                "response_id = coalesce(?, response_id), error = ?, latency_ms = coalesce(?, latency_ms), "
                "updated_at = ? WHERE key = ?",
                [state, http_status, response_id, error, latency_ms, _now(), key],
            )

    def interrupted(self) -> int:
        """Calls a killed push left in flight: their outcome is unknown now.

        updated_at stays the moment the call was sent: a batch's lookup waits --queue-wait
        from then, not from this restart.
        """
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE calls SET state = 'ambiguous', error = 'the push stopped while this call was in flight' "
                "WHERE state = 'in_flight'"
            )
        return cursor.rowcount

    def resolve(self, key: str, state: str) -> Entry:
        """An operator's word on a call of unknown outcome (`--resolve KEY=sent|pending`),
        e.g. a return checked by hand. Any other call is refused: a stale or mistyped
        KEY=pending on a sent return would return it twice."""
        entry = self.get(key)
        if entry is None:
            raise PushError(f"--resolve: no call with idempotency key {key} in {self.path}")
        if entry.state not in ("ambiguous", "in_flight"):
            raise PushError(f"--resolve: call {key} is {entry.state}, not of unknown outcome; nothing was changed")
        self.finish(key, state, error=f"resolved by hand as {state}")
        return entry

    def rejected_benefits(self, run_id: str) -> dict[str, str]:
        return dict(self._db.execute(
            "SELECT external_id, reason FROM rejected_benefits WHERE run_id = ? ORDER BY external_id", [run_id]
        ).fetchall())

    def children(self, key: str) -> int:
        return self._db.execute("SELECT count(*) FROM calls WHERE parent = ?", [key]).fetchone()[0]

    # Reading --------------------------------------------------------------------------------

    @staticmethod
    def read_only_states(path: Path) -> dict[str, tuple[str, str]]:
        """key -> (state, body_sha256), read without writing anything (for --dry-run)."""
        if not path.exists():
            return {}
        try:
            db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
            try:
                return {k: (s, h) for k, s, h in db.execute("SELECT key, state, body_sha256 FROM calls")}
            finally:
                db.close()
        except sqlite3.DatabaseError as error:
            raise PushError(f"{path}: the push journal cannot be read ({error})") from None

    def get(self, key: str) -> Entry | None:
        row = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM calls WHERE key = ?", [key]).fetchone()
        return Entry(*row) if row else None

    def entries(self, run_id: str, states: tuple[str, ...] = STATES) -> list[Entry]:
        """A run's calls in these states, in send order, with this run's file and line."""
        marks = ", ".join("?" for _ in states)
        columns = ", ".join(f"rc.{c}" if c in ("file", "line", "position") else f"c.{c}" for c in COLUMNS)
        rows = self._db.execute(
            f"SELECT {columns} FROM run_calls rc JOIN calls c USING (key) WHERE rc.run_id = ? AND c.state IN ({marks}) "
            "ORDER BY rc.position, c.parent NULLS FIRST, c.key",
            [run_id, *states],
        ).fetchall()
        return [Entry(*row) for row in rows]

    def counts(self, run_id: str) -> dict[str, int]:
        found = dict(self._db.execute(
            "SELECT c.state, count(*) FROM run_calls rc JOIN calls c USING (key) WHERE rc.run_id = ? GROUP BY c.state",
            [run_id]).fetchall())
        return {state: found.get(state, 0) for state in STATES}

    def _transaction(self) -> Iterator[None]:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        if kind is None:
            # Every durable step of the journal is a moment a kill must leave consistent.
            failpoints.reach("push_journal_committed")
