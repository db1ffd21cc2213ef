"""What a finished run gives people: manifest, files, warehouse, query, report, progress and logs.

The sample data is run once per way of speaking (text, --quiet, --log-format json) and the
tests read that run back: the files with polars, the warehouse through `omneo-bulk query`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from conftest import DATASET_NAMES, assert_ok, invoke, read_manifest, sha256_file, write_file

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
CAMPAIGNS = SAMPLE / "campaigns.toml"
AS_OF = "2026-11-22T09:00:00+11:00"

STAGES = ("validate", "issue", "reconcile", "report")
VIEWS = {*DATASET_NAMES, "plan", "ledger", "matches", "exceptions", "rejects", "payloads", "summary"}
REPORT_FILES = ("warehouse.duckdb", "report.html", "report.md")
SKIP_REASONS = ("definition_not_issuable", "profile_inactive", "already_issued_this_cycle", "duplicate_in_run",
                "holds_active", "not_reclaimable", "allocation_exhausted")
CATEGORIES = ("missing_in_omneo", "missing_in_pos", "voided_in_pos", "duplicate_redemption", "unknown_benefit",
              "unknown_redeem_code", "profile_mismatch", "redeemed_before_issue", "redeemed_after_expiry",
              "over_redeemed", "global_over_redeemed", "return_exceeds_redeemed", "remaining_mismatch")
ACTIONS = ("redemption", "claim_redeem", "return", "manual_review")

# The columns contract §2 names per input dataset (provenance columns aside): each must carry a comment.
SPEC_COLUMNS = {
    "profiles": ["id", "email", "first_name", "last_name", "gender", "birth_day", "birth_month", "birth_year",
                 "joined_at", "profile_type", "tier_handle", "tags", "statuses", "timezone", "attributes"],
    "benefit_definitions": ["id", "handle", "name", "period", "max_redemptions", "max_global_redemptions",
                            "is_published", "is_archived", "is_assignable", "is_claimable", "is_reclaimable",
                            "claim_period_start_at", "claim_period_end_at", "claim_condition", "end_at",
                            "total_allocations", "total_allocations_remaining", "redeem_code_pos",
                            "redeem_code_online", "tags"],
    "benefits": ["id", "profile_id", "benefit_definition_id", "issued_at", "external_id", "expires_at", "timezone",
                 "claimed_at", "redemptions_remaining", "redeem_code_pos", "redeem_code_online"],
    "redemptions": ["id", "profile_id", "created_at", "type", "total", "transaction_id", "external_id",
                    "benefit_id", "count"],
    "redemption_items": ["id", "redemption_id", "type", "item_id", "count"],
    "returns": ["redemption_id", "count", "returned_at"],
    "transactions": ["external_id", "transacted_at", "profile_id", "location_external_id", "total", "status",
                     "redemption_id", "benefit_id", "redeem_code"],
}
# The views over this project's own outputs have no pass-through columns: every column is commented.
OWN_VIEWS = ("rejects", "plan", "ledger", "matches", "exceptions", "payloads", "summary")

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
BAR = "━"
HEADLINE = re.compile(r"^- \*\*([\d,]+)\*\* (.+)$")
# report.md's headline label → the summary figure it shows ((area, metric); None = sum of *_accepted).
HEADLINE_METRICS = {
    "input rows accepted": None,
    "input rows rejected": ("inputs", "rows_rejected"),
    "benefits issued": ("issuance", "benefits_issued"),
    "skips (campaign × profile)": ("issuance", "skipped"),
    "POS usages paired": ("reconciliation", "paired"),
    "exceptions": ("reconciliation", "exceptions"),
    "errors": ("reconciliation", "exceptions_error"),
    "for manual review": ("reconciliation", "manual_review"),
    "API calls in payloads": ("payloads", "calls"),
}


def clean_env() -> dict[str, str | None]:
    """No OMNEO_BULK_* setting of the developer's shell (module fixtures run before monkeypatch)."""
    return {name: None for name in os.environ if name.startswith("OMNEO_BULK")}


def run_sample(out: Path, state: Path, *options: str):
    return invoke(["run", "--input", SAMPLE, "--campaigns", CAMPAIGNS, "--out", out, "--state", state,
                   "--as-of", AS_OF, *options], env=clean_env())


def query(run_dir: Path, sql: str, output_format: str = "json"):
    return invoke(["query", "--out", run_dir, "--format", output_format, sql], env=clean_env())


def rows_of(run_dir: Path, sql: str) -> list[dict]:
    result = query(run_dir, sql)
    assert_ok(result)
    return json.loads(result.stdout)


def summary_of(run_dir: Path) -> dict[tuple[str, str], int]:
    return {(r["area"], r["metric"]): r["value"] for r in rows_of(run_dir, "SELECT * FROM summary")}


def payload_lines(run_dir: Path, kind: str | None = None) -> list[dict]:
    files = sorted((run_dir / "payloads").glob(f"{kind or '*'}/part-*.ndjson"))
    return [json.loads(line) for path in files for line in path.read_text(encoding="utf-8").splitlines()]


def headlines_of(markdown: str) -> dict[str, int]:
    found = {}
    for line in markdown.splitlines():
        if match := HEADLINE.match(line):
            found[match[2]] = int(match[1].replace(",", ""))
    return found


def file_rows(path: Path) -> int:
    if path.suffix == ".parquet":
        return pl.read_parquet(path).height
    return len(path.read_text(encoding="utf-8").splitlines())


def stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# Module runs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """(CliRunner result, run folder) of `omneo-bulk run` on sample_data, text output off a terminal."""
    base = tmp_path_factory.mktemp("sample")
    result = run_sample(base / "run", base / "state")
    assert_ok(result)
    return result, base / "run"


@pytest.fixture(scope="module")
def run_dir(sample) -> Path:
    return sample[1]


@pytest.fixture(scope="module")
def manifest(run_dir) -> dict:
    return read_manifest(run_dir)


@pytest.fixture(scope="module")
def plan(run_dir) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "issuance" / "plan.parquet")


@pytest.fixture(scope="module")
def exceptions(run_dir) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "reconciliation" / "exceptions.parquet")


@pytest.fixture(scope="module")
def json_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("json")
    result = run_sample(base / "run", base / "state", "--log-format", "json")
    assert_ok(result)
    return result


def stage(manifest: dict, name: str) -> dict:
    [record] = [s for s in manifest["stages"] if s["stage"] == name]
    return record


# 1. End to end: run, manifest, files ------------------------------------------------------


def test_run_exits_0_and_names_its_report(sample):
    result, run_dir = sample

    assert result.exit_code == 0
    assert str(run_dir / "report.html") in result.stdout


def test_manifest_lists_every_output_with_its_sha256_and_rows(run_dir, manifest):
    for output in manifest["outputs"]:
        path = run_dir / output["path"]
        assert path.is_file(), output["path"]
        assert output["sha256"] == sha256_file(path), output["path"]
        if output["rows"] is not None:
            assert output["rows"] == file_rows(path), output["path"]
    listed = {o["path"] for o in manifest["outputs"]}
    on_disk = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()}
    assert on_disk - {"manifest.json"} == listed
    assert set(REPORT_FILES) <= listed


def test_a_finished_command_leaves_no_hashing_thread_behind(tmp_path):
    # Digests are computed on a background thread; an embedding program (a notebook, a
    # scheduler calling main()) must not collect one idle thread per run.
    result = invoke(["validate", "--input", SAMPLE, "--out", tmp_path / "run", "-q"], env=clean_env())

    assert result.exit_code == 0
    assert read_manifest(tmp_path / "run")["outputs"]
    assert [t.name for t in threading.enumerate() if t.name.startswith("sha256")] == []


def test_manifest_inputs_add_up(run_dir, manifest):
    accepted, rejected = Counter(), Counter()
    for entry in manifest["inputs"]:
        assert entry["accepted"] + entry["rejected"] == entry["rows_read"], entry
        assert entry["sha256"] == sha256_file(SAMPLE / entry["path"]), entry
        accepted[entry["dataset"]] += entry["accepted"]
        rejected[entry["dataset"]] += entry["rejected"]
    for dataset in accepted:
        assert accepted[dataset] == pl.read_parquet(run_dir / "validated" / f"{dataset}.parquet").height
        rejects = pl.read_parquet(run_dir / "rejects" / f"{dataset}.parquet")
        assert rejected[dataset] == rejects.select("source_file", "source_row").unique().height
    assert sum(rejected.values()) > 0  # the sample has rejects, so the sums above are not all zero


def test_manifest_has_every_stage_in_order_with_seconds(manifest):
    names = [s["stage"] for s in manifest["stages"]]

    assert [n for n in names if n in STAGES] == list(STAGES)
    for record in manifest["stages"]:
        assert record["seconds"] >= 0


def test_manifest_report_stage_lists_the_report_files(manifest):
    assert sorted(stage(manifest, "report")["outputs"]) == sorted(REPORT_FILES)


def test_plan_agrees_with_the_issue_stage(plan, manifest):
    record = stage(manifest, "issue")

    assert plan.filter(pl.col("decision") == "issue").height == record["issued"]
    assert set(plan["decision"]) <= {"issue", "skip"}
    # A skip has a reason from contract §4; an issue has none.
    assert plan.filter((pl.col("decision") == "issue") & pl.col("reason").is_not_null()).height == 0
    skips = plan.filter(pl.col("decision") == "skip")
    assert skips["reason"].null_count() == 0
    assert set(skips["reason"]) <= set(SKIP_REASONS)
    assert {c["campaign_id"] for c in record["campaigns"]} == set(plan["campaign_id"])
    for campaign in record["campaigns"]:
        rows = plan.filter(pl.col("campaign_id") == campaign["campaign_id"])
        assert rows.height == campaign["considered"], campaign["campaign_id"]
        assert rows.filter(pl.col("decision") == "issue").height == campaign["issued"], campaign["campaign_id"]
        reasons = Counter(rows.filter(pl.col("decision") == "skip")["reason"].to_list())
        assert {r: reasons.get(r, 0) for r in campaign["skipped"]} == campaign["skipped"], campaign["campaign_id"]
        assert set(reasons) <= set(campaign["skipped"])


def test_exceptions_agree_with_the_reconcile_stage(exceptions, manifest):
    record = stage(manifest, "reconcile")
    categories = Counter(exceptions["category"].to_list())
    actions = Counter(exceptions["action"].to_list())

    assert exceptions.height == record["exceptions"] > 0
    assert set(categories) <= set(CATEGORIES)
    assert set(actions) <= set(ACTIONS)
    assert {c: categories.get(c, 0) for c in record["categories"]} == record["categories"]
    assert {a: actions.get(a, 0) for a in record["actions"]} == record["actions"]
    assert set(exceptions["severity"]) <= {"error", "warning"}


def test_payload_lines_are_api_calls(run_dir):
    calls = payload_lines(run_dir)

    assert calls
    for call in calls:
        assert isinstance(call, dict)
        assert {"method", "path", "idempotency_key", "body"} <= set(call), call
        assert call["method"] in {"POST", "PUT", "PATCH", "DELETE"}
        assert call["path"].startswith("/api/v3/")
        assert isinstance(call["body"], dict)
    keys = [call["idempotency_key"] for call in calls]
    assert len(keys) == len(set(keys))


def test_benefit_payloads_hold_exactly_the_issued_plan_rows(run_dir, plan):
    benefits = [b for call in payload_lines(run_dir, "benefits") for b in call["body"]["benefits"]]
    issued = plan.filter(pl.col("decision") == "issue")

    assert len(benefits) == issued.height > 0
    assert sorted(b["external_id"] for b in benefits) == sorted(issued["external_id"])


# 1. End to end: the warehouse agrees with the files ---------------------------------------


def view_file_rows(run_dir: Path, view: str) -> int:
    if view in DATASET_NAMES:
        return file_rows(run_dir / "validated" / f"{view}.parquet")
    if view == "rejects":
        return sum(file_rows(p) for p in (run_dir / "rejects").glob("*.parquet"))
    if view == "payloads":
        return len(payload_lines(run_dir))
    folder = "issuance" if view == "plan" else "reconciliation"
    return file_rows(run_dir / folder / f"{view}.parquet")


def test_warehouse_has_a_view_per_output(run_dir):
    views = {r["view_name"] for r in rows_of(run_dir, "SELECT view_name FROM duckdb_views() WHERE NOT internal")}

    assert views == VIEWS


@pytest.mark.parametrize("view", sorted(VIEWS - {"summary"}))
def test_view_has_as_many_rows_as_its_files(run_dir, view):
    [row] = rows_of(run_dir, f"SELECT count(*) AS n FROM {view}")

    assert row["n"] == view_file_rows(run_dir, view)


def summary_from_files(run_dir: Path) -> dict[tuple[str, str], int]:
    """Every summary figure, counted from the files with polars."""
    figures = {}
    rejects = pl.concat([pl.read_parquet(p) for p in sorted((run_dir / "rejects").glob("*.parquet"))])
    for dataset in DATASET_NAMES:
        figures["inputs", f"{dataset}_accepted"] = file_rows(run_dir / "validated" / f"{dataset}.parquet")
        mine = rejects.filter(pl.col("dataset") == dataset)
        figures["inputs", f"{dataset}_rejected"] = mine.select("source_file", "source_row").unique().height
    figures["inputs", "rows_rejected"] = rejects.select("dataset", "source_file", "source_row").unique().height
    figures["inputs", "reject_faults"] = rejects.height

    plan = pl.read_parquet(run_dir / "issuance" / "plan.parquet")
    figures["issuance", "campaigns"] = plan["campaign_id"].n_unique()
    figures["issuance", "profiles_considered"] = plan.height
    figures["issuance", "benefits_issued"] = plan.filter(pl.col("decision") == "issue").height
    figures["issuance", "skipped"] = plan.filter(pl.col("decision") == "skip").height

    ledger = pl.read_parquet(run_dir / "reconciliation" / "ledger.parquet")
    matches = pl.read_parquet(run_dir / "reconciliation" / "matches.parquet")
    exceptions = pl.read_parquet(run_dir / "reconciliation" / "exceptions.parquet")
    figures["reconciliation", "benefits"] = ledger.height
    figures["reconciliation", "benefits_over_redeemed"] = ledger.filter(pl.col("status") == "over_redeemed").height
    figures["reconciliation", "pos_usages"] = matches["transaction_external_id"].count()
    # Every Omneo row: a flat redemption is one item without an item id.
    figures["reconciliation", "omneo_redemption_items"] = matches.filter(pl.col("match") != "usage_only").height
    figures["reconciliation", "paired"] = matches.filter(pl.col("match") == "paired").height
    figures["reconciliation", "exceptions"] = exceptions.height
    figures["reconciliation", "exceptions_error"] = exceptions.filter(pl.col("severity") == "error").height
    figures["reconciliation", "exceptions_warning"] = exceptions.filter(pl.col("severity") == "warning").height
    figures["reconciliation", "manual_review"] = exceptions.filter(pl.col("action") == "manual_review").height

    kinds = sorted(p.name for p in (run_dir / "payloads").iterdir())
    for kind in kinds:
        figures["payloads", f"{kind}_calls"] = len(payload_lines(run_dir, kind))
    figures["payloads", "calls"] = len(payload_lines(run_dir))
    return figures


def test_summary_figures_equal_counts_from_the_files(run_dir):
    assert summary_of(run_dir) == summary_from_files(run_dir)


def test_every_view_and_spec_column_has_a_comment(run_dir):
    view_comments = {r["view_name"]: r["comment"] for r in rows_of(
        run_dir, "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal")}
    columns = {}
    for r in rows_of(run_dir, "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE NOT internal"):
        columns.setdefault(r["table_name"], {})[r["column_name"]] = r["comment"]

    assert all(view_comments[v] for v in VIEWS), view_comments
    missing = []
    for view in VIEWS:
        wanted = SPEC_COLUMNS.get(view) or list(columns[view])
        assert view in OWN_VIEWS or view in SPEC_COLUMNS
        missing += [f"{view}.{c}" for c in wanted if not (columns[view].get(c) or "").strip()]
    assert missing == []


def test_report_md_headlines_equal_the_summary_view(run_dir):
    summary = summary_of(run_dir)
    headlines = headlines_of((run_dir / "report.md").read_text(encoding="utf-8"))

    assert set(headlines) == set(HEADLINE_METRICS)
    for label, metric in HEADLINE_METRICS.items():
        if metric is None:
            expected = sum(v for (area, name), v in summary.items() if area == "inputs" and name.endswith("_accepted"))
        else:
            expected = summary[metric]
        assert headlines[label] == expected, label


# 2. `omneo-bulk report` rebuilds the warehouse and the reports ---------------------------


@pytest.fixture
def copied_run(run_dir, tmp_path) -> Path:
    """A copy of the sample run in another folder (the warehouse's paths are relative)."""
    return Path(shutil.copytree(run_dir, tmp_path / "copied"))


def test_report_rebuilds_deleted_files_and_updates_the_manifest(copied_run, run_dir, manifest):
    for name in REPORT_FILES:
        (copied_run / name).unlink()
    # Stale entries, so a rebuild that leaves the manifest alone cannot pass by coincidence.
    stale = read_manifest(copied_run)
    for output in stale["outputs"]:
        if output["path"] in REPORT_FILES:
            output["sha256"] = "stale"
    write_file(copied_run, "manifest.json", json.dumps(stale))

    result = invoke(["report", "--out", copied_run], env=clean_env())

    assert_ok(result)
    rebuilt = read_manifest(copied_run)
    outputs = {o["path"]: o for o in rebuilt["outputs"]}
    for name in REPORT_FILES:
        assert (copied_run / name).is_file(), name
        assert outputs[name]["sha256"] == sha256_file(copied_run / name), name
    before = {o["path"]: o for o in manifest["outputs"] if o["path"] not in REPORT_FILES}
    assert {p: o for p, o in outputs.items() if p not in REPORT_FILES} == before
    assert [s["stage"] for s in rebuilt["stages"]].count("report") == 1
    assert summary_of(copied_run) == summary_from_files(copied_run)
    original = headlines_of((run_dir / "report.md").read_text(encoding="utf-8"))
    assert headlines_of((copied_run / "report.md").read_text(encoding="utf-8")) == original != {}


def test_report_without_a_manifest_names_it_and_writes_nothing(tmp_path):
    folder = tmp_path / "not-a-run"
    folder.mkdir()

    result = invoke(["report", "--out", folder], env=clean_env())

    assert result.exit_code == 2  # a folder that is not a run: a usage error
    [line] = stderr_lines(result)
    assert line.startswith("error:")
    assert str(folder / "manifest.json") in line
    assert list(folder.iterdir()) == []


# 3. `omneo-bulk query`: formats ---------------------------------------------------------


def test_query_table_shows_column_names_and_values(run_dir, plan):
    result = query(run_dir, "SELECT * FROM summary", "table")

    assert_ok(result)
    assert all(name in result.stdout for name in ("area", "metric", "value"))
    [line] = [line for line in result.stdout.splitlines() if "benefits_issued" in line]
    cells = [cell.strip() for cell in line.strip("│ ").split("│")]
    assert cells == ["issuance", "benefits_issued", str(plan.filter(pl.col("decision") == "issue").height)]


def test_query_table_says_when_it_stops_at_1000_rows(run_dir):
    result = query(run_dir, "SELECT * FROM range(1001) t(n)", "table")

    assert_ok(result)
    assert "first 1000 rows" in result.stdout
    assert "│ 999" in result.stdout
    assert "│ 1000" not in result.stdout


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param("'[red]x[/red]'", "[red]x[/red]", id="markup-like text"),
        pytest.param("[NULL, 1]", "[null, 1]", id="list starting with null"),
        pytest.param("'[/]'", "[/]", id="closing tag"),
    ],
)
def test_query_table_shows_values_literally(run_dir, value, shown):
    result = query(run_dir, f"SELECT {value} AS v", "table")

    assert_ok(result)
    assert shown in result.stdout


def test_query_csv_has_a_header_every_row_empty_nulls_and_iso_times(run_dir, plan):
    result = query(run_dir, "SELECT * FROM plan ORDER BY campaign_id, profile_id", "csv")
    [count] = rows_of(run_dir, "SELECT count(*) AS n FROM plan")

    assert_ok(result)
    reader = csv.DictReader(io.StringIO(result.stdout))
    rows = list(reader)
    assert reader.fieldnames == plan.columns
    assert len(rows) == count["n"] == plan.height
    expected = plan.sort("campaign_id", "profile_id").to_dicts()
    for got, want in zip(rows, expected):
        assert (got["reason"] == "") == (want["reason"] is None)
        for column in ("issued_at_utc", "expires_at_utc", "issued_at_local", "expires_at_local"):
            assert datetime.fromisoformat(got[column]) == want[column], column
        assert (datetime.fromisoformat(got["issued_at_utc"]).utcoffset() is not None)
    assert any(row["reason"] == "" for row in rows) and any(row["reason"] for row in rows)


NESTED = ("SELECT [1, 2] AS list, {'a': [1, 2], 'b': NULL} AS struct, NULL::VARCHAR AS nothing, "
          "TIMESTAMPTZ '2026-11-22 09:00:00+11:00' AS at, 1.50::DECIMAL(5, 2) AS amount")


def test_a_section_with_nothing_yet_says_why_once(run_dir):
    # The push section printed "Nothing to show for this run." twice (its chart and its
    # table) before any push, and the per-campaign comparison had no caption at all.
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    push = html[html.index('<section id="push">'):]
    push = push[:push.index("</section>")]
    assert push.count('class="empty"') == 1
    assert "Not pushed yet" in push
    changes = html[html.index('<section id="campaign-changes">'):]
    changes = changes[:changes.index("</section>")]
    assert "<figcaption></figcaption>" not in changes
    assert "No earlier run in this state folder" in changes


def test_query_whose_reader_stops_early_exits_quietly(run_dir):
    # `omneo-bulk query ... | head -2` said "error: Broken pipe" and blamed the folder's
    # permissions. Now: nothing on stderr, and the shell's status for a closed pipe.
    from nights import OMNEO_BULK, environment

    process = subprocess.Popen([OMNEO_BULK, "query", "--out", str(run_dir), "--format", "csv",
                                "SELECT * FROM range(5000000)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=environment())
    assert process.stdout.readline() == b"range\n"
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, stderr
    assert stderr == ""


def test_query_csv_writes_lists_and_structs_as_json(run_dir):
    result = query(run_dir, NESTED, "csv")

    assert_ok(result)
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert json.loads(row["list"]) == [1, 2]
    assert json.loads(row["struct"]) == {"a": [1, 2], "b": None}
    assert row["nothing"] == ""
    assert datetime.fromisoformat(row["at"]) == datetime.fromisoformat(AS_OF)


def test_query_json_is_an_array_of_objects_with_json_values(run_dir):
    result = query(run_dir, NESTED, "json")

    assert_ok(result)
    assert json.loads(result.stdout) == [{
        "list": [1, 2],
        "struct": {"a": [1, 2], "b": None},
        "nothing": None,
        "at": datetime.fromisoformat(AS_OF).astimezone(timezone.utc).isoformat(),
        "amount": 1.5,
    }]


def test_query_json_rows_equal_the_parquet_rows(run_dir):
    profiles = pl.read_parquet(run_dir / "validated" / "profiles.parquet").sort("id")

    rows = rows_of(run_dir, "SELECT id, tags, statuses, birth_month FROM profiles ORDER BY id")

    assert rows == profiles.select("id", "tags", "statuses", "birth_month").to_dicts()
    assert any(isinstance(r["tags"], list) and r["tags"] for r in rows)


def test_query_json_writes_a_json_column_as_json(run_dir):
    rows = rows_of(run_dir, "SELECT body FROM payloads WHERE kind = 'benefits' ORDER BY file")

    assert rows
    assert [r["body"] for r in rows] == [call["body"] for call in payload_lines(run_dir, "benefits")]


def test_query_json_is_strict_json_for_non_finite_numbers(run_dir):
    result = query(run_dir, "SELECT 'NaN'::DOUBLE AS x, 'inf'::DOUBLE AS y", "json")

    assert_ok(result)

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    assert json.loads(result.stdout, parse_constant=refuse) == [{"x": None, "y": None}]


@pytest.mark.parametrize(
    ("output_format", "check"),
    [
        ("table", lambda out, columns: all(c in out for c in columns)),
        ("csv", lambda out, columns: out.splitlines() == [",".join(columns)]),
        ("json", lambda out, columns: json.loads(out) == []),
    ],
)
def test_query_with_no_rows(run_dir, plan, output_format, check):
    result = query(run_dir, "SELECT * FROM plan WHERE false", output_format)

    assert_ok(result)
    assert check(result.stdout, plan.columns), result.stdout
    assert result.stderr == ""


# 3. `omneo-bulk query`: errors ----------------------------------------------------------


def assert_one_query_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    [line] = stderr_lines(result)
    assert line.startswith("error: query failed:"), line
    return line


def test_bad_sql_is_one_line_and_exit_2(run_dir):
    assert_one_query_error(query(run_dir, "SELEC * FROM plan", "table"))


def test_unknown_view_is_named(run_dir):
    line = assert_one_query_error(query(run_dir, "SELECT * FROM no_such_view", "csv"))

    assert "no_such_view" in line


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE scratch AS SELECT 1 AS n",
        "INSERT INTO summary VALUES ('x', 'y', 1)",
        "DROP VIEW plan",
        "CREATE OR REPLACE VIEW plan AS SELECT 1 AS n",
    ],
)
def test_a_write_is_refused_and_the_warehouse_unchanged(run_dir, statement):
    warehouse = run_dir / "warehouse.duckdb"
    before = sha256_file(warehouse)
    views_before = rows_of(run_dir, "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1")

    assert_one_query_error(query(run_dir, statement, "table"))

    assert sha256_file(warehouse) == before
    assert rows_of(run_dir, "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1") == views_before


def test_a_folder_without_a_warehouse_exits_2_with_a_hint(tmp_path):
    result = query(tmp_path, "SELECT 1", "table")

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = stderr_lines(result)
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert str(tmp_path / "warehouse.duckdb") in lines[0]
    assert "omneo-bulk report" in lines[0]


# 4. Progress and logs -------------------------------------------------------------------


def test_off_a_terminal_there_is_no_progress_bar_and_no_colour(sample):
    result, _ = sample
    text = result.stdout + result.stderr

    assert text.strip()  # the result lines are there
    assert BAR not in text
    assert not set(SPINNER) & set(text)
    assert "%|" not in text
    assert "\x1b[" not in text


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("quiet")
    return run_sample(base / "run", base / "state", "--quiet"), base / "run"


def test_quiet_success_prints_nothing(quiet_run):
    result, run_dir = quiet_run

    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == ""
    assert (run_dir / "report.md").is_file()  # it ran all the way


def bad_campaigns(tmp_path: Path) -> list[str]:
    path = write_file(tmp_path, "campaigns.toml", '[[campaigns]]\nid = "x"\ndefinition = "no-such-definition"\n')
    return ["--input", str(SAMPLE), "--campaigns", str(path)]


def missing_input(tmp_path: Path) -> list[str]:
    return ["--input", str(tmp_path / "no-such-folder"), "--campaigns", str(CAMPAIGNS)]


FAILURES = [
    pytest.param(missing_input, "no-such-folder", 1, id="missing input folder"),
    pytest.param(bad_campaigns, "no-such-definition", 1, id="unknown campaign definition"),
]


@pytest.mark.parametrize(("arguments", "named", "exit_code"), FAILURES)
def test_quiet_failure_still_prints_the_error(tmp_path, arguments, named, exit_code):
    result = invoke(["run", *arguments(tmp_path), "--out", tmp_path / "run", "--state", tmp_path / "state",
                     "--as-of", AS_OF, "-q"], env=clean_env())

    assert result.exit_code == exit_code
    assert result.stdout == ""
    lines = stderr_lines(result)
    assert lines[0].startswith("error:") and named in lines[0], lines
    assert all(line.startswith(("error:", "hint:")) for line in lines), lines


def test_json_logs_every_line_is_an_event(json_run):
    events = json_lines(json_run.stdout) + json_lines(json_run.stderr)

    assert events
    for event in events:
        assert isinstance(event, dict)
        assert {"time", "level", "event", "message"} <= set(event), event
        assert datetime.fromisoformat(event["time"]).utcoffset() is not None
        assert event["level"] == "info"


def test_json_logs_have_stage_started_and_finished_in_order(json_run):
    events = json_lines(json_run.stdout)

    for name in STAGES:
        started = [i for i, e in enumerate(events) if e["event"] == "stage_started" and e.get("stage") == name]
        finished = [i for i, e in enumerate(events) if e["event"] == "stage_finished" and e.get("stage") == name]
        assert len(started) == len(finished) == 1, name
        assert started[0] < finished[0], name
        assert events[finished[0]]["seconds"] >= 0
    order = [e["stage"] for e in events if e["event"] == "stage_started" and e["stage"] in STAGES]
    assert order == list(STAGES)


def test_json_logs_carry_the_results(json_run):
    events = {e["event"] for e in json_lines(json_run.stdout)}

    assert {"dataset_validated", "campaign_planned", "issued", "reconciled", "report_written"} <= events


@pytest.mark.parametrize(("arguments", "named", "exit_code"), FAILURES)
def test_json_failure_is_one_error_object_on_stderr(tmp_path, arguments, named, exit_code):
    result = invoke(["run", *arguments(tmp_path), "--out", tmp_path / "run", "--state", tmp_path / "state",
                     "--as-of", AS_OF, "--log-format", "json"], env=clean_env())

    assert result.exit_code == exit_code
    [error] = json_lines(result.stderr)
    assert error["level"] == "error"
    assert {"time", "event", "message"} <= set(error)
    assert named in error["message"]
    assert all(isinstance(e, dict) for e in json_lines(result.stdout))


@pytest.mark.parametrize(
    ("arguments", "env", "named"),
    [
        (["validate", "--log-format", "json", "--input", SAMPLE, "--out", "x", "--no-such-option"], {},
         "--no-such-option"),
        (["run", "--log-format=json", "--input", SAMPLE, "--out", "x"], {}, "--campaigns"),
        (["validate", "--out", "x", "--max-reject-ratio", "lots"], {"OMNEO_BULK_VALIDATE_LOG_FORMAT": "json"},
         "lots"),
    ],
    ids=["unknown-option", "missing-option", "bad-value-env-json"],
)
def test_json_usage_error_is_one_error_object(arguments, env, named):
    # Click rejects these before the command runs; a scheduler still gets JSON, and exit 2.
    result = invoke(arguments, env={**clean_env(), **env})

    assert result.exit_code == 2
    [error] = json_lines(result.stderr)
    assert (error["level"], error["event"]) == ("error", "usage_error")
    assert named in error["message"]
    assert result.stdout == ""


def test_command_line_log_format_beats_the_environment_for_usage_errors(tmp_path):
    result = invoke(["validate", "--log-format", "text", "--input", SAMPLE, "--out", tmp_path, "--nope"],
                    env={**clean_env(), "OMNEO_BULK_VALIDATE_LOG_FORMAT": "json"})

    assert result.exit_code == 2
    assert result.stderr.startswith("Usage:")


def test_help_still_works_with_json_logs():
    result = invoke(["validate", "--log-format", "json", "--help"], env=clean_env())

    assert result.exit_code == 0
    assert "Example" in result.stdout


def test_version_with_json_logs_prints_the_version():
    result = invoke(["--version", "validate", "--log-format", "json"], env=clean_env())

    assert result.exit_code == 0
    assert "omneo-bulk" in result.stdout


def test_interrupted_run_is_one_json_object_and_exit_130(tmp_path, monkeypatch):
    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("pipeline.validate.check", interrupt)
    result = invoke(["validate", "--input", SAMPLE, "--out", tmp_path, "--log-format", "json"], env=clean_env())

    assert result.exit_code == 130
    [error] = json_lines(result.stderr)
    assert (error["event"], error["message"]) == ("interrupted", "interrupted")


def test_text_usage_error_is_clicks_own(tmp_path):
    result = invoke(["validate", "--input", SAMPLE, "--out", tmp_path, "--no-such-option"], env=clean_env())

    assert result.exit_code == 2
    assert "Error: No such option '--no-such-option'" in result.stderr
    assert "validate --help' for help" in result.stderr


def test_json_query_error_is_an_error_object(run_dir):
    result = invoke(["query", "--out", run_dir, "--log-format", "json", "SELEC 1"], env=clean_env())

    assert result.exit_code == 2
    [error] = json_lines(result.stderr)
    assert error["level"] == "error"
    assert error["message"].startswith("query failed:")


# Progress bars on a real terminal -------------------------------------------------------


def run_in_terminal(tmp_path: Path, *options: str) -> tuple[int, str, str]:
    """`omneo-bulk run` with stderr on a pseudo-terminal: (exit code, stdout, what the terminal got)."""
    pty = pytest.importorskip("pty")
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNEO_BULK")}
    env.update(TERM="xterm", COLUMNS="120")
    env.pop("NO_COLOR", None)
    args = [sys.executable, "-m", "pipeline.cli", "run", "--input", str(SAMPLE), "--campaigns", str(CAMPAIGNS),
            "--out", str(tmp_path / "run"), "--state", str(tmp_path / "state"), "--as-of", AS_OF, *options]
    process = subprocess.Popen(args, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=secondary)
    os.close(secondary)
    chunks = []
    try:
        while True:  # read as it comes, so a full terminal buffer never blocks the run
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the command has exited and closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        stdout = process.stdout.read().decode("utf-8")
        process.wait(timeout=60)
    finally:
        process.stdout.close()
        os.close(primary)
    return process.returncode, stdout, b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_shows_a_progress_bar_per_stage(tmp_path):
    code, stdout, terminal = run_in_terminal(tmp_path)

    assert code == 0, terminal
    plain = ANSI.sub("", terminal)
    assert BAR in plain
    for name in STAGES:
        # The finished bar of the stage: its name, the bar, then steps done out of steps.
        assert re.search(rf"{name} {BAR}+ (\d+)/\1 ", plain), (name, plain[-2000:])
    assert "report.html" in stdout  # result lines stay on stdout


@pytest.mark.parametrize("options", [["--quiet"], ["--log-format", "json"]], ids=["quiet", "json"])
def test_a_terminal_shows_no_progress_when_quiet_or_json(tmp_path, options):
    code, stdout, terminal = run_in_terminal(tmp_path, *options)

    assert code == 0, terminal
    assert BAR not in terminal
    assert not set(SPINNER) & set(terminal)
    assert "\x1b[" not in terminal
    if "--quiet" in options:
        assert terminal == "" and stdout == ""
    else:
        assert all(isinstance(e, dict) for e in json_lines(stdout))


# Review findings: the warehouse reads its own run, whatever the working directory ---------


def test_query_reads_its_own_run_from_inside_another_run_folder(copied_run, run_dir, monkeypatch):
    # Make the copy differ, then ask the original from inside the copy: a view with a
    # relative path would answer from the working directory's files.
    pl.read_parquet(copied_run / "issuance" / "plan.parquet").head(1).write_parquet(
        copied_run / "issuance" / "plan.parquet"
    )
    monkeypatch.chdir(copied_run)
    expected = pl.read_parquet(run_dir / "issuance" / "plan.parquet").height

    [row] = rows_of(run_dir, "SELECT count(*) AS n FROM plan")

    assert expected > 1
    assert row["n"] == expected


def test_a_moved_run_says_how_to_rebuild_its_warehouse(copied_run, run_dir, tmp_path):
    moved = Path(shutil.move(str(copied_run), str(tmp_path / "moved")))
    rebuilt_elsewhere = invoke(["report", "--out", moved], env=clean_env())
    assert_ok(rebuilt_elsewhere)

    [row] = rows_of(moved, "SELECT count(*) AS n FROM plan")

    assert row["n"] == pl.read_parquet(moved / "issuance" / "plan.parquet").height


def test_a_later_command_removes_the_earlier_runs_report_and_warehouse(copied_run):
    result = invoke(["validate", "--input", SAMPLE, "--out", copied_run, "--as-of", AS_OF], env=clean_env())

    assert_ok(result)
    for name in REPORT_FILES:
        assert not (copied_run / name).exists(), f"stale {name} left beside new outputs"


def test_a_commit_that_cannot_be_made_leaves_the_last_one_whole(copied_run):
    # An earlier run is in the folder; tonight's rejects/ cannot be made (a file is in the way).
    before = (copied_run / "manifest.json").read_bytes()
    listed = {o["path"]: o["sha256"] for o in read_manifest(copied_run)["outputs"]}
    shutil.rmtree(copied_run / "rejects")
    (copied_run / "rejects").write_text("not a folder", encoding="utf-8")

    result = invoke(["validate", "--input", SAMPLE, "--out", copied_run, "--as-of", AS_OF], env=clean_env())

    assert result.exit_code == 1
    line = stderr_lines(result)[0]
    assert line.startswith("error: ") and str(copied_run / "rejects") in line
    assert "Traceback" not in result.output
    # All or nothing: not one of tonight's files moved in, and the manifest is the last commit's.
    assert (copied_run / "manifest.json").read_bytes() == before
    for path, digest in listed.items():
        if not path.startswith("rejects/"):  # the ones this test removed
            assert sha256_file(copied_run / path) == digest, path
    assert sorted(p.name for p in copied_run.iterdir() if p.name.startswith(".")) == []
