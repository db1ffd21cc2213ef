"""The time zones omneo-bulk accepts: the IANA names that Python and DuckDB can both convert.

One list for a profile's zone, a campaign's, `--naive-timezone` and `--default-timezone`, so
that a name accepted anywhere can be used by every later stage.
"""

from __future__ import annotations

import functools
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
