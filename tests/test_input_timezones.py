"""Time zones: validation accepts exactly the names every later stage can convert.

Python's zoneinfo also knows the machine's own entries (`localtime`, `posixrules`,
`posix/...`), which DuckDB's ICU cannot use: a profile with one passed validation and
crashed `issue`.
"""

from __future__ import annotations

import csv
from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb
import pytest
from click.testing import CliRunner

from conftest import assert_ok, invoke, read_manifest, read_rejects, read_validated, validate, write_csv, write_file
from pipeline.cli import main
from schemas._common import IANA_TIMEZONES

NOT_USABLE = ["localtime", "posixrules", "posix/Australia/Melbourne", "right/UTC", "australia/melbourne",
              " UTC", "UTC ", "Australia/Melbourne\n", "AEST", "+11:00", "GMT+11", ""]


@pytest.mark.parametrize("name", NOT_USABLE)
def test_time_zone_no_stage_can_convert_is_invalid_timezone(input_dir, run_dir, name):
    write_csv(input_dir, "profiles.csv", [["id", "timezone"], ["p1", name], ["p2", "Australia/Perth"]])

    assert_ok(validate(input_dir, run_dir))

    rejects = read_rejects(run_dir, "profiles")
    if name == "":  # an empty CSV field is null: no time zone, which is allowed
        assert rejects.height == 0
        return
    assert rejects.select("source_row", "column", "reason").rows() == [(1, "timezone", "invalid_timezone")]
    assert read_validated(run_dir, "profiles")["id"].to_list() == ["p2"]


def test_every_accepted_time_zone_converts_in_duckdb_and_python():
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        names = sorted(IANA_TIMEZONES)
        converted = con.execute(
            "SELECT count(timezone(name, TIMESTAMP '2026-11-22 09:00:00')) FROM unnest(?::VARCHAR[]) AS t(name)", [names]
        ).fetchone()[0]
    assert converted == len(names)
    for name in names:
        datetime(2026, 11, 22, 9, tzinfo=ZoneInfo(name)).utcoffset()
    assert {"UTC", "Australia/Melbourne", "Australia/Perth", "Pacific/Auckland", "America/New_York"} <= IANA_TIMEZONES
    assert len(IANA_TIMEZONES) > 400


def test_issue_with_a_profile_in_an_unusable_time_zone_rejects_that_profile(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    with (folder / "profiles.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["id", "timezone", "birth_month"], ["p1", "localtime", 11],
                                      ["p2", "Australia/Melbourne", 11]])
    (folder / "benefit_definitions.csv").write_text("id,handle,name,is_assignable\n95,bday,Birthday,true\n")
    (tmp_path / "campaigns.toml").write_text('[[campaigns]]\nid = "b"\ndefinition = "bday"\n')

    result = CliRunner().invoke(main, [
        "issue", "--input", str(folder), "--campaigns", str(tmp_path / "campaigns.toml"), "--out", str(tmp_path / "run"),
        "--as-of", "2026-11-22T09:00:00+11:00", "--state", str(tmp_path / "state"), "--max-reject-ratio", "1"])

    assert_ok(result)
    assert read_rejects(tmp_path / "run", "profiles")["reason"].to_list() == ["invalid_timezone"]


def test_naive_timezone_duckdb_cannot_convert_is_a_usage_error(input_dir, run_dir):
    write_csv(input_dir, "profiles.csv", [["id", "joined_at"], ["p1", "2026-01-01 10:00:00"]])

    result = validate(input_dir, run_dir, "--naive-timezone", "localtime")

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --naive-timezone 'localtime'"), result.stderr
    assert "Traceback" not in result.output


def test_default_timezone_duckdb_cannot_convert_is_a_usage_error(input_dir, run_dir):
    # Python's zoneinfo knows `localtime`; DuckDB does not, so issue would fail half-way.
    write_csv(input_dir, "profiles.csv", [["id"], ["p1"]])

    result = validate(input_dir, run_dir, "--default-timezone", "localtime")

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --default-timezone 'localtime' is not an IANA time zone"), result.stderr
    assert not run_dir.exists()


def test_a_campaign_in_a_zone_duckdb_cannot_convert_stops_before_any_output(tmp_path):
    folder = tmp_path / "in"
    write_csv(folder, "profiles.csv", [["id", "timezone"], ["p1", "Australia/Perth"]])
    write_csv(folder, "benefit_definitions.csv", [["id", "handle", "name"], ["95", "gift", "Gift"]])
    write_file(tmp_path, "campaigns.toml", '[[campaigns]]\nid = "c"\ndefinition = "gift"\ntimezone = "localtime"\n')

    result = invoke(["issue", "--input", folder, "--campaigns", tmp_path / "campaigns.toml", "--out", tmp_path / "run",
                     "--state", tmp_path / "state"])

    assert result.exit_code == 1, result.output
    assert "campaign 'c': timezone 'localtime' is not an IANA time zone" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("wall, zone", [
    ("2026-04-05 02:30:00", "Australia/Melbourne"),  # twice that night: the later, standard time
    ("2026-10-04 02:30:00", "Australia/Melbourne"),  # never that night: the time after the gap
    ("2026-11-15 09:00:00", "America/Vancouver"),    # rules the system's zone files may not have yet
])
def test_a_naive_as_of_is_the_instant_the_same_text_is_in_an_input(input_dir, run_dir, wall, zone):
    # --as-of was converted by Python's zoneinfo: the first instant of an overlap (inputs
    # take the later), and the machine's zone files before tzdata's, unlike DuckDB's ICU.
    # A sale written at the run's own clock then came an hour after it.
    write_csv(input_dir, "profiles.csv", [["id", "joined_at"], ["p1", wall]])

    assert_ok(validate(input_dir, run_dir, "--as-of", wall, "--naive-timezone", zone))

    as_of = datetime.fromisoformat(read_manifest(run_dir)["as_of"])
    assert as_of == read_validated(run_dir, "profiles")["joined_at"][0]
