"""Benchmark: `omneo-bulk reconcile` over 5M benefits, 3M redemptions and 5M POS rows.

Generated in DuckDB as Parquet: every redemption has a POS usage a few minutes later,
except a planted share (no sale, a voided sale, a duplicate redemption, sales missing in
Omneo), plus 2M ordinary sales. The command runs in a child process for wall time and
peak RSS; figures go to RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))
from _results import installation, machine, run_omneo, update_section  # noqa: E402
from bench_issue import DEFINITIONS  # noqa: E402

DATA = Path(__file__).parent / "data"
AS_OF = "2026-11-22T09:00:00+11:00"

SQL = """
CREATE TEMP TABLE b AS
SELECT i AS id,
       'p' || (hash(i) % $profiles) AS profile_id,
       (100 + hash(i, 1) % 12)::BIGINT AS benefit_definition_id,
       TIMESTAMPTZ '2026-09-01 00:00:00+00' + to_seconds((hash(i, 2) % 5000000)::BIGINT) AS issued_at
FROM range(1, $benefits + 1) t(i);

COPY (
  SELECT b.id, b.profile_id, b.benefit_definition_id, b.issued_at,
         b.issued_at + INTERVAL 30 DAY AS expires_at, 'Australia/Melbourne' AS timezone,
         d.max_redemptions - CASE WHEN b.id <= $redemptions THEN 1 ELSE 0 END AS redemptions_remaining,
         'B' || b.id AS redeem_code_pos
  FROM b JOIN read_parquet('{dir}/benefit_definitions.parquet') d ON d.id = b.benefit_definition_id
) TO '{dir}/benefits.parquet' (FORMAT parquet);

-- Redemption i redeems benefit i, 1 to 72 hours after issue; every 2000th (offset 1) is redeemed twice.
CREATE TEMP TABLE r AS
SELECT i AS id, b.profile_id, b.issued_at + to_seconds((3600 + hash(i, 3) % 255600)::BIGINT) AS created_at,
       'redeem' AS type, i AS benefit_id, 1 AS count
FROM range(1, $redemptions + 1) t(i) JOIN b ON b.id = t.i;
COPY (
  SELECT * FROM r
  UNION ALL
  SELECT $redemptions + id, profile_id, created_at + INTERVAL 5 MINUTE, type, benefit_id, count
  FROM r WHERE id % 2000 = 1
) TO '{dir}/redemptions.parquet' (FORMAT parquet);

COPY (
  -- A POS usage for each redemption (every 1000th has none, every 997th is voided) ...
  SELECT 'POS-' || r.id AS external_id, r.created_at + to_seconds((hash(r.id, 4) % 120)::BIGINT) AS transacted_at,
         r.profile_id, 'S' || (hash(r.id, 5) % 200) AS location_external_id, 50.0 AS total,
         CASE WHEN r.id % 997 = 0 THEN 'voided' ELSE 'completed' END AS status,
         NULL::BIGINT AS redemption_id,
         CASE WHEN r.id % 2 = 0 THEN r.benefit_id END AS benefit_id,
         CASE WHEN r.id % 2 = 1 THEN 'B' || r.benefit_id END AS redeem_code
  FROM r WHERE r.id % 1000 <> 0
  UNION ALL
  -- ... sales of unredeemed benefits that never reached Omneo ...
  SELECT 'POS-M' || b.id, b.issued_at + INTERVAL 2 HOUR, b.profile_id, 'S1', 30.0, 'completed', NULL, b.id, NULL
  FROM b WHERE b.id > $redemptions AND b.id % 1000 = 0
  UNION ALL
  -- ... and ordinary sales that used no benefit.
  SELECT 'POS-S' || i, TIMESTAMPTZ '2026-09-01 00:00:00+00' + to_seconds((hash(i, 6) % 7000000)::BIGINT),
         'p' || (hash(i, 7) % $profiles), 'S2', 20.0, 'completed', NULL, NULL, NULL
  FROM range(0, $sales) t(i)
) TO '{dir}/transactions.parquet' (FORMAT parquet);
"""


def generate(benefits: int) -> Path:
    folder = DATA / f"reconcile-{benefits}"
    if (folder / "transactions.parquet").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(DEFINITIONS.replace("{dir}", str(folder)))
    sizes = {"benefits": benefits, "redemptions": benefits * 3 // 5, "profiles": benefits * 2 // 5,
             "sales": benefits * 2 // 5}
    for statement in SQL.replace("{dir}", str(folder)).split(";\n"):
        if statement.strip():
            con.execute(statement, {k: v for k, v in sizes.items() if f"${k}" in statement})
    con.close()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--benefits", type=int, default=5_000_000)
    parser.add_argument("--memory-limit", default=None)
    args = parser.parse_args()
    folder = generate(args.benefits)
    seconds, peak_mib, manifest = run_omneo(
        ["reconcile", "--input", str(folder), "--as-of", AS_OF, "--max-reject-ratio", "1"],
        DATA / f"reconcile-{args.benefits}-run", args.memory_limit,
    )
    stages = {s["stage"]: s for s in manifest["stages"]}
    recon = stages["reconcile"]
    rows = stages["validate"]["datasets"]
    found = ", ".join(f"{c} {n:,}" for c, n in recon["categories"].items() if n)
    limit = f", --memory-limit {args.memory_limit}" if args.memory_limit else ""
    body = f"""
`omneo-bulk reconcile` on {rows['benefits']['rows_read']:,} benefits, {rows['redemptions']['rows_read']:,}
redemptions (flat form) and {rows['transactions']['rows_read']:,} POS rows, all Parquet. Goal: under 60 s
and 6 GB.

| wall time | validate | reconcile | peak RSS | matches | exceptions |
|---:|---:|---:|---:|---|---:|
| {seconds:.1f} s | {stages['validate']['seconds']:.1f} s | {recon['seconds']:.1f} s | {peak_mib:,.0f} MiB | {', '.join(f'{k} {v:,}' for k, v in sorted(recon['matches'].items()))} | {recon['exceptions']:,} |

Findings: {found}.

Machine: {machine()}; timed: {installation()}. Command: `python benchmarks/bench_reconcile.py --benefits {args.benefits}{' --memory-limit ' + args.memory_limit if args.memory_limit else ''}`.
"""
    update_section(f"Reconcile ({args.benefits:,} benefits{limit})", body)
    print(body)


if __name__ == "__main__":
    main()
