"""Benchmark: `omneo-bulk issue` over 10M profiles, 20 definitions and 10 campaigns.

Inputs are generated in DuckDB as Parquet (profiles, definitions, 2M existing benefits,
3M POS sales for the spend aggregations), then the command runs in a child process so
its wall time and peak RSS can be measured. Figures go to RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))
from _results import installation, machine, run_omneo, update_section  # noqa: E402

DATA = Path(__file__).parent / "data"
AS_OF = "2026-11-22T09:00:00+11:00"

PROFILES = """
COPY (
  SELECT md5(i::VARCHAR)[1:8] || '-' || md5(i::VARCHAR)[9:12] || '-4' || md5(i::VARCHAR)[13:15] || '-8'
           || md5(i::VARCHAR)[16:18] || '-' || md5(i::VARCHAR)[19:30]                    AS id,
         'user' || i || '@example.com'                                                   AS email,
         ['Olivia','Jack','Mia','Noah','Isla','Leo'][1 + i % 6]                          AS first_name,
         ['female','male','unspecified'][1 + (hash(i) % 3)::BIGINT]                                AS gender,
         (1 + hash(i, 1) % 28)::BIGINT                                                   AS birth_day,
         (1 + hash(i, 2) % 12)::BIGINT                                                   AS birth_month,
         (1950 + hash(i, 3) % 56)::BIGINT                                                AS birth_year,
         TIMESTAMPTZ '2018-01-01 00:00:00+00' + to_seconds((hash(i, 4) % 280000000)::BIGINT) AS joined_at,
         CASE WHEN hash(i, 5) % 100 < 4 THEN 'temporary' WHEN hash(i, 5) % 100 < 6 THEN 'deleted'
              ELSE 'active' END                                                          AS profile_type,
         ['bronze','bronze','bronze','silver','silver','gold'][1 + (hash(i, 6) % 6)::BIGINT]      AS tier_handle,
         CASE hash(i, 7) % 4 WHEN 0 THEN ['vip','app'] WHEN 1 THEN ['newsletter'] WHEN 2 THEN []::VARCHAR[]
              ELSE ['app'] END                                                           AS tags,
         ['verified']                                                                    AS statuses,
         ['Australia/Melbourne','Australia/Sydney','Australia/Perth','Australia/Brisbane',
          'Pacific/Auckland'][1 + (hash(i, 8) % 5)::BIGINT]                                        AS timezone,
         '{"comms":{"email_promo":' || CASE WHEN hash(i, 9) % 10 < 7 THEN 'true' ELSE 'false' END
           || '},"store":"S' || (hash(i, 10) % 200) || '"}'                              AS attributes,
         ['VIC','NSW','WA','QLD','NZ'][1 + (hash(i, 8) % 5)::BIGINT]                               AS region
  FROM range(0, $profiles) t(i)
) TO '{dir}/profiles.parquet' (FORMAT parquet)
"""

DEFINITIONS = """
COPY (
  SELECT 100 + n                                            AS id,
         'def-' || lpad(n::VARCHAR, 2, '0')                 AS handle,
         'Benefit ' || n                                    AS name,
         [0, 7, 14, 30, 31, 90, NULL][1 + n % 7]::BIGINT    AS period,
         CASE WHEN n % 5 = 4 THEN NULL ELSE 1 + n % 3 END::BIGINT AS max_redemptions,
         n <> 19                                            AS is_published,
         n = 18                                             AS is_archived,
         true                                               AS is_assignable,
         n % 4 = 3                                          AS is_claimable,
         n % 3 <> 0                                         AS is_reclaimable,
         CASE WHEN n % 4 = 1 THEN 3000000 + n * 100000 END::BIGINT AS total_allocations,
         CASE WHEN n % 4 = 1 THEN 1500000 + n * 100000 END::BIGINT AS total_allocations_remaining,
         CASE WHEN n % 6 = 2 THEN '{"in": [{"var": "tier_handle"}, ["silver", "gold"]]}'
              WHEN n % 6 = 5 THEN '{">=": [{"var": "aggregations.spend_12m"}, 100]}' END AS claim_condition,
         'CODE' || n                                        AS redeem_code_pos
  FROM range(20) t(n)
) TO '{dir}/benefit_definitions.parquet' (FORMAT parquet)
"""

BENEFITS = """
COPY (
  SELECT 1000000 + i                                                                     AS id,
         md5(p::VARCHAR)[1:8] || '-' || md5(p::VARCHAR)[9:12] || '-4' || md5(p::VARCHAR)[13:15] || '-8'
           || md5(p::VARCHAR)[16:18] || '-' || md5(p::VARCHAR)[19:30]                    AS profile_id,
         (100 + hash(i, 1) % 12)::BIGINT                                                 AS benefit_definition_id,
         TIMESTAMPTZ '2026-06-01 00:00:00+00' + to_seconds((hash(i, 2) % 15000000)::BIGINT) AS issued_at,
         TIMESTAMPTZ '2026-06-01 00:00:00+00' + to_seconds((hash(i, 2) % 15000000 + 2592000)::BIGINT) AS expires_at,
         'Australia/Melbourne'                                                           AS timezone,
         (hash(i, 3) % 2)::BIGINT                                                        AS redemptions_remaining
  FROM (SELECT i, hash(i) % $profiles AS p FROM range(0, $benefits) t(i))
) TO '{dir}/benefits.parquet' (FORMAT parquet)
"""

TRANSACTIONS = """
COPY (
  SELECT 'POS-' || i                                                                     AS external_id,
         TIMESTAMPTZ '2025-06-01 00:00:00+00' + to_seconds((hash(i, 1) % 45000000)::BIGINT) AS transacted_at,
         md5(p::VARCHAR)[1:8] || '-' || md5(p::VARCHAR)[9:12] || '-4' || md5(p::VARCHAR)[13:15] || '-8'
           || md5(p::VARCHAR)[16:18] || '-' || md5(p::VARCHAR)[19:30]                    AS profile_id,
         'S' || (hash(i, 2) % 200)                                                       AS location_external_id,
         round(5 + (hash(i, 3) % 40000) / 100.0, 2)                                      AS total,
         CASE WHEN hash(i, 4) % 50 = 0 THEN 'voided' ELSE 'completed' END                AS status
  FROM (SELECT i, hash(i, 9) % $profiles AS p FROM range(0, $transactions) t(i))
) TO '{dir}/transactions.parquet' (FORMAT parquet)
"""

CAMPAIGNS = """
[[campaigns]]
id = "birthday-nov"
definition = "def-01"
audience = '{"==": [{"var": "birth_month"}, 11]}'
issued_at = "2026-11-22 09:00:00"
cycle = "2026"
priority = "joined_at"

[[campaigns]]
id = "welcome"
definition = "def-00"
audience = '{"<=": [{"var": "days_since_joined"}, 90]}'

[[campaigns]]
id = "gold-shipping"
definition = "def-02"
audience = '{"and": [{"==": [{"var": "tier.handle"}, "gold"]}, {"var": "attributes.comms.email_promo"}]}'
timezone = "Australia/Melbourne"
priority = "-aggregations.spend_12m"

[[campaigns]]
id = "big-spenders"
definition = "def-03"
audience = '{">": [{"var": "aggregations.spend_12m"}, 300]}'
limit = 200000
priority = "-aggregations.spend_12m"

[[campaigns]]
id = "app-gold"
definition = "def-04"
audience = '{"and": [{"in": ["app", {"var": "flattened_tags"}]}, {"==": [{"var": "tier_handle"}, "gold"]}]}'

[[campaigns]]
id = "lapsed"
definition = "def-05"
audience = '{"and": [{"==": [{"var": "aggregations.shop_count"}, 0]}, {">": [{"var": "days_since_joined"}, 365]}]}'
limit = 500000

[[campaigns]]
id = "young-adults"
definition = "def-06"
audience = '{"<=": [18, {"var": "age"}, 25]}'

[[campaigns]]
id = "vic-silver"
definition = "def-07"
audience = '{"and": [{"==": [{"var": "region"}, "VIC"]}, {"==": [{"var": "tier_handle"}, "silver"]}]}'

[[campaigns]]
id = "gold-archived"
definition = "def-18"
audience = '{"==": [{"var": "tier_handle"}, "gold"]}'

[[campaigns]]
id = "birthday-nov-again"
definition = "def-01"
audience = '{"and": [{"==": [{"var": "birth_month"}, 11]}, {"!": {"var": "attributes.comms.opt_out"}}]}'
priority = "-aggregations.spend_all"
"""


def generate(profiles: int) -> Path:
    folder = DATA / f"issue-{profiles}"
    if (folder / "campaigns.toml").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    sizes = {"profiles": profiles, "benefits": profiles // 5, "transactions": profiles * 3 // 10}
    for sql in (PROFILES, DEFINITIONS, BENEFITS, TRANSACTIONS):
        text = sql.replace("{dir}", str(folder))
        con.execute(text, {k: v for k, v in sizes.items() if f"${k}" in text})
    con.close()
    (folder / "campaigns.toml").write_text(CAMPAIGNS, encoding="utf-8")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=10_000_000)
    parser.add_argument("--memory-limit", default=None)
    args = parser.parse_args()
    folder = generate(args.profiles)
    out, state = DATA / f"issue-{args.profiles}-run", DATA / f"issue-{args.profiles}-state"
    shutil.rmtree(state, ignore_errors=True)
    seconds, peak_mib, manifest = run_omneo(
        ["issue", "--input", str(folder), "--campaigns", str(folder / "campaigns.toml"), "--state", str(state),
         "--as-of", AS_OF, "--max-reject-ratio", "1"],
        out, args.memory_limit,
    )
    stages = {s["stage"]: s for s in manifest["stages"]}
    issue = stages["issue"]
    rows_read = stages["validate"]["rows_read"]
    campaigns = "\n".join(
        f"| {c['campaign_id']} | {c['considered']:,} | {c['issued']:,} | "
        f"{sum(c['skipped'].values()):,} | {c['allocation']['cap'] if c['allocation']['cap'] is not None else '—'} |"
        for c in issue["campaigns"]
    )
    body = f"""
`omneo-bulk issue` on {args.profiles:,} profiles, 20 definitions, 10 campaigns (audiences over
birth month, tier, attributes, tags, spend aggregations, age, tenure), {args.profiles // 5:,} existing
benefits and {args.profiles * 3 // 10:,} POS sales, all Parquet. Goal: under 60 s and 6 GB.

| wall time | validate | issue | peak RSS | rows read | benefits issued | payload files |
|---:|---:|---:|---:|---:|---:|---:|
| {seconds:.1f} s | {stages['validate']['seconds']:.1f} s | {issue['seconds']:.1f} s | {peak_mib:,.0f} MiB | {rows_read:,} | {issue['issued']:,} | {issue['payload_files']:,} |

| campaign | considered | issued | skipped | cap |
|---|---:|---:|---:|---:|
{campaigns}

Machine: {machine()}; timed: {installation()}. Command: `python benchmarks/bench_issue.py --profiles {args.profiles}`
{f"with `--memory-limit {args.memory_limit}`" if args.memory_limit else "(DuckDB memory limit: half of RAM)"}.
"""
    limit = f", --memory-limit {args.memory_limit}" if args.memory_limit else ""
    update_section(f"Issue ({args.profiles:,} profiles{limit})", body)
    print(body)


if __name__ == "__main__":
    main()
