"""Benchmark: validate a large profiles CSV (default 1M rows) and record time and peak RSS.

The CSV is generated in DuckDB (about 2% of rows broken in the ways real exports break),
then `omneo-bulk validate` runs in a child process so its peak memory can be measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))
from _results import installation, machine, run_omneo, update_section  # noqa: E402

DATA = Path(__file__).parent / "data"

PROFILES_SQL = """
COPY (
  SELECT
    CASE WHEN i % 997 = 0 THEN 'dup-' || (i // 997 % 10) ELSE md5(i::VARCHAR)[1:8] || '-' || md5(i::VARCHAR)[9:12] || '-4' || md5(i::VARCHAR)[13:15] || '-8' || md5(i::VARCHAR)[16:18] || '-' || md5(i::VARCHAR)[19:30] END AS id,
    'user' || i || '@example.com' AS email,
    ['Olivia','Jack','Mia','Noah','Isla'][1 + i % 5] AS first_name,
    ['Smith','Nguyen','Brown','Wilson'][1 + i % 4] AS last_name,
    ['female','male','unspecified'][1 + i % 3] AS gender,
    CASE WHEN i % 499 = 0 THEN '32' ELSE (1 + i % 28)::VARCHAR END AS birth_day,
    CASE WHEN i % 503 = 0 THEN 'Nov' ELSE (1 + i % 12)::VARCHAR END AS birth_month,
    (1950 + i % 56)::VARCHAR AS birth_year,
    strftime(TIMESTAMP '2020-01-01' + to_seconds(i * 97 % 180000000), '%Y-%m-%d %H:%M:%S') AS joined_at,
    CASE WHEN i % 50 = 0 THEN 'temporary' ELSE 'active' END AS profile_type,
    ['bronze','bronze','silver','gold'][1 + i % 4] AS tier_handle,
    CASE WHEN i % 3 = 0 THEN '["vip","app"]' ELSE 'newsletter' END AS tags,
    'verified' AS statuses,
    CASE WHEN i % 509 = 0 THEN 'Melbourne' ELSE ['Australia/Melbourne','Australia/Sydney','Australia/Perth'][1 + i % 3] END AS timezone,
    '{"comms":{"email_promo":' || CASE WHEN i % 2 = 0 THEN 'true' ELSE 'false' END || '}}' AS attributes,
    ['VIC','NSW','WA'][1 + i % 3] AS region
  FROM range(1, ? + 1) t(i)
) TO '{path}' (FORMAT csv, HEADER true)
"""


def make_profiles(rows: int) -> Path:
    folder = DATA / f"validate-{rows}"
    path = folder / "profiles.csv"
    if path.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(PROFILES_SQL.replace("{path}", str(path)), [rows])
    con.close()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    folder = make_profiles(args.rows)
    seconds, peak_mib, manifest = run_omneo(
        ["validate", "--input", str(folder), "--max-reject-ratio", "1"], DATA / f"validate-{args.rows}-run"
    )
    profiles = manifest["stages"][0]["datasets"]["profiles"]
    size_mib = (folder / "profiles.csv").stat().st_size / 2**20
    body = f"""
Validating one profiles CSV of {args.rows:,} rows ({size_mib:.0f} MiB, 16 columns, about 1% of rows broken:
bad day, bad month, bad time zone, duplicate ids) with `omneo-bulk validate`.

| rows read | accepted | rejected | wall time | rows/s | peak RSS |
|---:|---:|---:|---:|---:|---:|
| {profiles['rows_read']:,} | {profiles['accepted']:,} | {profiles['rejected']:,} | {seconds:.1f} s | {profiles['rows_read'] / seconds:,.0f} | {peak_mib:,.0f} MiB |

Machine: {machine()}; timed: {installation()}. Command: `make bench` (`python benchmarks/bench_validate.py --rows {args.rows}`).
"""
    update_section("Validate", body)
    print(body)


if __name__ == "__main__":
    main()
