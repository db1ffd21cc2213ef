"""What the Spark engine's tests compare: a run folder's validated and rejected rows."""

from __future__ import annotations

from pathlib import Path

from pipeline import db
from schemas import DATASETS


def assert_same_outputs(default: Path, spark: Path) -> None:
    """Every dataset's validated and rejected rows, read back and put in key order, equal:
    the same columns in the same order, the same types, the same values. The parts are read
    as a plain glob, which DuckDB refuses when their schemas differ."""
    con = db.connect(threads=1)
    for name in DATASETS:
        for kind, keys in (("validated", ["source_file", "source_row"]),
                           ("rejects", ["source_file", "source_row", "column", "check"])):
            order = ", ".join(db.quote(k) for k in keys)
            one = db.literal(str(default / kind / f"{name}.parquet"))
            # validated/: a folder of parts; rejects/: one file, as the default engine's.
            parts = db.literal(str(spark / kind / f"{name}.parquet") + ("/*.parquet" if kind == "validated" else ""))
            expected = con.sql(f"SELECT * FROM read_parquet({one}) ORDER BY {order}").to_arrow_table()
            found = con.sql(f"SELECT * FROM read_parquet({parts}) ORDER BY {order}").to_arrow_table()
            assert found.schema == expected.schema, f"{kind}/{name}: {found.schema} against {expected.schema}"
            assert found.equals(expected), f"{kind}/{name}: other rows"
    con.close()
