"""A night on Spark at 1, 3 and 8 shards: the default engine's plan, payloads and
reconciliation, byte for byte, on an export laid out against the shards.

The profile ids are picked with Spark's own hash, so at 8 shards one shard holds a single
profile's whole history (its sales and benefits), some shard holds nothing, a sale's rows
name profiles of two shards, and the capped campaigns' winners come from several shards.
The night is a DST weekend: the campaigns issue at 02:30 on 5 April 2026 in Melbourne, a
wall time that happens twice, and the whale's redemptions and POS usages fall in the hour
the clocks repeat, competing for their nearest partner. Two runs lose a shard's Python
worker once (issue, reconcile): Spark retries it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from spark.test_spark_engine import REPO, omneo, stage_records
from test_issuance import DEFINITION_HEADER, definition, profile, write_rows

pytestmark = pytest.mark.spark

# 02:30 AEDT on 5 April 2026, half an hour before Melbourne's clocks go back to 02:00.
AS_OF = "2026-04-05T02:30:00+11:00"
MASTER = "local[2,2]"
CAMPAIGNS = """
[[campaigns]]
id = "top-spenders"
definition = "spend-gift"
cycle = "2026-04"
priority = "-aggregations.spend_12m"
limit = 4

[[campaigns]]
id = "shoppers"
definition = "spend-gift"
audience = '{">=": [{"var": "aggregations.shop_count"}, 1]}'
cycle = "2026-04"

[[campaigns]]
id = "dst-birthday"
definition = "birthday-gift"
audience = '{">=": [{"var": "age"}, 18]}'
issued_at = "2026-04-05 02:30:00"
timezone = "Australia/Melbourne"
cycle = "2026"
priority = "joined_at"
"""
ZONES = ["Australia/Melbourne", "America/Nuuk", "America/New_York", "", "Asia/Kolkata"]


def shards_of(spark, ids: list[str], shards: int) -> dict[str, int]:
    rows = spark.createDataFrame([(i,) for i in ids], "id string").selectExpr(
        "id", f"pmod(hash(id), {shards}) AS shard").collect()
    return {row.id: row.shard for row in rows}


@pytest.fixture(scope="module")
def export(spark, tmp_path_factory) -> tuple[Path, dict]:
    """The export, and its layout at 8 and 3 shards."""
    candidates = [f"p{n:03d}" for n in range(200)]
    at8 = shards_of(spark, candidates, 8)
    whale = candidates[0]
    empty = next(s for s in range(8) if s != at8[whale])
    # Twenty profiles, none in the whale's shard or the empty one.
    others = [i for i in candidates[1:] if at8[i] not in (at8[whale], empty)][:20]
    ids = [whale, *others]
    folder = tmp_path_factory.mktemp("issue-export") / "input"
    folder.mkdir()
    people = [profile(pid, timezone=ZONES[n % len(ZONES)], joined_at=f"20{10 + n % 13}-0{1 + n % 9}-15 10:00:00",
                      birth_year=str(1950 + 3 * n), birth_month=str(1 + n % 12), birth_day=str(1 + n % 28),
                      profile_type="deleted" if n == 7 else "active")
              for n, pid in enumerate(ids)]
    write_rows(folder / "profiles.csv", people)
    sales = [{"external_id": f"POS-W{n}", "transacted_at": f"2026-0{1 + n % 3}-{1 + n % 27:02d}T12:00:00+11:00",
              "profile_id": whale, "total": f"{10 + n}.25", "status": "completed"} for n in range(40)]
    sales += [{"external_id": f"POS-{n}", "transacted_at": "2026-04-04T23:45:00+11:00", "profile_id": pid,
               "total": f"{(n * 37) % 90 + 5}.10", "status": "completed" if n % 5 else "voided"}
              for n, pid in enumerate(others)]
    # One sale whose rows name two profiles of different shards: the larger row's profile gets it.
    split = [others[0], next(i for i in others if at8[i] != at8[others[0]])]
    sales += [{"external_id": "POS-SPLIT", "transacted_at": "2026-04-05T01:10:00+11:00", "profile_id": split[0],
               "total": "12.00", "status": "completed"},
              {"external_id": "POS-SPLIT", "transacted_at": "2026-04-05T01:10:00+11:00", "profile_id": split[1],
               "total": "900.00", "status": "completed"}]
    # Redemptions of the whale's benefit 10 and POS usages of it minutes apart, across the hour
    # Melbourne's clocks repeat (15:00-16:00 UTC), competing for the nearest partner; a usage
    # naming its redemption (benefit 11); a usage Omneo never saw (benefit 2, another shard).
    redemptions = [{"id": 900 + n, "profile_id": whale, "created_at": f"2026-04-04T15:{10 * n:02d}:00+00:00",
                    "type": "redeem", "items": [{"id": 7000 + n, "type": "benefit", "item_id": 10, "count": 1}]}
                   for n in range(3)]
    redemptions.append({"id": 910, "profile_id": whale, "created_at": "2026-04-04T15:40:00+00:00", "type": "redeem",
                        "items": [{"id": 7010, "type": "benefit", "item_id": 11, "count": 1}]})
    (folder / "redemptions.json").write_text(json.dumps({"data": redemptions}), encoding="utf-8")
    usages = [("POS-U1", "2026-04-04T15:02:00+00:00", whale, "", "10"),
              ("POS-U2", "2026-04-04T15:06:00+00:00", whale, "", "10"),
              ("POS-U3", "2026-04-04T15:24:00+00:00", whale, "", "10"),
              ("POS-U4", "2026-04-04T15:41:00+00:00", whale, "910", "11"),
              ("POS-U5", "2026-04-04T15:45:00+00:00", others[3], "", "2")]
    sales += [{"external_id": e, "transacted_at": at, "profile_id": pid, "total": "0", "status": "completed",
               "redemption_id": r, "benefit_id": b} for e, at, pid, r, b in usages]
    write_rows(folder / "transactions.csv", [{"redemption_id": "", "benefit_id": "", **s} for s in sales])
    write_rows(folder / "benefit_definitions.csv", [
        definition(id=95, handle="birthday-gift", total_allocations=20, total_allocations_remaining=9),
        definition(id=96, handle="spend-gift", period=7, max_redemptions=3),
    ], DEFINITION_HEADER)
    write_rows(folder / "benefits.csv", [
        # The whale holds the birthday gift until after tonight; another has tonight's already.
        {"id": 1, "profile_id": whale, "benefit_definition_id": 95, "issued_at": "2026-03-01 00:00:00",
         "expires_at": "2026-05-01 00:00:00", "redemptions_remaining": "1", "external_id": "seed:1"},
        {"id": 2, "profile_id": others[3], "benefit_definition_id": 95, "issued_at": "2026-03-30 00:00:00",
         "expires_at": "2026-03-31 00:00:00", "redemptions_remaining": "0",
         "external_id": f"bulk:dst-birthday:2026:{others[3]}"},
        *({"id": 10 + n, "profile_id": whale, "benefit_definition_id": 96, "issued_at": f"2025-0{1 + n}-01 00:00:00",
           "expires_at": "2026-12-01 00:00:00" if n < 2 else f"2025-0{1 + n}-08 00:00:00",
           "redemptions_remaining": "0", "external_id": f"seed:w{n}"}
          for n in range(5)),
    ])
    (folder.parent / "campaigns.toml").write_text(CAMPAIGNS, encoding="utf-8")
    return folder, {"ids": ids, "whale": whale, "empty": empty, "split": split,
                    "at8": {i: at8[i] for i in ids}, "at3": shards_of(spark, ids, 3)}


def night(folder: Path, out: Path, *extra: str, fail_once: str | None = None) -> None:
    result = omneo("run", "--input", str(folder), "--campaigns", str(folder.parent / "campaigns.toml"),
                   "--out", str(out), "--state", str(out.with_name(out.name + "-state")), "--as-of", AS_OF, "-q",
                   *extra, fail_once=fail_once)
    assert result.returncode == 0, result.stderr


def written(out: Path) -> dict[str, str]:
    """The plan, payload and reconciliation files of a run folder, with their manifest digests."""
    outputs = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["outputs"]
    return {o["path"]: o["sha256"] for o in outputs
            if o["path"].startswith(("issuance/", "payloads/", "reconciliation/"))}


def test_a_night_on_1_3_and_8_shards_writes_the_default_engines_plan_payloads_and_reconciliation(
        spark, export, tmp_path):
    folder, layout = export
    at8, whale = layout["at8"], layout["whale"]
    # The layout the test is about, at 8 shards.
    assert [i for i in layout["ids"] if at8[i] == at8[whale]] == [whale]
    assert layout["empty"] not in at8.values()
    assert at8[layout["split"][0]] != at8[layout["split"][1]]

    default = tmp_path / "default"
    night(folder, default)
    plan = pl.read_parquet(default / "issuance" / "plan.parquet")
    reasons = set(plan["reason"].drop_nulls())
    assert {"allocation_exhausted", "duplicate_in_run", "holds_active", "already_issued_this_cycle",
            "profile_inactive"} <= reasons, reasons
    top = plan.filter((pl.col("campaign_id") == "top-spenders") & (pl.col("decision") == "issue"))["profile_id"]
    assert layout["split"][1] in top.to_list()  # the split sale's 900.00 went to its larger row
    shoppers = plan.filter(pl.col("campaign_id") == "shoppers")["profile_id"].to_list()
    assert layout["split"][0] not in shoppers  # its only completed sale was the split one it lost
    capped = plan.filter(pl.col("campaign_id").is_in(["top-spenders", "dst-birthday"]) & (pl.col("decision") == "issue"))
    # The caps cut across shards: their winners come from several shards at 3 and at 8.
    for key in ("at3", "at8"):
        assert len({layout[key][p] for p in capped["profile_id"]}) >= 2
    matches = pl.read_parquet(default / "reconciliation" / "matches.parquet")
    assert {"direct", "nearest"} <= set(matches["paired_by"].drop_nulls()), matches
    found = set(pl.read_parquet(default / "reconciliation" / "exceptions.parquet")["category"])
    assert "missing_in_omneo" in found, found

    benefit_shard = spark.sql("SELECT pmod(hash(CAST(10 AS BIGINT)), 8) AS s").collect()[0].s
    lost = {3: f"issue/{layout['at3'][whale]}", 8: f"reconcile/{benefit_shard}"}
    for shards in (1, 3, 8):
        out = tmp_path / f"spark-{shards}"
        # At 3 shards the whale's issue shard, at 8 its benefit's reconcile shard, loses its
        # Python worker once: Spark runs it again.
        marker = tmp_path / f"lost-once-{shards}"
        fail = f"{lost[shards]}:{marker}:kill" if shards in lost else None
        night(folder, out, "--engine", "spark", "--spark-master", MASTER, "--shards", str(shards), fail_once=fail)
        assert written(out) == written(default), f"{shards} shards"
        assert stage_records(out) == stage_records(default), f"{shards} shards"
        assert marker.exists() == (shards in lost), f"{shards} shards: no shard was lost, the retry was not tested"


def test_an_export_with_columns_spark_has_no_type_for_issues_as_on_the_default_engine(tmp_path):
    """A Parquet export's extra columns keep their types: nanosecond timestamps, UUIDs and
    unsigned integers, which Spark cannot read (or reads as other values). A rule reads the
    unsigned one."""
    from pipeline import db

    export = tmp_path / "export"
    shutil.copytree(REPO / "sample_data", export)
    checked = omneo("validate", "--input", str(export), "--out", str(tmp_path / "checked"), "-q")
    assert checked.returncode == 0, checked.stderr
    (export / "profiles.csv").unlink()
    con = db.connect(threads=1)
    con.execute(f"""COPY (SELECT * EXCLUDE (source_file, source_row),
                             TIMESTAMP_NS '2026-01-01 00:00:00.123456789' AS seen_at,
                             (row_number() OVER (ORDER BY id))::UBIGINT AS visits, uuid() AS token
                      FROM read_parquet({db.literal(str(tmp_path / 'checked' / 'validated' / 'profiles.parquet'))}))
                    TO {db.literal(str(export / 'profiles.parquet'))} (FORMAT parquet)""")
    con.close()
    with (export / "campaigns.toml").open("a", encoding="utf-8") as handle:
        handle.write('\n[[campaigns]]\nid = "frequent"\ndefinition = "first-spend"\n'
                     'audience = \'{">": [{"var": "visits"}, 100]}\'\ncycle = "visits"\n')
    runs = {}
    for name, extra in (("default", ()), ("spark", ("--engine", "spark", "--spark-master", MASTER, "--shards", "3"))):
        runs[name] = tmp_path / name
        result = omneo("issue", "--input", str(export), "--campaigns", str(export / "campaigns.toml"),
                       "--out", str(runs[name]), "--state", str(tmp_path / f"{name}-state"), "--as-of", AS_OF,
                       "--max-reject-ratio", "1", "-q", *extra)
        assert result.returncode == 0, result.stderr
    assert written(runs["spark"]) == written(runs["default"])
    frequent = [c for c in stage_records(runs["default"])[1]["campaigns"] if c["campaign_id"] == "frequent"]
    assert frequent[0]["considered"] > 0
