"""The time zones omneo-bulk accepts: the IANA names that Python and DuckDB can both convert.

One list for a profile's zone, a campaign's, `--naive-timezone` and `--default-timezone`, so
that a name accepted anywhere can be used by every later stage.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timezone
from importlib import resources


@functools.cache
def usable() -> frozenset[str]:
    """tzdata's list of zones, the same on every machine (not the system's zoneinfo folder,
    which adds `localtime`, `posixrules`, `posix/...`), less any that DuckDB's ICU does not know."""
    import duckdb

    listed = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    with duckdb.connect() as con:
        known = {name for (name,) in con.execute("SELECT name FROM pg_timezone_names()").fetchall()}
    return frozenset(name for name in listed if name in known)


# Python's zoneinfo reads the machine's zone database before the tzdata package, and its rules
# can be older than DuckDB's ICU, which every SQL stage converts with (this machine's 2025b
# against ICU's 2026f disagreed for 15 zones, America/Vancouver among them, from 2026-11).
# It also picks the first of two instants in a DST overlap where ICU picks the later one. So
# the few conversions done outside SQL go through ICU too: one rule set for the whole run.


def wall_to_utc(moment: datetime, name: str) -> datetime:
    """The UTC instant of a wall time in zone `name`, as DuckDB reads a naive input value
    (in a gap, the time after it; in an overlap, the later instant)."""
    instant = _icu("SELECT timezone(?, CAST(? AS TIMESTAMP))", [name, moment.replace(tzinfo=None)])
    return instant.astimezone(timezone.utc)


def local_date(instant: datetime, name: str) -> date:
    """The calendar date in zone `name` at an instant."""
    return _icu("SELECT CAST(timezone(?, CAST(? AS TIMESTAMPTZ)) AS DATE)", [name, instant])


def _icu(sql: str, params: list) -> object:
    """One value computed by DuckDB, on a connection made as every stage's is (UTC session)."""
    from pipeline import db

    with db.connect() as con:
        return db.scalar(con, sql, params)
