"""Bulk issuance: skip reasons in the contract's order, expiry across Melbourne's DST changes,
idempotent payloads and state, batching. Each test builds a tiny export in tmp_path."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from pipeline.cli import main

AS_OF = "2026-11-22T09:00:00+11:00"
DEFINITION_HEADER = [
    "id", "handle", "name", "period", "max_redemptions", "is_published", "is_archived", "is_assignable",
    "is_reclaimable", "end_at", "total_allocations", "total_allocations_remaining", "claim_condition",
]


def definition(**overrides) -> dict:
    row = {
        "id": 95, "handle": "birthday-gift", "name": "Birthday Gift", "period": 30, "max_redemptions": 1,
        "is_published": "true", "is_archived": "false", "is_assignable": "true", "is_reclaimable": "true",
        "end_at": "", "total_allocations": "", "total_allocations_remaining": "", "claim_condition": "",
    }
    row.update(overrides)
    return row


def profile(pid: str, **overrides) -> dict:
    row = {"id": pid, "profile_type": "active", "timezone": "Australia/Melbourne",
           "joined_at": "2020-01-01 00:00:00", "birth_month": "11", "tier_handle": "gold"}
    row.update(overrides)
    return row


def write_rows(path: Path, rows: list[dict], header: list[str] | None = None) -> None:
    header = header or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def scenario(tmp_path: Path, profiles: list[dict], definitions: list[dict], campaigns: str,
             benefits: list[dict] | None = None) -> Path:
    folder = tmp_path / "input"
    folder.mkdir()
    write_rows(folder / "profiles.csv", profiles)
    write_rows(folder / "benefit_definitions.csv", definitions, DEFINITION_HEADER)
    if benefits:
        write_rows(folder / "benefits.csv", benefits)
    (tmp_path / "campaigns.toml").write_text(campaigns, encoding="utf-8")
    return folder


def issue(tmp_path: Path, run: str = "run", *extra: str, state: str = "state"):
    result = CliRunner().invoke(main, [
        "issue", "--input", str(tmp_path / "input"), "--campaigns", str(tmp_path / "campaigns.toml"),
        "--out", str(tmp_path / run), "--as-of", AS_OF, "--state", str(tmp_path / state), *extra,
    ])
    return result


def plan(tmp_path: Path, run: str = "run") -> pl.DataFrame:
    return pl.read_parquet(tmp_path / run / "issuance" / "plan.parquet")


def decision(tmp_path: Path, profile_id: str, campaign: str | None = None) -> tuple[str, str | None]:
    rows = plan(tmp_path).filter(pl.col("profile_id") == profile_id)
    if campaign:
        rows = rows.filter(pl.col("campaign_id") == campaign)
    assert rows.height == 1, rows
    return rows["decision"][0], rows["reason"][0]


def payload_lines(tmp_path: Path, run: str = "run") -> list[dict]:
    files = sorted((tmp_path / run / "payloads" / "benefits").glob("part-*.ndjson"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def issued_bodies(tmp_path: Path, run: str = "run") -> list[dict]:
    return [b for line in payload_lines(tmp_path, run) for b in line["body"]["benefits"]]


ONE_CAMPAIGN = """
[[campaigns]]
id = "bday"
definition = "birthday-gift"
issued_at = "2026-11-22 09:00:00"
cycle = "2026"
"""


# Skip reasons, one each --------------------------------------------------------------


def test_issue_writes_plan_row_and_batch_payload(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN)
    result = issue(tmp_path)
    assert result.exit_code == 0, result.output
    assert decision(tmp_path, "p1") == ("issue", None)
    assert payload_lines(tmp_path)[0]["path"] == "/api/v3/benefits/batch.json"
    assert issued_bodies(tmp_path) == [{
        "benefit_definition_id": 95, "profile_id": "p1", "issued_at": "2026-11-22 09:00:00",
        "timezone": "Australia/Melbourne", "external_id": "bulk:bday:2026:p1",
    }]


@pytest.mark.parametrize("flag", [{"is_published": "false"}, {"is_archived": "true"},
                                  {"is_assignable": "false"}, {"end_at": "2026-11-01T00:00:00+11:00"}])
def test_definition_not_issuable(tmp_path, flag):
    scenario(tmp_path, [profile("p1")], [definition(**flag)], ONE_CAMPAIGN)
    assert issue(tmp_path).exit_code == 0
    assert decision(tmp_path, "p1") == ("skip", "definition_not_issuable")
    assert issued_bodies(tmp_path) == []


def test_profile_inactive(tmp_path):
    scenario(tmp_path, [profile("p1", profile_type="temporary"), profile("p2")], [definition()], ONE_CAMPAIGN)
    assert issue(tmp_path).exit_code == 0
    assert decision(tmp_path, "p1") == ("skip", "profile_inactive")
    assert [b["profile_id"] for b in issued_bodies(tmp_path)] == ["p2"]


def test_already_issued_this_cycle_from_export(tmp_path):
    benefits = [{"id": 1, "profile_id": "p1", "benefit_definition_id": 95, "issued_at": "2026-01-01 00:00:00",
                 "expires_at": "2026-02-01 00:00:00", "external_id": "bulk:bday:2026:p1", "redemptions_remaining": 0}]
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN, benefits)
    assert issue(tmp_path).exit_code == 0
    assert decision(tmp_path, "p1") == ("skip", "already_issued_this_cycle")


def test_duplicate_in_run(tmp_path):
    campaigns = ONE_CAMPAIGN + '\n[[campaigns]]\nid = "bday-2"\ndefinition = "birthday-gift"\n'
    scenario(tmp_path, [profile("p1")], [definition()], campaigns)
    assert issue(tmp_path).exit_code == 0
    assert decision(tmp_path, "p1", "bday") == ("issue", None)
    assert decision(tmp_path, "p1", "bday-2") == ("skip", "duplicate_in_run")
    assert len(issued_bodies(tmp_path)) == 1


def test_holds_active_only_for_unexpired_instance_with_remaining(tmp_path):
    benefits = [
        # p1: valid until after issue time, one use left → holds it.
        {"id": 1, "profile_id": "p1", "benefit_definition_id": 95, "issued_at": "2026-11-01 00:00:00",
         "expires_at": "2026-12-01 00:00:00", "redemptions_remaining": "1"},
        # p2: expired before issue time → does not hold it.
        {"id": 2, "profile_id": "p2", "benefit_definition_id": 95, "issued_at": "2026-09-01 00:00:00",
         "expires_at": "2026-10-01 00:00:00", "redemptions_remaining": "1"},
        # p3: valid but used up → does not hold it.
        {"id": 3, "profile_id": "p3", "benefit_definition_id": 95, "issued_at": "2026-11-01 00:00:00",
         "expires_at": "2026-12-01 00:00:00", "redemptions_remaining": "0"},
        # p4: no expiry and unknown remaining (null counts as remaining) → holds it.
        {"id": 4, "profile_id": "p4", "benefit_definition_id": 95, "issued_at": "2026-11-01 00:00:00",
         "expires_at": "", "redemptions_remaining": ""},
    ]
    scenario(tmp_path, [profile(p) for p in ("p1", "p2", "p3", "p4")], [definition()], ONE_CAMPAIGN, benefits)
    assert issue(tmp_path).exit_code == 0
    assert decision(tmp_path, "p1") == ("skip", "holds_active")
    assert decision(tmp_path, "p4") == ("skip", "holds_active")
    assert sorted(b["profile_id"] for b in issued_bodies(tmp_path)) == ["p2", "p3"]


def test_not_reclaimable_when_ever_held(tmp_path):
    benefits = [{"id": 1, "profile_id": "p1", "benefit_definition_id": 95, "issued_at": "2025-01-01 00:00:00",
                 "expires_at": "2025-02-01 00:00:00", "redemptions_remaining": "0"}]
    scenario(tmp_path, [profile("p1"), profile("p2")], [definition(is_reclaimable="false")], ONE_CAMPAIGN, benefits)
    assert issue(tmp_path).exit_code == 0
    assert decision(tmp_path, "p1") == ("skip", "not_reclaimable")
    assert decision(tmp_path, "p2") == ("issue", None)


def test_allocation_exhausted_in_priority_order_ties_by_id(tmp_path):
    people = [profile("p3", joined_at="2021-01-01 00:00:00"), profile("p1", joined_at="2022-01-01 00:00:00"),
              profile("p2", joined_at="2021-01-01 00:00:00"), profile("p4", profile_type="deleted")]
    campaigns = ONE_CAMPAIGN + 'priority = "joined_at"\n'
    scenario(tmp_path, people, [definition(total_allocations=10, total_allocations_remaining=2)], campaigns)
    assert issue(tmp_path).exit_code == 0
    # p2 and p3 joined first (tie broken by id); p1 is beyond the 2 remaining.
    assert decision(tmp_path, "p2") == ("issue", None)
    assert decision(tmp_path, "p3") == ("issue", None)
    assert decision(tmp_path, "p1") == ("skip", "allocation_exhausted")
    # An earlier reason wins over allocation and does not use up the cap.
    assert decision(tmp_path, "p4") == ("skip", "profile_inactive")


def test_descending_priority_and_campaign_limit(tmp_path):
    people = [profile("p1", joined_at="2021-01-01 00:00:00"), profile("p2", joined_at="2023-01-01 00:00:00"),
              profile("p3", joined_at="2022-01-01 00:00:00")]
    campaigns = ONE_CAMPAIGN + 'priority = "-joined_at"\nlimit = 1\n'
    scenario(tmp_path, people, [definition()], campaigns)
    assert issue(tmp_path).exit_code == 0
    assert [b["profile_id"] for b in issued_bodies(tmp_path)] == ["p2"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    counts = next(s for s in manifest["stages"] if s["stage"] == "issue")["campaigns"][0]
    assert counts["considered"] == 3
    assert counts["issued"] == 1
    assert counts["skipped"]["allocation_exhausted"] == 2
    assert counts["allocation"] == {"cap": 1, "used": 1}


@pytest.mark.parametrize("priority", ["joined_at", "-joined_at"])
def test_a_profile_without_a_priority_value_is_allocated_last_either_way(tmp_path, priority):
    people = [profile("p1", joined_at=""), profile("p2", joined_at="2021-01-01 00:00:00"),
              profile("p3", joined_at="2023-01-01 00:00:00")]
    scenario(tmp_path, people, [definition()], ONE_CAMPAIGN + f'priority = "{priority}"\nlimit = 2\n')
    assert issue(tmp_path).exit_code == 0
    assert sorted(b["profile_id"] for b in issued_bodies(tmp_path)) == ["p2", "p3"]
    assert decision(tmp_path, "p1") == ("skip", "allocation_exhausted")


# Expiry across Melbourne's 2026 DST changes ---------------------------------------------
# DST ends 2026-04-05 03:00 AEDT (+11) → 02:00 AEST (+10); starts 2026-10-04 02:00 AEST → 03:00 AEDT.


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("issued_at", "period", "issued_utc", "expires_local", "expires_utc"),
    [
        # Just before DST ends: +11 at issue; expiry day 5 April is +10 by 23:59:59.
        ("2026-04-05 01:30:00", 0, utc(2026, 4, 4, 14, 30), datetime(2026, 4, 5, 23, 59, 59), utc(2026, 4, 5, 13, 59, 59)),
        # Just after DST ended (03:30 AEST).
        ("2026-04-05 03:30:00", 1, utc(2026, 4, 4, 17, 30), datetime(2026, 4, 6, 23, 59, 59), utc(2026, 4, 6, 13, 59, 59)),
        # The evening before DST ends: expiry the same day, still +11.
        ("2026-04-04 22:00:00", 0, utc(2026, 4, 4, 11, 0), datetime(2026, 4, 4, 23, 59, 59), utc(2026, 4, 4, 12, 59, 59)),
        # Just before DST starts (01:30 AEST, +10); expiry day 4 October is +11.
        ("2026-10-04 01:30:00", 0, utc(2026, 10, 3, 15, 30), datetime(2026, 10, 4, 23, 59, 59), utc(2026, 10, 4, 12, 59, 59)),
        # Just after DST started (03:30 AEDT, +11).
        ("2026-10-04 03:30:00", 2, utc(2026, 10, 3, 16, 30), datetime(2026, 10, 6, 23, 59, 59), utc(2026, 10, 6, 12, 59, 59)),
    ],
)
def test_expiry_on_dst_change_days(tmp_path, issued_at, period, issued_utc, expires_local, expires_utc):
    campaigns = f'[[campaigns]]\nid = "c"\ndefinition = "birthday-gift"\nissued_at = "{issued_at}"\n'
    scenario(tmp_path, [profile("p1")], [definition(period=period)], campaigns)
    assert issue(tmp_path).exit_code == 0
    row = plan(tmp_path).row(0, named=True)
    assert row["issued_at_local"] == datetime.fromisoformat(issued_at)
    assert row["issued_at_utc"] == issued_utc
    assert row["expires_at_local"] == expires_local
    assert row["expires_at_utc"] == expires_utc


@pytest.mark.parametrize(
    ("zone", "issued_at", "issued_local", "issued_utc", "expires_local", "expires_utc"),
    [
        # 02:30 on 4 October 2026 never was in Melbourne: the plan and the payload said 02:30
        # beside an instant that reads 03:30 AEDT.
        ("Australia/Melbourne", "2026-10-04 02:30:00", datetime(2026, 10, 4, 3, 30), utc(2026, 10, 3, 16, 30),
         datetime(2026, 10, 4, 23, 59, 59), utc(2026, 10, 4, 12, 59, 59)),
        # Nuuk goes from -02 to -01 at 23:00 on 28 March 2026: that day ends at 22:59:59. Its
        # 23:59:59, which never was, read as 00:59:59 the next day, an hour into the 29th.
        ("America/Nuuk", "2026-03-28 10:00:00", datetime(2026, 3, 28, 10, 0), utc(2026, 3, 28, 12, 0),
         datetime(2026, 3, 28, 22, 59, 59), utc(2026, 3, 29, 0, 59, 59)),
    ],
)
def test_times_that_never_were_are_the_ones_their_instants_read(tmp_path, zone, issued_at, issued_local, issued_utc,
                                                                  expires_local, expires_utc):
    campaigns = f'[[campaigns]]\nid = "c"\ndefinition = "birthday-gift"\nissued_at = "{issued_at}"\n'
    scenario(tmp_path, [profile("p1", timezone=zone)], [definition(period=0)], campaigns)
    assert issue(tmp_path).exit_code == 0
    row = plan(tmp_path).row(0, named=True)
    assert (row["issued_at_local"], row["issued_at_utc"]) == (issued_local, issued_utc)
    assert (row["expires_at_local"], row["expires_at_utc"]) == (expires_local, expires_utc)
    [call] = [json.loads(line) for line in (tmp_path / "run" / "payloads" / "benefits").glob("*.ndjson").__next__()
              .read_text().splitlines()]
    assert call["body"]["benefits"][0]["issued_at"] == issued_local.strftime("%Y-%m-%d %H:%M:%S")


def test_null_period_has_no_expiry(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition(period="")], ONE_CAMPAIGN)
    assert issue(tmp_path).exit_code == 0
    row = plan(tmp_path).row(0, named=True)
    assert row["expires_at_local"] is None and row["expires_at_utc"] is None


def test_end_at_caps_expiry(tmp_path):
    # 22 Nov + 30 days would be 22 Dec; end_at 30 Nov 12:00 AEDT (01:00 UTC) comes first.
    scenario(tmp_path, [profile("p1")], [definition(period=30, end_at="2026-11-30T12:00:00+11:00")], ONE_CAMPAIGN)
    assert issue(tmp_path).exit_code == 0
    row = plan(tmp_path).row(0, named=True)
    assert row["expires_at_utc"] == utc(2026, 11, 30, 1, 0)
    assert row["expires_at_local"] == datetime(2026, 11, 30, 12, 0)


def test_null_period_with_end_at_expires_at_end_at(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition(period="", end_at="2027-01-31T23:59:59+11:00")], ONE_CAMPAIGN)
    assert issue(tmp_path).exit_code == 0
    assert plan(tmp_path)["expires_at_utc"][0] == utc(2027, 1, 31, 12, 59, 59)


def test_campaign_timezone_overrides_profile_timezone(tmp_path):
    campaigns = ONE_CAMPAIGN + 'timezone = "Australia/Perth"\n'
    scenario(tmp_path, [profile("p1")], [definition(period=0)], campaigns)
    assert issue(tmp_path).exit_code == 0
    row = plan(tmp_path).row(0, named=True)
    assert row["timezone"] == "Australia/Perth"
    assert row["issued_at_utc"] == utc(2026, 11, 22, 1, 0)  # Perth is +8, no DST


# Idempotency and state -------------------------------------------------------------------


def test_rerun_is_byte_identical_and_state_prevents_reissue(tmp_path):
    people = [profile(f"p{n:02d}") for n in range(12)]
    scenario(tmp_path, people, [definition()], ONE_CAMPAIGN)
    assert issue(tmp_path, "first", "--batch-size", "5", state="state-a").exit_code == 0
    assert issue(tmp_path, "second", "--batch-size", "5", state="state-b").exit_code == 0
    first = sorted((tmp_path / "first" / "payloads" / "benefits").glob("*.ndjson"))
    second = sorted((tmp_path / "second" / "payloads" / "benefits").glob("*.ndjson"))
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]

    # Omneo's export has not caught up, but the state of the first run says it was emitted.
    assert issue(tmp_path, "third", state="state-a").exit_code == 0
    assert issued_bodies(tmp_path, "third") == []
    assert set(plan(tmp_path, "third")["reason"]) == {"already_issued_this_cycle"}


def test_state_counts_against_allocation_until_export_shows_it(tmp_path):
    people = [profile(f"p{n}") for n in range(4)]
    campaigns = ONE_CAMPAIGN + "limit = 2\n"
    scenario(tmp_path, people, [definition(total_allocations=3, total_allocations_remaining=3)], campaigns)
    assert issue(tmp_path, "first").exit_code == 0
    assert len(issued_bodies(tmp_path, "first")) == 2
    # A new cycle: the two pending instances use 2 of the 3 remaining.
    (tmp_path / "campaigns.toml").write_text(ONE_CAMPAIGN.replace('"2026"', '"2027"'), encoding="utf-8")
    assert issue(tmp_path, "second").exit_code == 0
    bodies = issued_bodies(tmp_path, "second")
    # p0/p1 hold pending instances (holds_active); only one allocation is left for p2, p3.
    assert [b["profile_id"] for b in bodies] == ["p2"]


def hold_state(state_dir: Path) -> subprocess.Popen:
    """Another process holding the state folder, as a run still going would; returns once held."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from pipeline.state import locked\n"
         f"with locked(Path({str(state_dir)!r})):\n    print('held', flush=True)\n    sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_second_run_sharing_the_state_stops_before_any_output(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN)
    holder = hold_state(tmp_path / "state")
    try:
        result = issue(tmp_path)
        assert result.exit_code == 1
        assert f"state folder {tmp_path / 'state'} is in use by another run (pid {holder.pid} since" in result.output
        assert not (tmp_path / "run").exists()
    finally:
        holder.communicate("")  # the holder finishes; its lock goes with it
    assert issue(tmp_path).exit_code == 0
    assert plan(tmp_path)["profile_id"].to_list() == ["p1"]


def test_a_killed_run_leaves_the_state_free(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN)
    holder = hold_state(tmp_path / "state")
    holder.kill()
    holder.wait()
    assert issue(tmp_path).exit_code == 0


def test_failed_run_does_not_update_state(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN + 'priority = "no_such_column"\n')
    result = issue(tmp_path)
    assert result.exit_code == 1
    assert "no_such_column" in result.output
    assert not list((tmp_path / "state").rglob("*.parquet"))
    # ...and leaves the state free for the next run in this same process.
    (tmp_path / "campaigns.toml").write_text(ONE_CAMPAIGN, encoding="utf-8")
    assert issue(tmp_path).exit_code == 0


def test_bad_setting_stops_before_the_state_folder_is_made(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN)
    result = issue(tmp_path, "run", "--default-timezone", "Mars/Base")
    assert result.exit_code == 2
    assert not (tmp_path / "state").exists()


# Payload files ------------------------------------------------------------------------------


def test_batches_respect_batch_size_and_sum_to_plan(tmp_path):
    scenario(tmp_path, [profile(f"p{n:02d}") for n in range(23)], [definition()], ONE_CAMPAIGN)
    assert issue(tmp_path, "run", "--batch-size", "5", "--lines-per-file", "2").exit_code == 0
    files = sorted((tmp_path / "run" / "payloads" / "benefits").glob("part-*.ndjson"))
    assert [f.name for f in files] == ["part-00000.ndjson", "part-00001.ndjson", "part-00002.ndjson"]
    lines = payload_lines(tmp_path)
    assert [len(line["body"]["benefits"]) for line in lines] == [5, 5, 5, 5, 3]
    assert len({line["idempotency_key"] for line in lines}) == 5
    assert sum(len(line["body"]["benefits"]) for line in lines) == plan(tmp_path)["decision"].eq("issue").sum()


def test_single_writes_one_call_per_benefit(tmp_path):
    scenario(tmp_path, [profile("p1"), profile("p2")], [definition()], ONE_CAMPAIGN)
    assert issue(tmp_path, "run", "--single").exit_code == 0
    lines = payload_lines(tmp_path)
    assert [line["path"] for line in lines] == ["/api/v3/benefits", "/api/v3/benefits"]
    assert [line["body"]["profile_id"] for line in lines] == ["p1", "p2"]
    assert lines[0]["body"]["external_id"] == "bulk:bday:2026:p1"


# Bad campaigns stop the run before any output ------------------------------------------------


@pytest.mark.parametrize(
    ("campaigns", "message"),
    [
        ('[[campaigns]]\nid = "x"\ndefinition = "nope"\n', "unknown definition 'nope'"),
        ('[[campaigns]]\nid = "x"\ndefinition = "birthday-gift"\ntimezone = "Mars/Base"\n', "not an IANA time zone"),
        ('[[campaigns]]\nid = "x"\ndefinition = "birthday-gift"\n[[campaigns]]\nid = "x"\ndefinition = "birthday-gift"\n',
         "duplicate campaign id"),
        ('[[campaigns]]\nid = "x"\ndefinition = "birthday-gift"\naudience = \'{"regex": [1]}\'\n', "regex"),
        ('[[campaigns]]\nid = "x"\ndefinition = "birthday-gift"\naudience = \'{"==": [1\'\n', "not valid JSON"),
        # A typo reads as null, and null passes <=: every profile was in the audience.
        ('[[campaigns]]\nid = "x"\ndefinition = "birthday-gift"\naudience = \'{"<=": [{"var": "days_since_join"}, 30]}\'\n',
         "audience reads 'days_since_join', which is no profile variable (did you mean 'days_since_joined'?)"),
        ('[[campaigns]]\nid = "x"\ndefinition = "birthday-gift"\naudience = \'{"missing": ["tier_hadle"]}\'\n',
         "audience reads 'tier_hadle'"),
        # Valid, but deeper than the compiler can recurse: it was an internal RecursionError.
        ('[[campaigns]]\nid = "x"\ndefinition = "birthday-gift"\naudience = \'' + '{"!": ' * 500 + 'true'
         + '}' * 500 + '\'\n', "rule nests 500 levels deep, more than the 256"),
    ],
)
def test_bad_campaign_stops_before_any_output(tmp_path, campaigns, message):
    scenario(tmp_path, [profile("p1")], [definition()], campaigns)
    result = issue(tmp_path)
    assert result.exit_code == 1
    assert "campaign 'x'" in result.output and message in result.output
    # One line naming the file, whichever check found the fault.
    assert result.output.startswith(f"error: {tmp_path / 'campaigns.toml'}: campaign 'x': "), result.output
    assert not (tmp_path / "run" / "manifest.json").exists()
    assert not (tmp_path / "run" / "issuance").exists()
    assert not (tmp_path / "run" / "validated").exists()


def test_names_read_inside_a_lambda_or_under_a_json_column_are_not_profile_variables_to_check(tmp_path):
    # Inside some/all/map a var reads the element; under attributes, the JSON. Neither is a
    # typo of a profile variable, so neither stops the run.
    people = [profile("p1", tags='["vip"]', attributes='{"comms": {"email_promo": true}}'), profile("p2", tags='[]')]
    audience = ('{"and": [{"some": [{"var": "tags"}, {"==": [{"var": ""}, "vip"]}]}, '
                '{"none": [{"var": "tags"}, {"==": [{"var": "no_such_field"}, 1]}]}, '
                '{"var": "attributes.comms.email_promo"}]}')
    scenario(tmp_path, people, [definition()], ONE_CAMPAIGN + f"audience = '{audience}'\n")

    result = issue(tmp_path)

    assert result.exit_code == 0, result.output
    assert plan(tmp_path)["profile_id"].to_list() == ["p1"]


# The profile context holds only what rules read; what they read must still be right ---------


def test_audience_on_extra_column_attribute_path_and_spend(tmp_path):
    people = [
        profile("p1", region="VIC", attributes='{"comms": {"email_promo": true}}'),
        profile("p2", region="VIC", attributes='{"comms": {"email_promo": false}}'),
        profile("p3", region="NSW", attributes='{"comms": {"email_promo": true}}'),
    ]
    folder = scenario(tmp_path, people, [definition()], ONE_CAMPAIGN + (
        "audience = '{\"and\": [{\"==\": [{\"var\": \"region\"}, \"VIC\"]}, "
        "{\"var\": \"attributes.comms.email_promo\"}, {\">=\": [{\"var\": \"aggregations.spend_12m\"}, 100]}]}'\n"))
    write_rows(folder / "transactions.csv", [
        {"external_id": "T1", "transacted_at": "2026-10-01 10:00:00", "profile_id": "p1", "total": "120", "status": "completed"},
        {"external_id": "T2", "transacted_at": "2026-10-01 10:00:00", "profile_id": "p2", "total": "500", "status": "completed"},
        {"external_id": "T3", "transacted_at": "2026-10-01 10:00:00", "profile_id": "p3", "total": "500", "status": "completed"},
    ])
    assert issue(tmp_path).exit_code == 0
    # Only p1 is in VIC, opted in and spent at least 100 in the last 12 months.
    assert plan(tmp_path)["profile_id"].to_list() == ["p1"]
    counts = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][1]["campaigns"][0]
    assert counts["not_in_audience"] == 2


@pytest.mark.parametrize("audience, condition, expected", [
    # (not_in_audience, condition_false, considered) of profiles p1 VIC gold, p2 VIC silver,
    # p3 NSW gold, p4 NSW silver.
    ("{\"==\": [{\"var\": \"region\"}, \"VIC\"]}", "", (2, 0, 2)),
    (None, "{\"==\": [{\"var\": \"tier.handle\"}, \"gold\"]}", (0, 2, 2)),
    ("{\"==\": [{\"var\": \"region\"}, \"VIC\"]}", "{\"==\": [{\"var\": \"tier.handle\"}, \"gold\"]}", (2, 1, 1)),
])
def test_campaign_counts_audience_and_condition_apart(tmp_path, audience, condition, expected):
    people = [profile("p1", region="VIC"), profile("p2", region="VIC", tier_handle="silver"),
              profile("p3", region="NSW"), profile("p4", region="NSW", tier_handle="silver")]
    campaigns = ONE_CAMPAIGN + (f"audience = '{audience}'\n" if audience else "")
    scenario(tmp_path, people, [definition(claim_condition=condition)], campaigns)
    assert issue(tmp_path).exit_code == 0
    counts = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"][1]["campaigns"][0]
    assert (counts["not_in_audience"], counts["condition_false"], counts["considered"]) == expected


def test_spend_is_summed_exactly_so_reruns_decide_alike(tmp_path):
    # As doubles, 0.1 + 0.2 is 0.30000000000000004, and the order threads add sales in can
    # move the last digit: a threshold must see the exact sum.
    folder = scenario(tmp_path, [profile("p1"), profile("p2")], [definition()], ONE_CAMPAIGN + (
        "audience = '{\"==\": [{\"var\": \"aggregations.spend_all\"}, 0.3]}'\n"))
    write_rows(folder / "transactions.csv", [
        {"external_id": "T1", "transacted_at": "2026-10-01 10:00:00", "profile_id": "p1", "total": "0.1", "status": "completed"},
        {"external_id": "T2", "transacted_at": "2026-10-02 10:00:00", "profile_id": "p1", "total": "0.2", "status": "completed"},
        {"external_id": "T3", "transacted_at": "2026-10-02 10:00:00", "profile_id": "p2", "total": "0.30001", "status": "completed"},
    ])
    assert issue(tmp_path).exit_code == 0
    assert plan(tmp_path)["profile_id"].to_list() == ["p1"]


def test_a_sale_of_several_rows_counts_once_for_its_largest_row(tmp_path):
    # One sale, three rows: the largest total wins, ties go to the greater profile id, and a
    # row without a total never beats one with it. So T1 is p2's sale of 10 and p1 has none.
    folder = scenario(tmp_path, [profile("p1"), profile("p2")], [definition()], ONE_CAMPAIGN + (
        "audience = '{\"and\": [{\"==\": [{\"var\": \"aggregations.shop_count\"}, 1]}, "
        "{\"==\": [{\"var\": \"aggregations.spend_all\"}, 10]}]}'\n"))
    write_rows(folder / "transactions.csv", [
        {"external_id": "T1", "transacted_at": "2026-10-01 10:00:00", "profile_id": "p1", "total": "10", "status": "completed"},
        {"external_id": "T1", "transacted_at": "2026-10-01 10:00:00", "profile_id": "p2", "total": "10", "status": "completed"},
        {"external_id": "T1", "transacted_at": "2026-10-01 10:00:00", "profile_id": "p1", "total": "", "status": "completed"},
    ])
    assert issue(tmp_path).exit_code == 0
    assert plan(tmp_path)["profile_id"].to_list() == ["p2"]


def test_rule_with_computed_variable_name_still_sees_every_column(tmp_path):
    # {"var": {"cat": ["reg", "ion"]}} names "region" only at run time.
    people = [profile("p1", region="VIC"), profile("p2", region="NSW")]
    scenario(tmp_path, people, [definition()], ONE_CAMPAIGN +
             "audience = '{\"==\": [{\"var\": {\"cat\": [\"reg\", \"ion\"]}}, \"VIC\"]}'\n")
    assert issue(tmp_path).exit_code == 0
    assert plan(tmp_path)["profile_id"].to_list() == ["p1"]


def test_plan_and_payload_order_is_campaign_then_profile(tmp_path):
    ids = [f"p{n:02d}" for n in range(30)]
    shuffled = ids[7:] + ids[:7]
    shuffled.reverse()
    campaigns = ONE_CAMPAIGN + (
        '\n[[campaigns]]\nid = "fs"\ndefinition = "first-spend"\n'
    )
    scenario(tmp_path, [profile(p) for p in shuffled],
             [definition(), definition(id=94, handle="first-spend", name="First Spend")], campaigns)
    assert issue(tmp_path, "run", "--batch-size", "7").exit_code == 0
    rows = plan(tmp_path).select("campaign_id", "profile_id").rows()
    assert rows == [("bday", p) for p in ids] + [("fs", p) for p in ids]
    bodies = issued_bodies(tmp_path)
    assert [(b["benefit_definition_id"], b["profile_id"]) for b in bodies] == [(95, p) for p in ids] + [(94, p) for p in ids]


def test_payload_lines_are_valid_json_whatever_the_campaign_id(tmp_path):
    campaign_id = 'vip "gold" \\\\ night\\tone'
    campaigns = f"[[campaigns]]\nid = '{campaign_id}'\ndefinition = \"birthday-gift\"\ncycle = \"2026\"\n"
    scenario(tmp_path, [profile("p1")], [definition()], campaigns)
    assert issue(tmp_path).exit_code == 0
    (body,) = issued_bodies(tmp_path)
    assert body["external_id"] == f"bulk:{campaign_id}:2026:p1"


def test_a_campaign_statement_is_given_only_the_parameters_its_sql_uses_not_those_in_comments():
    import duckdb

    from pipeline import db

    sql = "SELECT $cap AS cap -- unlike $position, which only this comment names\n, $cycle AS cycle"
    values = {"cap": 5, "position": 2, "cycle": "2026"}

    bound = db.named(sql, values)

    # DuckDB refuses a parameter its statement does not use: the statement must run as bound.
    assert duckdb.connect().execute(sql, bound).fetchall() == [(5, "2026")]
    assert bound == {"cap": 5, "cycle": "2026"}
