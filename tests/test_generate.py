"""`omneo-bulk generate`: synthetic exports whose planted faults the pipeline must find, and nothing else.

Each export is generated once per module and run through `omneo-bulk run` as a user would;
the tests compare what the run reports (exceptions, rejects, manifest) with truth/.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shlex
from pathlib import Path

import polars as pl
import pytest

from conftest import DATASET_NAMES, invoke
from pipeline.reconcile import CATEGORIES

AS_OF = "2026-11-22T09:00:00+11:00"
FINDING = ["category", "action", "profile_id", "benefit_id", "definition_id", "redemption_id",
           "transaction_external_id"]
REJECT = ["dataset", "source_file", "source_row", "column", "reason"]
ID_COLUMNS = {"benefit_id", "definition_id", "redemption_id", "source_row"}
# Every reject reason of docs/validation.md.
REASONS = {"malformed_row", "invalid_type", "missing_value", "out_of_range", "invalid_timezone", "invalid_value",
           "date_order", "invalid_rule", "duplicate_key", "unknown_definition", "unknown_redemption"}


def clean_env() -> dict:
    """The developer's OMNEO_BULK_* settings unset (module fixtures run outside the autouse one)."""
    return {name: None for name in os.environ if name.startswith("OMNEO_BULK")}


class Generated:
    """A generated folder, the output of the generate command, and the run over it."""

    def __init__(self, root: Path, profiles: int, seed: int, file_format: str):
        self.folder = root / "exports"
        self.run_dir = root / "run"
        self.generate_result = invoke(["generate", "--out", self.folder, "--profiles", profiles, "--seed", seed,
                                       "--format", file_format], env=clean_env())
        self.run_result = invoke(["run", "--input", self.folder, "--campaigns", self.folder / "campaigns.toml",
                                  "--out", self.run_dir, "--as-of", AS_OF, "--state", root / "state"],
                                 env=clean_env())

    def truth(self, name: str) -> list[dict]:
        with (self.folder / "truth" / name).open(newline="", encoding="utf-8") as handle:
            return [{k: typed(k, v) for k, v in row.items()} for row in csv.DictReader(handle)]

    def planted_findings(self) -> set[tuple]:
        return {tuple(row[c] for c in FINDING) for row in self.truth("anomalies.csv")}

    def exceptions(self) -> pl.DataFrame:
        return pl.read_parquet(self.run_dir / "reconciliation" / "exceptions.parquet")

    def found_findings(self) -> set[tuple]:
        return set(self.exceptions().select(FINDING).iter_rows())

    def planted_rejects(self) -> set[tuple]:
        return {tuple(row[c] for c in REJECT) for row in self.truth("invalid_rows.csv")}

    def rejects(self) -> pl.DataFrame:
        frames = [pl.read_parquet(self.run_dir / "rejects" / f"{name}.parquet") for name in DATASET_NAMES]
        return pl.concat(frames).select(REJECT)

    def found_rejects(self) -> set[tuple]:
        # An empty column name is written as null by the CSV writer of truth/: compare as null.
        return {tuple(None if v == "" else v for v in row) for row in self.rejects().iter_rows()}

    def manifest(self) -> dict:
        return json.loads((self.run_dir / "manifest.json").read_text(encoding="utf-8"))


def typed(column: str, value: str):
    if value == "":
        return None
    return int(value) if column in ID_COLUMNS else value


@pytest.fixture(scope="module")
def csv_export(tmp_path_factory) -> Generated:
    return Generated(tmp_path_factory.mktemp("csv"), 20000, 7, "csv")


@pytest.fixture(scope="module")
def parquet_export(tmp_path_factory) -> Generated:
    return Generated(tmp_path_factory.mktemp("parquet"), 3000, 3, "parquet")


@pytest.fixture(params=["csv", "parquet"])
def export(request, csv_export, parquet_export) -> Generated:
    return {"csv": csv_export, "parquet": parquet_export}[request.param]


def sha256_of(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# The generate command ----------------------------------------------------------------------


def test_generate_prints_rows_per_file_and_where_truth_is(csv_export):
    result = csv_export.generate_result
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    printed = {line.split()[0]: int(line.split()[1]) for line in lines[:-1]}
    assert list(printed) == list(DATASET_NAMES)
    anomalies, invalid = len(csv_export.truth("anomalies.csv")), len(csv_export.truth("invalid_rows.csv"))
    truth = csv_export.folder / "truth"
    assert lines[-1] == f"{anomalies} planted anomalies and {invalid} invalid rows listed in {truth}"
    # Each printed figure is what the file holds: the run read exactly that many rows of it.
    read = {entry["dataset"]: entry["rows_read"] for entry in csv_export.manifest()["inputs"]}
    assert read == printed


def test_every_dataset_file_campaigns_and_truth_are_written(csv_export, parquet_export):
    for generated, extension in ((csv_export, "csv"), (parquet_export, "parquet")):
        names = {p.name for p in generated.folder.iterdir()}
        assert names == {f"{d}.{extension}" for d in DATASET_NAMES} | {"campaigns.toml", "truth"}
        assert {p.name for p in (generated.folder / "truth").iterdir()} == {
            "anomalies.csv", "invalid_rows.csv", "generated.json", "README.md"}


def test_sizes_are_realistic(csv_export):
    rows = {entry["dataset"]: entry["rows_read"] for entry in csv_export.manifest()["inputs"]}
    profiles = 20000
    # About half a benefit and half a POS row per profile, a redemption for about half the benefits.
    assert 0.4 * profiles < rows["benefits"] < 0.6 * profiles
    assert 0.4 * profiles < rows["transactions"] < 0.6 * profiles
    assert 0.4 * rows["benefits"] < rows["redemptions"] < 0.65 * rows["benefits"]
    assert 15 <= rows["benefit_definitions"] <= 40
    assert rows["returns"] > 0 and rows["redemption_items"] > 0


def test_run_over_the_export_succeeds_with_the_default_reject_ratio(export):
    assert export.run_result.exit_code == 0, (export.run_result.output, export.run_result.exception)
    validate = next(s for s in export.manifest()["stages"] if s["stage"] == "validate")
    assert 0 < validate["reject_ratio"] < 0.05


def test_generated_json_names_seed_size_and_the_run_to_reproduce(csv_export):
    described = json.loads((csv_export.folder / "truth" / "generated.json").read_text(encoding="utf-8"))
    assert (described["seed"], described["profiles"], described["format"]) == (7, 20000, "csv")
    command = shlex.split(described["run_command"])
    assert command[:2] == ["omneo-bulk", "run"]
    options = dict(zip(command[2::2], command[3::2]))
    assert options["--input"] == str(csv_export.folder)
    assert options["--campaigns"] == str(csv_export.folder / "campaigns.toml")
    # The same instant as the run's --as-of, whatever offset it is written in.
    assert options["--as-of"] == described["as_of"]
    assert csv_export.manifest()["as_of"] == described["as_of"]


# Planted reconciliation findings ---------------------------------------------------------


def test_every_category_and_missing_in_omneo_action_is_planted(export):
    planted = export.truth("anomalies.csv")
    assert {row["category"] for row in planted} == set(CATEGORIES)
    missing = {row["action"] for row in planted if row["category"] == "missing_in_omneo"}
    assert missing == {"redemption", "claim_redeem", "manual_review"}


def test_every_planted_anomaly_is_found_with_its_category_and_action(export):
    not_found = export.planted_findings() - export.found_findings()
    assert not not_found, sorted(not_found, key=str)[:10]


def test_no_finding_outside_the_planted_ones(export):
    # The background is clean: every other benefit, redemption and sale reconciles.
    unexpected = export.found_findings() - export.planted_findings()
    assert not unexpected, sorted(unexpected, key=str)[:10]
    assert export.exceptions().height == len(export.truth("anomalies.csv"))


def test_manifest_counts_the_planted_findings_per_category(csv_export):
    reconcile = next(s for s in csv_export.manifest()["stages"] if s["stage"] == "reconcile")
    planted = {c: 0 for c in CATEGORIES}
    for row in csv_export.truth("anomalies.csv"):
        planted[row["category"]] += 1
    assert reconcile["categories"] == planted
    # 20000 profiles: five of each variant (two global caps); several variants share a category.
    assert planted["missing_in_pos"] == 5 and planted["global_over_redeemed"] == 2


# Planted invalid rows ----------------------------------------------------------------------


def test_every_reject_reason_is_planted_in_csv(csv_export):
    assert {row["reason"] for row in csv_export.truth("invalid_rows.csv")} == REASONS
    datasets = {row["dataset"] for row in csv_export.truth("invalid_rows.csv")}
    assert datasets == set(DATASET_NAMES)


def test_parquet_plants_every_reason_a_typed_file_can_hold(parquet_export):
    # A Parquet column holds its type: no text where a number belongs, no broken record.
    reasons = {row["reason"] for row in parquet_export.truth("invalid_rows.csv")}
    assert reasons == REASONS - {"malformed_row"}
    planted = parquet_export.truth("invalid_rows.csv")
    assert {row["column"] for row in planted if row["reason"] == "invalid_type"} == {"attributes"}


def test_every_planted_invalid_row_is_rejected_for_its_reason(export):
    not_rejected = export.planted_rejects() - export.found_rejects()
    assert not not_rejected, sorted(not_rejected, key=str)[:10]


def test_no_row_is_rejected_but_the_planted_ones(export):
    unexpected = export.found_rejects() - export.planted_rejects()
    assert not unexpected, sorted(unexpected, key=str)[:10]
    # One reject row per planted row: each breaks exactly one rule.
    assert export.rejects().height == len(export.truth("invalid_rows.csv"))


# Campaigns ---------------------------------------------------------------------------------


def test_campaigns_exercise_the_definitions(csv_export):
    issue = next(s for s in csv_export.manifest()["stages"] if s["stage"] == "issue")
    campaigns = {c["campaign_id"]: c for c in issue["campaigns"]}
    assert len(campaigns) >= 5
    assert all(c["considered"] > 0 for c in campaigns.values()), campaigns
    assert sum(c["issued"] for c in campaigns.values()) > 0
    reasons = {reason for c in campaigns.values() for reason, n in c["skipped"].items() if n}
    assert {"allocation_exhausted", "definition_not_issuable", "duplicate_in_run", "profile_inactive"} <= reasons
    text = (csv_export.folder / "campaigns.toml").read_text(encoding="utf-8")
    assert 'timezone = "Australia/Melbourne"' in text and "limit = " in text and "priority = " in text


# Formats and determinism -------------------------------------------------------------------


def test_parquet_columns_keep_their_types(parquet_export):
    schema = pl.read_parquet_schema(parquet_export.folder / "profiles.parquet")
    assert schema["birth_day"] == pl.Int64
    assert schema["joined_at"] == pl.Datetime("us", "UTC")
    assert schema["tags"] == pl.List(pl.Utf8)
    assert pl.read_parquet_schema(parquet_export.folder / "transactions.parquet")["total"] == pl.Float64


def test_csv_times_are_local_with_offsets(csv_export):
    with (csv_export.folder / "benefits.csv").open(newline="", encoding="utf-8") as handle:
        first = next(csv.DictReader(handle))
    assert first["issued_at"][10] == "T" and first["issued_at"][-6] in "+-"


def test_csv_offsets_are_the_zones_own_at_each_instant(csv_export):
    # +09:30 (Adelaide, Darwin) was written +10:30: the CSV and Parquet exports of one seed
    # then named instants an hour apart.
    from datetime import datetime
    from zoneinfo import ZoneInfo

    with (csv_export.folder / "benefits.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["issued_at"] and r["timezone"]]
    checked = {}
    for row in rows:
        try:
            at, zone = datetime.fromisoformat(row["issued_at"]), ZoneInfo(row["timezone"])
        except (ValueError, KeyError):
            continue  # a planted bad time or zone (ZoneInfoNotFoundError is a KeyError)
        assert at.utcoffset() == at.astimezone(zone).utcoffset(), row
        checked[row["timezone"]] = at.utcoffset()
    assert {"Australia/Adelaide", "Australia/Darwin"} & set(checked), sorted(checked)


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    # Regenerating into the same folder rewrites every file byte for byte, truth/ included.
    assert invoke(["generate", "--out", tmp_path / "a", "--profiles", 2000, "--seed", 11]).exit_code == 0
    first = sha256_of(tmp_path / "a")
    assert invoke(["generate", "--out", tmp_path / "a", "--profiles", 2000, "--seed", 11]).exit_code == 0
    assert sha256_of(tmp_path / "a") == first
    assert invoke(["generate", "--out", tmp_path / "b", "--profiles", 2000, "--seed", 12]).exit_code == 0
    other = sha256_of(tmp_path / "b")
    differing = {name for name in first if first[name] != other.get(name)}
    assert {f"{d}.csv" for d in DATASET_NAMES} - {"benefit_definitions.csv"} <= differing


def test_threads_do_not_change_the_files(tmp_path):
    hashes = []
    for threads in (1, 2):
        result = invoke(["generate", "--out", tmp_path / "out", "--profiles", 2000, "--format", "parquet",
                         "--threads", threads])
        assert result.exit_code == 0, result.output
        hashes.append(sha256_of(tmp_path / "out"))
    assert hashes[0] == hashes[1]


# Usage errors ------------------------------------------------------------------------------


def test_folder_holding_the_other_format_is_refused(tmp_path):
    assert invoke(["generate", "--out", tmp_path / "mixed", "--profiles", 200]).exit_code == 0
    result = invoke(["generate", "--out", tmp_path / "mixed", "--profiles", 200, "--format", "parquet"])
    assert result.exit_code == 2
    assert "already holds profiles.csv" in result.output
    assert not (tmp_path / "mixed" / "profiles.parquet").exists()


def test_too_few_profiles_is_a_usage_error(tmp_path):
    result = invoke(["generate", "--out", tmp_path / "tiny", "--profiles", 10])
    assert result.exit_code == 2
    assert "--profiles" in result.output
    assert not (tmp_path / "tiny").exists()
