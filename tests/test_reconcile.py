"""Redemption reconciliation (`omneo-bulk reconcile`, docs/reconciliation.md, contract §5–6).

Every test builds a tiny export in tmp_path, runs the command as a user would, and reads the
outputs back: exceptions, ledger, matches, payload lines and the manifest. Expected values
are worked out by hand in the comments next to them.

Times are written in UTC (`Z`) or with an explicit offset. AS_OF is 2026-11-22 09:00 +11:00,
which is 2026-11-21 22:00 UTC; the default grace of 24 h puts the cut-off for
`missing_in_pos` at 2026-11-20 22:00 UTC. Melbourne is +11 in November, Perth +8.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

from conftest import assert_ok, invoke, read_manifest, write_csv

AS_OF = "2026-11-22T09:00:00+11:00"
MELB, PERTH = "Australia/Melbourne", "Australia/Perth"
KINDS = ("redemptions", "claim_redeem", "returns")
REQUIRED = ("benefit_definitions", "benefits", "redemptions", "transactions")

HEADERS = {
    "benefit_definitions": [
        "id", "handle", "name", "period", "max_redemptions", "max_global_redemptions", "is_published",
        "is_archived", "is_assignable", "is_claimable", "is_reclaimable", "claim_period_start_at",
        "claim_period_end_at", "claim_condition", "redeem_code_pos",
    ],
    "profiles": ["id", "profile_type", "timezone", "tier_handle"],
    "benefits": [
        "id", "profile_id", "benefit_definition_id", "issued_at", "expires_at", "timezone",
        "redemptions_remaining", "redeem_code_pos",
    ],
    "redemptions": ["id", "profile_id", "created_at", "type", "benefit_id", "count"],
    "redemption_items": ["id", "redemption_id", "type", "item_id", "count"],
    "returns": ["redemption_id", "count", "returned_at"],
    "transactions": [
        "external_id", "transacted_at", "profile_id", "location_external_id", "total", "status",
        "redemption_id", "benefit_id", "redeem_code",
    ],
}


def _definition(id_, handle, max_redemptions, **extra) -> dict:
    row = {"id": id_, "handle": handle, "name": handle.replace("-", " ").title(), "period": 30,
           "max_redemptions": max_redemptions, "is_published": "true", "is_archived": "false",
           "is_assignable": "true", "is_reclaimable": "true"}
    row.update(extra)
    return row


# The same five definitions in every fixture; only benefits name them, so unused ones are inert.
DEFINITIONS = [
    _definition(94, "first-spend", 1, redeem_code_pos="FIRSTSPEND"),
    _definition(96, "coffee-card", 5),
    _definition(97, "vip-welcome", 1, is_claimable="true", redeem_code_pos="VIPWELCOME",
                claim_period_start_at="2026-11-01T00:00:00+11:00",
                claim_period_end_at="2026-11-30T23:59:59+11:00",
                claim_condition='{"==": [{"var": "tier_handle"}, "gold"]}'),
    _definition(98, "limited-drop", 1, max_global_redemptions=2),
    _definition(99, "free-shipping", None, redeem_code_pos="FREESHIP"),  # unlimited uses
]
PROFILES = [
    {"id": "p1", "profile_type": "active", "timezone": MELB, "tier_handle": "gold"},
    {"id": "p2", "profile_type": "active", "timezone": MELB, "tier_handle": "silver"},
    {"id": "p3", "profile_type": "active", "timezone": PERTH, "tier_handle": "silver"},
]


def benefit(id_, profile_id, definition_id, remaining, *, issued="2026-11-01T00:00:00+11:00",
            expires="2026-12-01T00:00:00+11:00", timezone=MELB, code=None) -> dict:
    return {"id": id_, "profile_id": profile_id, "benefit_definition_id": definition_id, "issued_at": issued,
            "expires_at": expires, "timezone": timezone, "redemptions_remaining": remaining,
            "redeem_code_pos": code}


def redemption(id_, profile_id, created_at, benefit_id=None, count=None, type_="redeem") -> dict:
    """Flat form when benefit_id is given; otherwise its items come from redemption_items."""
    return {"id": id_, "profile_id": profile_id, "created_at": created_at, "type": type_,
            "benefit_id": benefit_id, "count": count}


def usage(external_id, at, profile_id, *, status="completed", benefit_id=None, redemption_id=None,
          code=None, location="MEL-001", total=50.0) -> dict:
    return {"external_id": external_id, "transacted_at": at, "profile_id": profile_id,
            "location_external_id": location, "total": total, "status": status,
            "redemption_id": redemption_id, "benefit_id": benefit_id, "redeem_code": code}


@dataclass
class Export:
    """One input folder's rows; None for a dataset means no file at all."""

    benefits: list[dict] = field(default_factory=list)
    redemptions: list[dict] = field(default_factory=list)
    transactions: list[dict] = field(default_factory=list)
    redemption_items: list[dict] | None = None
    returns: list[dict] | None = None
    profiles: list[dict] | None = field(default_factory=lambda: list(PROFILES))
    benefit_definitions: list[dict] | None = field(default_factory=lambda: list(DEFINITIONS))

    def write(self, folder: Path, reverse: bool = False, omit: str | None = None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, header in HEADERS.items():
            rows = getattr(self, name)
            if rows is None or name == omit:
                continue
            rows = list(reversed(rows)) if reverse else rows
            write_csv(folder, f"{name}.csv", [header, *[[row.get(c) for c in header] for row in rows]])
        return folder


@dataclass
class Run:
    path: Path

    def table(self, name: str) -> pl.DataFrame:
        return pl.read_parquet(self.path / "reconciliation" / f"{name}.parquet")

    @property
    def exceptions(self) -> pl.DataFrame:
        return self.table("exceptions")

    @property
    def ledger(self) -> pl.DataFrame:
        return self.table("ledger")

    @property
    def matches(self) -> pl.DataFrame:
        return self.table("matches")

    def categories(self) -> list[str]:
        return sorted(self.exceptions["category"].to_list())

    def finding(self, category: str, **where) -> dict:
        """The one exception row of this category (and these column values)."""
        rows = self.exceptions.filter(pl.col("category") == category)
        for column, value in where.items():
            rows = rows.filter(pl.col(column).is_null() if value is None else pl.col(column) == value)
        assert rows.height == 1, self.exceptions.to_dicts()
        row = rows.row(0, named=True)
        assert row["exception_id"].startswith(f"{category}:"), row
        return row

    def files(self, kind: str) -> list[Path]:
        return sorted((self.path / "payloads" / kind).glob("part-*.ndjson"))

    def payloads(self, kind: str) -> list[dict]:
        return [json.loads(line) for f in self.files(kind) for line in f.read_text("utf-8").splitlines()]

    def all_payloads(self) -> dict[str, list[dict]]:
        return {kind: self.payloads(kind) for kind in KINDS}

    def ledger_row(self, benefit_id: int) -> dict:
        rows = self.ledger.filter(pl.col("benefit_id") == benefit_id)
        assert rows.height == 1, rows
        return rows.row(0, named=True)


def reconcile(tmp_path: Path, export: Export, *options: str, run: str = "run", input_name: str = "in") -> Run:
    folder = export.write(tmp_path / input_name)
    result = invoke(["reconcile", "--input", folder, "--out", tmp_path / run, "--as-of", AS_OF,
                     "--max-reject-ratio", "1", *options])
    assert_ok(result)
    return Run(tmp_path / run)


def expect(row: dict, **fields) -> None:
    assert {k: row[k] for k in fields} == fields, row


def call(path: str, body: dict) -> dict:
    """A payload line without its idempotency key (checked separately)."""
    return {"method": "POST", "path": path, "body": body}


def calls(lines: list[dict]) -> list[dict]:
    for line in lines:
        assert isinstance(line["idempotency_key"], str) and line["idempotency_key"]
    return [{k: line[k] for k in ("method", "path", "body")} for line in lines]


def return_call(redemption_id: int, count: int) -> dict:
    return call(f"/api/v3/redemptions/{redemption_id}/benefit/return", {"count": count})


# missing_in_omneo ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile_id", "timezone", "zone", "local"),
    [
        # The benefit's own time zone: 01:30 UTC is 12:30 in Melbourne (+11).
        ("p1", MELB, MELB, "2026-11-10 12:30:00"),
        # The benefit's zone wins over its profile's (p1 is in Melbourne): Perth +8 → 09:30.
        ("p1", PERTH, PERTH, "2026-11-10 09:30:00"),
        # No time zone on the benefit: the profile's (p3, Perth).
        ("p3", None, PERTH, "2026-11-10 09:30:00"),
        # Neither (p4 is in no profile row): --default-timezone, UTC by default.
        ("p4", None, "UTC", "2026-11-10 01:30:00"),
    ],
)
def test_missing_in_omneo_with_valid_instance_writes_redemption_call(tmp_path, profile_id, timezone, zone, local):
    # Benefit 1001 (max 1, nothing redeemed: 1 use left) valid 1 Nov–1 Dec; the POS used it on
    # 10 Nov and Omneo has no redemption → post the redemption Omneo is missing.
    export = Export(
        benefits=[benefit(1001, profile_id, 94, 1, timezone=timezone)],
        transactions=[usage("T1", "2026-11-10T01:30:00Z", profile_id, benefit_id=1001)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["missing_in_omneo"]
    expect(run.finding("missing_in_omneo"), severity="error", action="redemption", profile_id=profile_id,
           benefit_id=1001, definition_id=94, redemption_id=None, transaction_external_id="T1")
    assert calls(run.payloads("redemptions")) == [call(
        f"/api/v3/profiles/{profile_id}/benefits/1001/redemptions",
        {"issued_at": local, "timezone": zone, "external_id": "T1"},
    )]
    assert run.payloads("claim_redeem") == [] and run.payloads("returns") == []


def test_missing_in_omneo_claimable_definition_writes_claim_redeem_call(tmp_path):
    # VIPWELCOME is definition 97's code: claimable, window 1–30 Nov, condition tier gold.
    # p1 is gold and holds no instance of 97; the sale on 15 Nov is inside the window.
    export = Export(
        benefits=[benefit(1001, "p2", 94, 1)],  # unrelated, clean
        transactions=[usage("T2", "2026-11-15T10:00:00+11:00", "p1", code="VIPWELCOME",
                            location="MEL-002", total=80.5)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["missing_in_omneo"]
    expect(run.finding("missing_in_omneo"), severity="error", action="claim_redeem", profile_id="p1",
           benefit_id=None, definition_id=97, redemption_id=None, transaction_external_id="T2")
    assert calls(run.payloads("claim_redeem")) == [call("/api/v3/profiles/p1/benefits/claim-redeem", {
        "definition": "vip-welcome", "timezone": MELB, "external_id": "T2",
        # Local time of the sale in p1's zone (no instance, so the profile's time zone).
        "meta": {"transacted_at": "2026-11-15 10:00:00", "location_external_id": "MEL-002", "total": 80.5},
    })]
    assert run.payloads("redemptions") == [] and run.payloads("returns") == []


def test_claim_condition_on_spend_sees_the_profiles_sales(tmp_path):
    # vip-welcome here needs spend_all >= 100. p1 spent 150 in October, p2 only the 50 of the
    # sale that used the code: p1's use becomes a claim_redeem call, p2's a manual review.
    spend_rule = '{">=": [{"var": "aggregations.spend_all"}, 100]}'
    definitions = [d if d["id"] != 97 else {**d, "claim_condition": spend_rule} for d in DEFINITIONS]
    export = Export(
        benefit_definitions=definitions,
        transactions=[usage("S1", "2026-10-05T10:00:00+11:00", "p1", total=150.0),
                      usage("T1", "2026-11-15T10:00:00+11:00", "p1", code="VIPWELCOME"),
                      usage("T2", "2026-11-15T11:00:00+11:00", "p2", code="VIPWELCOME")],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["missing_in_omneo", "missing_in_omneo"]
    assert run.finding("missing_in_omneo", transaction_external_id="T1")["action"] == "claim_redeem"
    assert run.finding("missing_in_omneo", transaction_external_id="T2")["action"] == "manual_review"


def _expired_instance() -> tuple[Export, dict]:
    # 1001 expired 5 Nov (+11); the POS used it on 10 Nov: not valid then → manual review.
    return Export(
        benefits=[benefit(1001, "p1", 94, 1, expires="2026-11-05T00:00:00+11:00")],
        transactions=[usage("T1", "2026-11-10T00:00:00Z", "p1", benefit_id=1001)],
    ), {"profile_id": "p1", "benefit_id": 1001, "definition_id": 94}


def _not_yet_issued() -> tuple[Export, dict]:
    # 1001 is issued 1 Nov (+11); the POS used it on 20 Oct, before it existed → manual review.
    return Export(
        benefits=[benefit(1001, "p1", 94, 1)],
        transactions=[usage("T1", "2026-10-20T00:00:00Z", "p1", benefit_id=1001)],
    ), {"profile_id": "p1", "benefit_id": 1001, "definition_id": 94}


def _no_uses_left() -> tuple[Export, dict]:
    # 1001 (max 1) was redeemed on 8 Nov (9001, paired with T0 at the same second); a second sale
    # two days later (beyond the 24 h window) finds computed_remaining = 1 − 1 = 0 → manual review.
    return Export(
        benefits=[benefit(1001, "p1", 94, 0)],
        redemptions=[redemption(9001, "p1", "2026-11-08T00:00:00Z", 1001, 1)],
        transactions=[usage("T0", "2026-11-08T00:00:00Z", "p1", benefit_id=1001),
                      usage("T1", "2026-11-10T00:00:00Z", "p1", benefit_id=1001)],
    ), {"profile_id": "p1", "benefit_id": 1001, "definition_id": 94}


def _claim_condition_false() -> tuple[Export, dict]:
    # p2 is silver: vip-welcome's condition (tier gold) fails → no claim_redeem.
    return Export(
        transactions=[usage("T1", "2026-11-15T10:00:00+11:00", "p2", code="VIPWELCOME")],
    ), {"profile_id": "p2", "benefit_id": None, "definition_id": 97}


def _outside_claim_window() -> tuple[Export, dict]:
    # p1 is gold, but 20 Oct is before the claim window opens on 1 Nov.
    return Export(
        transactions=[usage("T1", "2026-10-20T10:00:00+11:00", "p1", code="VIPWELCOME")],
    ), {"profile_id": "p1", "benefit_id": None, "definition_id": 97}


@pytest.mark.parametrize("build", [_expired_instance, _not_yet_issued, _no_uses_left, _claim_condition_false, _outside_claim_window])
def test_missing_in_omneo_needs_manual_review_when_no_call_fits(tmp_path, build):
    export, ids = build()
    run = reconcile(tmp_path, export)
    assert run.categories() == ["missing_in_omneo"]
    expect(run.finding("missing_in_omneo"), severity="error", action="manual_review",
           transaction_external_id="T1", redemption_id=None, **ids)
    assert run.all_payloads() == {kind: [] for kind in KINDS}


# missing_in_pos, voided_in_pos, duplicate_redemption -----------------------------------------


def test_missing_in_pos_returns_what_is_left_after_the_grace_period(tmp_path):
    # Coffee card 1001 (max 5). No POS usage at all.
    #   9001: 19 Nov 10:00 UTC, count 2, nothing returned        → return 2
    #   9002: 21 Nov 12:00 UTC, 10 h before as_of (< 24 h grace)  → no finding yet
    #   9003: 18 Nov, count 1, returned 1 (fully)                  → no call needed, no finding
    #   9004: 18 Nov, count 3, returned 2                          → return 3 − 2 = 1
    # redeemed 2+1+1+3 = 7, returned 1+2 = 3, net 4, computed 5 − 4 = 1 = reported.
    export = Export(
        benefits=[benefit(1001, "p1", 96, 1)],
        redemptions=[
            redemption(9001, "p1", "2026-11-19T10:00:00Z", 1001, 2),
            redemption(9002, "p1", "2026-11-21T12:00:00Z", 1001, 1),
            redemption(9003, "p1", "2026-11-18T10:00:00Z", 1001, 1),
            redemption(9004, "p1", "2026-11-18T11:00:00Z", 1001, 3),
        ],
        returns=[{"redemption_id": 9003, "count": 1}, {"redemption_id": 9004, "count": 2}],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["missing_in_pos", "missing_in_pos"]
    for redemption_id in (9001, 9004):
        expect(run.finding("missing_in_pos", redemption_id=redemption_id), severity="error", action="return",
               profile_id="p1", benefit_id=1001, definition_id=96, transaction_external_id=None)
    # Ordered by the finding's ids: 9001 before 9004.
    assert calls(run.payloads("returns")) == [return_call(9001, 2), return_call(9004, 1)]
    expect(run.ledger_row(1001), redeemed=7, returned=3, net_redeemed=4, computed_remaining=1)


@pytest.mark.parametrize(
    ("created_at", "options", "missing"),
    [
        ("2026-11-21T12:00:00Z", (), False),  # 10 h before as_of: inside the default 24 h grace
        ("2026-11-21T12:00:00Z", ("--grace-hours", "6"), True),  # …but older than 6 h
        ("2026-11-20T22:00:00Z", (), False),  # exactly 24 h: not *more than* the grace
        ("2026-11-20T21:59:59Z", (), True),  # one second more
    ],
)
def test_grace_hours_cut_off(tmp_path, created_at, options, missing):
    # Coffee card (max 5), one redemption with no sale → computed 4 = reported.
    export = Export(benefits=[benefit(1001, "p1", 96, 4)],
                    redemptions=[redemption(9002, "p1", created_at, 1001, 1)])
    run = reconcile(tmp_path, export, *options)
    assert run.categories() == (["missing_in_pos"] if missing else [])
    assert calls(run.payloads("returns")) == ([return_call(9002, 1)] if missing else [])


@pytest.mark.parametrize("status", ["voided", "refunded"])
def test_voided_in_pos_returns_the_redemption(tmp_path, status):
    # 9001 (10 Nov 01:00) pairs with T1 (5 min later), which the POS voided → give the use back.
    # 1002's voided usage has no redemption at all: no finding.
    export = Export(
        benefits=[benefit(1001, "p1", 94, 0), benefit(1002, "p2", 94, 1)],
        redemptions=[redemption(9001, "p1", "2026-11-10T01:00:00Z", 1001, 1)],
        transactions=[usage("T1", "2026-11-10T01:05:00Z", "p1", benefit_id=1001, status=status),
                      usage("T2", "2026-11-10T02:00:00Z", "p2", benefit_id=1002, status=status)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["voided_in_pos"]
    expect(run.finding("voided_in_pos"), severity="error", action="return", profile_id="p1", benefit_id=1001,
           definition_id=94, redemption_id=9001, transaction_external_id="T1")
    assert calls(run.payloads("returns")) == [return_call(9001, 1)]
    pair = run.matches.filter(pl.col("transaction_external_id") == "T1").row(0, named=True)
    expect(pair, match="paired", redemption_id=9001, pos_status=status, seconds_apart=300)


def test_duplicate_redemption_is_returned_and_not_also_missing_in_pos(tmp_path):
    # One sale T1 at 01:00:30; Omneo recorded 9001 (30 s away) and 9002 (90 s away).
    # T1 pairs with the nearer 9001; 9002 is an extra inside the window → duplicate, and
    # although older than the grace period it is not also missing_in_pos.
    # max 5, redeemed 2 → computed 3 = reported.
    export = Export(
        benefits=[benefit(1001, "p1", 96, 3)],
        redemptions=[redemption(9001, "p1", "2026-11-10T01:00:00Z", 1001, 1),
                     redemption(9002, "p1", "2026-11-10T01:02:00Z", 1001, 1)],
        transactions=[usage("T1", "2026-11-10T01:00:30Z", "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["duplicate_redemption"]
    expect(run.finding("duplicate_redemption"), severity="error", action="return", profile_id="p1",
           benefit_id=1001, definition_id=96, redemption_id=9002)
    assert calls(run.payloads("returns")) == [return_call(9002, 1)]


# Warnings and count checks ---------------------------------------------------------------------


def test_unknown_benefit_on_a_redemption_item(tmp_path):
    # Item 70001 of redemption 9001 names benefit 4242, not in the export. The redemption is
    # 2 h old (inside the grace period), so nothing else can be said about it.
    export = Export(
        benefits=[benefit(1001, "p1", 94, 1)],
        redemptions=[redemption(9001, "p1", "2026-11-21T20:00:00Z")],
        redemption_items=[{"id": 70001, "redemption_id": 9001, "type": "benefit", "item_id": 4242, "count": 1}],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["unknown_benefit"]
    expect(run.finding("unknown_benefit"), severity="warning", action="manual_review", profile_id="p1",
           benefit_id=4242, definition_id=None, redemption_id=9001, redemption_item_id=70001)


def test_unknown_benefit_on_a_usage(tmp_path):
    # The POS names benefit 4343, which Omneo's export does not have.
    export = Export(benefits=[benefit(1001, "p1", 94, 1)],
                    transactions=[usage("T1", "2026-11-10T00:00:00Z", "p1", benefit_id=4343)])
    run = reconcile(tmp_path, export)
    expect(run.finding("unknown_benefit"), severity="warning", action="manual_review", profile_id="p1",
           benefit_id=4343, transaction_external_id="T1")
    assert run.all_payloads() == {kind: [] for kind in KINDS}


def test_unknown_redeem_code(tmp_path):
    # NOPE-123 is neither an instance's code nor a definition's.
    export = Export(benefits=[benefit(1001, "p1", 94, 1, code="FS-1001")],
                    transactions=[usage("T1", "2026-11-10T00:00:00Z", "p1", code="NOPE-123")])
    run = reconcile(tmp_path, export)
    expect(run.finding("unknown_redeem_code"), severity="warning", action="manual_review", profile_id="p1",
           benefit_id=None, definition_id=None, redemption_id=None, transaction_external_id="T1")
    assert run.all_payloads() == {kind: [] for kind in KINDS}


def test_profile_mismatch_on_redemption_and_on_usage(tmp_path):
    # 1001 is p1's, but Omneo's redemption 9001 says p2 (the POS agrees with p1).
    # 1002 is p2's, Omneo agrees, but the POS sale T2 says p3.
    # Both pairs match in time (same second), so nothing else is found; profile_id is the benefit's.
    export = Export(
        benefits=[benefit(1001, "p1", 94, 0), benefit(1002, "p2", 94, 0)],
        redemptions=[redemption(9001, "p2", "2026-11-10T00:00:00Z", 1001, 1),
                     redemption(9002, "p2", "2026-11-11T00:00:00Z", 1002, 1)],
        transactions=[usage("T1", "2026-11-10T00:00:00Z", "p1", benefit_id=1001),
                      usage("T2", "2026-11-11T00:00:00Z", "p3", benefit_id=1002)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["profile_mismatch", "profile_mismatch"]
    expect(run.finding("profile_mismatch", benefit_id=1001), severity="warning", action="manual_review",
           profile_id="p1", definition_id=94, redemption_id=9001)
    expect(run.finding("profile_mismatch", benefit_id=1002), severity="warning", action="manual_review",
           profile_id="p2", definition_id=94, transaction_external_id="T2")


def test_return_and_reversal_items_are_checked_for_benefit_and_profile_but_never_paired(tmp_path):
    # Reversal 9002 is by p2 of p1's benefit 1001; return 9003 names benefit 4242, not in the
    # export. Neither is a redeem item: no pairing, no matches row, no grace-period finding;
    # they still count against their benefit (1001: redeemed 2, returned 1).
    export = Export(
        benefits=[benefit(1001, "p1", 96, 4)],
        redemptions=[redemption(9001, "p1", "2026-11-10T00:00:00Z", 1001, 2),
                     redemption(9002, "p2", "2026-11-11T00:00:00Z", 1001, 1, type_="reversal"),
                     redemption(9003, "p1", "2026-11-12T00:00:00Z", 4242, 1, type_="return")],
        transactions=[usage("T1", "2026-11-10T00:00:00Z", "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["profile_mismatch", "unknown_benefit"]
    expect(run.finding("profile_mismatch"), profile_id="p1", benefit_id=1001, definition_id=96, redemption_id=9002)
    expect(run.finding("unknown_benefit"), profile_id="p1", benefit_id=4242, definition_id=None,
           redemption_id=9003, redemption_item_id=None)
    expect(run.ledger_row(1001), redeemed=2, returned=1, net_redeemed=1, computed_remaining=4)
    assert run.matches.select("match", "redemption_id").rows() == [("paired", 9001)]
    assert run.all_payloads() == {kind: [] for kind in KINDS}


def test_redeemed_before_issue(tmp_path):
    # Issued 1 Nov 00:00 +11:00 = 31 Oct 13:00 UTC; redeemed (and sold) one second earlier.
    export = Export(
        benefits=[benefit(1001, "p1", 94, 0)],
        redemptions=[redemption(9001, "p1", "2026-10-31T12:59:59Z", 1001, 1)],
        transactions=[usage("T1", "2026-10-31T12:59:59Z", "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["redeemed_before_issue"]
    expect(run.finding("redeemed_before_issue"), severity="warning", action="manual_review", profile_id="p1",
           benefit_id=1001, definition_id=94, redemption_id=9001)


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        # Expires 15 Nov 00:00 +11:00 = 14 Nov 13:00:00 UTC.
        ("2026-11-14T13:00:01Z", ["redeemed_after_expiry"]),  # one second after
        ("2026-11-14T13:00:00Z", []),  # exactly at expires_at: not after expiry
    ],
)
def test_redeemed_after_expiry_boundary(tmp_path, created_at, expected):
    export = Export(
        benefits=[benefit(1001, "p1", 94, 0, expires="2026-11-15T00:00:00+11:00")],
        redemptions=[redemption(9001, "p1", created_at, 1001, 1)],
        transactions=[usage("T1", created_at, "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == expected
    if expected:
        expect(run.finding("redeemed_after_expiry"), severity="warning", action="manual_review",
               profile_id="p1", benefit_id=1001, definition_id=94, redemption_id=9001)


def test_over_redeemed(tmp_path):
    # first-spend (max 1) used twice, two days apart, each use paired with its sale:
    # net 2 > 1. Reported remaining is left empty, so no remaining_mismatch can arise.
    export = Export(
        benefits=[benefit(1001, "p1", 94, None)],
        redemptions=[redemption(9001, "p1", "2026-11-10T01:00:00Z", 1001, 1),
                     redemption(9002, "p1", "2026-11-12T01:00:00Z", 1001, 1)],
        transactions=[usage("T1", "2026-11-10T01:00:00Z", "p1", benefit_id=1001),
                      usage("T2", "2026-11-12T01:00:00Z", "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["over_redeemed"]
    expect(run.finding("over_redeemed"), severity="error", action="manual_review", profile_id="p1",
           benefit_id=1001, definition_id=94)
    expect(run.ledger_row(1001), redeemed=2, net_redeemed=2, computed_remaining=-1, status="over_redeemed",
           findings=1)


def test_global_over_redeemed(tmp_path):
    # limited-drop (98) allows 2 redemptions in total; three profiles each used theirs once
    # (each within its own max of 1): 3 > 2.
    holders = [("p1", 2001, 9001, "T1"), ("p2", 2002, 9002, "T2"), ("p3", 2003, 9003, "T3")]
    export = Export(
        benefits=[benefit(b, p, 98, 0) for p, b, _, _ in holders],
        redemptions=[redemption(r, p, f"2026-11-1{i}T00:00:00Z", b, 1) for i, (p, b, r, _) in enumerate(holders)],
        transactions=[usage(t, f"2026-11-1{i}T00:00:00Z", p, benefit_id=b) for i, (p, b, _, t) in enumerate(holders)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["global_over_redeemed"]
    expect(run.finding("global_over_redeemed"), severity="error", action="manual_review", definition_id=98,
           redemption_id=None, transaction_external_id=None)


@pytest.mark.parametrize(
    ("returned", "expected", "applied"),
    [
        (3, ["return_exceeds_redeemed"], 1),  # 3 returned on an item of 1: 1 applied, 2 left over
        (1, [], 1),  # exactly the item's count: fine
    ],
)
def test_return_exceeds_redeemed(tmp_path, returned, expected, applied):
    # Coffee card (max 5): 9001 (count 1) paired with T1. Returned as applied: net 0, computed 5.
    export = Export(
        benefits=[benefit(1001, "p1", 96, 5)],
        redemptions=[redemption(9001, "p1", "2026-11-10T00:00:00Z", 1001, 1)],
        transactions=[usage("T1", "2026-11-10T00:00:00Z", "p1", benefit_id=1001)],
        returns=[{"redemption_id": 9001, "count": returned, "returned_at": "2026-11-11T00:00:00Z"}],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == expected
    if expected:
        expect(run.finding("return_exceeds_redeemed"), severity="warning", action="manual_review",
               profile_id="p1", benefit_id=1001, redemption_id=9001)
    expect(run.ledger_row(1001), redeemed=1, returned=applied, net_redeemed=0, computed_remaining=5)
    assert run.payloads("returns") == []


def test_fully_returned_item_with_no_usage_needs_no_return(tmp_path):
    # 9001 (count 2, 10 Nov, no usage) was given back in full: no missing_in_pos, no call.
    export = Export(
        benefits=[benefit(1001, "p1", 96, 5)],
        redemptions=[redemption(9001, "p1", "2026-11-10T00:00:00Z", 1001, 2)],
        returns=[{"redemption_id": 9001, "count": 2}],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == []
    assert run.payloads("returns") == []


def test_remaining_mismatch(tmp_path):
    # 1001: max 5, one paired use → computed 4; Omneo reports 3 → mismatch.
    # 1002: reported remaining unknown → nothing to compare.
    export = Export(
        benefits=[benefit(1001, "p1", 96, 3), benefit(1002, "p2", 96, None)],
        redemptions=[redemption(9001, "p1", "2026-11-10T00:00:00Z", 1001, 1)],
        transactions=[usage("T1", "2026-11-10T00:00:00Z", "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["remaining_mismatch"]
    expect(run.finding("remaining_mismatch"), severity="warning", action="manual_review", profile_id="p1",
           benefit_id=1001, definition_id=96)
    expect(run.ledger_row(1001), computed_remaining=4, reported_remaining=3)


# A clean export -------------------------------------------------------------------------------


def clean_export() -> Export:
    return Export(
        benefits=[
            # first-spend, used once (T1 by benefit id, 10 min after 9001) → 0 left.
            benefit(1001, "p1", 94, 0),
            # coffee card (max 5), instance code CC-1002: 9002 has an item of 2 (1 returned),
            # 9003 (1) is named by T3 → redeemed 3, returned 1, net 2, computed 3.
            benefit(1002, "p2", 96, 3, expires="2026-12-31T00:00:00+11:00", code="CC-1002"),
            # free shipping, unlimited, expired 1 Nov (+11) before as_of; used by definition code.
            benefit(1003, "p3", 99, None, issued="2026-10-01T00:00:00Z", expires="2026-11-01T00:00:00+11:00",
                    timezone=PERTH),
            # coffee card never used, no expiry.
            benefit(1004, "p1", 96, 5, expires=None),
        ],
        redemptions=[
            redemption(9001, "p1", "2026-11-05T02:00:00Z", 1001, 1),
            redemption(9002, "p2", "2026-11-06T03:00:05Z"),  # items below
            redemption(9003, "p2", "2026-11-08T00:00:00Z", 1002, 1),
            redemption(9004, "p3", "2026-10-10T00:00:00Z", 1003, 1),
        ],
        redemption_items=[{"id": 70002, "redemption_id": 9002, "type": "benefit", "item_id": 1002, "count": 2}],
        returns=[{"redemption_id": 9002, "count": 1, "returned_at": "2026-11-07T00:00:00Z"}],
        transactions=[
            usage("T1", "2026-11-05T02:10:00Z", "p1", benefit_id=1001),
            usage("T2", "2026-11-06T03:00:00Z", "p2", code="CC-1002"),
            usage("T3", "2026-11-08T00:01:00Z", "p2", redemption_id=9003),
            usage("T4", "2026-10-10T00:00:00Z", "p3", code="FREESHIP"),
            usage("T5", "2026-11-09T00:00:00Z", "p1"),  # a sale using no benefit: not a usage
        ],
    )


def test_clean_export_has_no_findings_and_a_right_ledger(tmp_path):
    run = reconcile(tmp_path, clean_export())
    assert run.exceptions.height == 0, run.exceptions.to_dicts()
    assert run.all_payloads() == {kind: [] for kind in KINDS}
    columns = ("redeemed", "returned", "net_redeemed", "computed_remaining", "reported_remaining", "status",
               "findings")
    ledger = {row["benefit_id"]: tuple(row[c] for c in columns) for row in run.ledger.iter_rows(named=True)}
    assert ledger == {
        1001: (1, 0, 1, 0, 0, "fully_redeemed", 0),  # max 1 − net 1 = 0
        1002: (3, 1, 2, 3, 3, "active", 0),  # 2 + 1 redeemed, 1 returned; 5 − 2 = 3
        1003: (1, 0, 1, None, None, "expired", 0),  # unlimited: no computed remaining
        1004: (0, 0, 0, 5, 5, "active", 0),
    }
    expect(run.ledger_row(1002), profile_id="p2", definition_id=96, definition_handle="coffee-card",
           max_redemptions=5)


def test_clean_export_matches_resolve_each_way(tmp_path):
    run = reconcile(tmp_path, clean_export())
    # Four usages, four redeem items, all paired: one row per pair; T5 is not a usage.
    rows = {row["transaction_external_id"]: row for row in run.matches.iter_rows(named=True)}
    assert run.matches.height == 4 and set(rows) == {"T1", "T2", "T3", "T4"}
    expect(rows["T1"], match="paired", benefit_id=1001, redemption_id=9001, resolved_by="benefit_id",
           seconds_apart=600)
    expect(rows["T2"], match="paired", benefit_id=1002, redemption_id=9002, redemption_item_id=70002,
           resolved_by="instance_code", seconds_apart=5)
    expect(rows["T3"], match="paired", benefit_id=1002, redemption_id=9003, resolved_by="redemption_id",
           seconds_apart=60)
    expect(rows["T4"], match="paired", benefit_id=1003, redemption_id=9004, resolved_by="definition_code",
           seconds_apart=0)


# Boundaries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "sale_at", "paired"),
    [
        ((), "2026-11-11T00:00:00Z", True),  # exactly 1440 min after 9001: inside the window
        ((), "2026-11-11T00:00:01Z", False),  # one second more: outside
        (("--window-minutes", "30"), "2026-11-10T00:30:00Z", True),
        (("--window-minutes", "30"), "2026-11-10T00:30:01Z", False),
    ],
)
def test_window_edge_is_inclusive(tmp_path, options, sale_at, paired):
    # 9001 at 10 Nov 00:00 UTC; coffee card max 5, one redeemed → computed 4 = reported.
    export = Export(
        benefits=[benefit(1001, "p1", 96, 4)],
        redemptions=[redemption(9001, "p1", "2026-11-10T00:00:00Z", 1001, 1)],
        transactions=[usage("T1", sale_at, "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export, *options)
    if paired:
        assert run.categories() == []
        assert run.matches.select("match", "redemption_id", "transaction_external_id").rows() == [
            ("paired", 9001, "T1")]
    else:
        # Unpaired: the sale is missing in Omneo and the (old) redemption missing at the POS.
        assert run.categories() == ["missing_in_omneo", "missing_in_pos"]
        assert sorted(run.matches["match"].to_list()) == ["item_only", "usage_only"]


def test_two_usages_compete_for_one_redemption_nearest_wins(tmp_path):
    # 9001 at 00:00; T1 at 00:10 (600 s), T2 at 00:05 (300 s) → T2 pairs.
    # T1 is a completed sale with no redemption; 1001 has 5 − 1 = 4 uses left → redemption call.
    export = Export(
        benefits=[benefit(1001, "p1", 96, 4)],
        redemptions=[redemption(9001, "p1", "2026-11-10T00:00:00Z", 1001, 1)],
        transactions=[usage("T1", "2026-11-10T00:10:00Z", "p1", benefit_id=1001),
                      usage("T2", "2026-11-10T00:05:00Z", "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export)
    matched = {r["transaction_external_id"]: (r["match"], r["redemption_id"]) for r in run.matches.iter_rows(named=True)}
    assert matched == {"T1": ("usage_only", None), "T2": ("paired", 9001)}
    assert run.categories() == ["missing_in_omneo"]
    expect(run.finding("missing_in_omneo"), action="redemption", transaction_external_id="T1", benefit_id=1001)
    assert [line["body"]["external_id"] for line in run.payloads("redemptions")] == ["T1"]


def test_equally_near_redemptions_tie_to_the_lower_redemption_id(tmp_path):
    # T1 at 00:00; 9002 one minute before, 9001 one minute after (9002 also listed first).
    # Tie on time apart → the lower id 9001 pairs; 9002 is the duplicate.
    export = Export(
        benefits=[benefit(1001, "p1", 96, 3)],
        redemptions=[redemption(9002, "p1", "2026-11-09T23:59:00Z", 1001, 1),
                     redemption(9001, "p1", "2026-11-10T00:01:00Z", 1001, 1)],
        transactions=[usage("T1", "2026-11-10T00:00:00Z", "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export)
    pair = run.matches.filter(pl.col("match") == "paired")
    assert pair.select("transaction_external_id", "redemption_id").rows() == [("T1", 9001)]
    assert run.categories() == ["duplicate_redemption"]
    expect(run.finding("duplicate_redemption"), redemption_id=9002, action="return")


def test_equally_near_usages_tie_to_the_earlier_usage(tmp_path):
    # 9001 at 00:00; T2 one minute before, T1 one minute after → pairs (time apart, redemption
    # id, usage time): T2 (earlier) wins; T1 becomes missing_in_omneo.
    export = Export(
        benefits=[benefit(1001, "p1", 96, 4)],
        redemptions=[redemption(9001, "p1", "2026-11-10T00:00:00Z", 1001, 1)],
        transactions=[usage("T1", "2026-11-10T00:01:00Z", "p1", benefit_id=1001),
                      usage("T2", "2026-11-09T23:59:00Z", "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export)
    pair = run.matches.filter(pl.col("match") == "paired")
    assert pair.select("transaction_external_id", "redemption_id").rows() == [("T2", 9001)]
    expect(run.finding("missing_in_omneo"), transaction_external_id="T1")


def test_definition_code_resolves_to_the_profiles_earliest_expiring_valid_instance(tmp_path):
    # FIRSTSPEND is definition 94's code and no instance's. p1 holds three 94s:
    #   1000 expired 31 Oct (not valid on 10 Nov), 1001 expires 1 Dec, 1002 expires 1 Jan 2027
    # → 1001, the earliest-expiring valid one. p2's 1005 (expiring sooner) is not p1's.
    export = Export(
        benefits=[
            benefit(1000, "p1", 94, 1, issued="2026-10-01T00:00:00+10:00", expires="2026-10-31T00:00:00+11:00",
                    code="FS-1000"),
            benefit(1001, "p1", 94, 0, code="FS-1001"),
            benefit(1002, "p1", 94, 1, expires="2027-01-01T00:00:00+11:00", code="FS-1002"),
            benefit(1005, "p2", 94, 1, expires="2026-11-20T00:00:00+11:00", code="FS-1005"),
        ],
        redemptions=[redemption(9001, "p1", "2026-11-10T00:00:00Z", 1001, 1)],
        transactions=[usage("T1", "2026-11-10T00:00:00Z", "p1", code="FIRSTSPEND")],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == []
    expect(run.matches.row(0, named=True), match="paired", benefit_id=1001, definition_id=94, redemption_id=9001,
           resolved_by="definition_code", transaction_external_id="T1")
    assert run.matches.height == 1


def test_usage_naming_a_redemption_pairs_directly_and_the_earlier_usage_gets_it(tmp_path):
    # T1 and T2 both name redemption 9001; T1 (two days after it, beyond the 24 h window) is the
    # earlier and pairs anyway; T2 is left without a redemption → missing_in_omneo.
    export = Export(
        benefits=[benefit(1001, "p1", 96, 4)],
        redemptions=[redemption(9001, "p1", "2026-11-10T00:00:00Z", 1001, 1)],
        transactions=[usage("T2", "2026-11-13T00:00:00Z", "p1", redemption_id=9001),
                      usage("T1", "2026-11-12T00:00:00Z", "p1", redemption_id=9001)],
    )
    run = reconcile(tmp_path, export)
    rows = {r["transaction_external_id"]: r for r in run.matches.iter_rows(named=True)}
    expect(rows["T1"], match="paired", redemption_id=9001, benefit_id=1001, resolved_by="redemption_id",
           seconds_apart=2 * 86400)
    expect(rows["T2"], match="usage_only", benefit_id=1001, resolved_by="redemption_id")
    assert run.categories() == ["missing_in_omneo"]
    expect(run.finding("missing_in_omneo"), transaction_external_id="T2", benefit_id=1001)


def test_returns_apply_to_a_redemptions_items_in_item_order(tmp_path):
    # Redemption 9001 has item 70001 (benefit 1001, count 1) then 70002 (benefit 1002, count 2).
    # A return of 2: 70001 takes 1 (its whole count), 70002 the other 1.
    # T1 names 9001 and benefit 1002 → pairs with 70002. 70001 has no sale, but it is fully
    # returned, so nothing to do. Coffee cards (max 5): 1001 net 0 → 5; 1002 net 1 → 4.
    export = Export(
        benefits=[benefit(1001, "p1", 96, 5), benefit(1002, "p1", 96, 4)],
        redemptions=[redemption(9001, "p1", "2026-11-10T00:00:00Z")],
        redemption_items=[{"id": 70001, "redemption_id": 9001, "type": "benefit", "item_id": 1001, "count": 1},
                          {"id": 70002, "redemption_id": 9001, "type": "benefit", "item_id": 1002, "count": 2}],
        returns=[{"redemption_id": 9001, "count": 2}],
        transactions=[usage("T1", "2026-11-10T00:00:00Z", "p1", redemption_id=9001, benefit_id=1002)],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == []
    expect(run.ledger_row(1001), redeemed=1, returned=1, net_redeemed=0, computed_remaining=5)
    expect(run.ledger_row(1002), redeemed=2, returned=1, net_redeemed=1, computed_remaining=4)
    pairs = sorted(run.matches.select("match", "redemption_item_id", "transaction_external_id").rows(),
                   key=lambda r: r[1])
    assert pairs == [("item_only", 70001, None), ("paired", 70002, "T1")]


# Ledger statuses and matches ------------------------------------------------------------------


def test_ledger_statuses_and_match_values(tmp_path):
    export = Export(
        benefits=[
            # 3001 active: 2 redeemed of 5 (9301 paired, 9309 2 h old with no sale), expires 31 Dec.
            benefit(3001, "p1", 96, 3, expires="2026-12-31T00:00:00+11:00"),
            # 3002 expired 20 Nov (before as_of), unused; T308 voided, with no redemption.
            benefit(3002, "p1", 96, 5, expires="2026-11-20T00:00:00+11:00"),
            # 3003 fully_redeemed: first-spend used once.
            benefit(3003, "p2", 94, 0),
            # 3004 over_redeemed: first-spend used twice (remaining unknown).
            benefit(3004, "p2", 94, None),
            # 3005 expired 31 Oct, but used up: fully_redeemed comes first.
            benefit(3005, "p3", 94, 0, issued="2026-10-01T00:00:00Z", expires="2026-10-31T00:00:00Z"),
            # 3006 expires exactly at as_of: not before it → active.
            benefit(3006, "p3", 96, 5, expires=AS_OF),
            # 3007 unlimited: 2 redeemed, 1 reversed → net 1, computed null, active.
            benefit(3007, "p3", 99, None, expires=None),
        ],
        redemptions=[
            redemption(9301, "p1", "2026-11-10T00:00:00Z", 3001, 1),
            redemption(9303, "p2", "2026-11-11T00:00:00Z", 3003, 1),
            redemption(9304, "p2", "2026-11-12T00:00:00Z", 3004, 1),
            redemption(9305, "p2", "2026-11-14T00:00:00Z", 3004, 1),
            redemption(9306, "p3", "2026-10-10T00:00:00Z", 3005, 1),
            redemption(9307, "p3", "2026-11-16T00:00:00Z", 3007, 2),
            redemption(9308, "p3", "2026-11-17T00:00:00Z", 3007, 1, type_="reversal"),
            redemption(9309, "p1", "2026-11-21T20:00:00Z", 3001, 1),
        ],
        transactions=[
            usage("T301", "2026-11-10T00:00:00Z", "p1", benefit_id=3001),
            usage("T303", "2026-11-11T00:00:00Z", "p2", benefit_id=3003),
            usage("T304", "2026-11-12T00:00:00Z", "p2", benefit_id=3004),
            usage("T305", "2026-11-14T00:00:00Z", "p2", benefit_id=3004),
            usage("T306", "2026-10-10T00:00:00Z", "p3", benefit_id=3005),
            usage("T307", "2026-11-16T00:00:00Z", "p3", benefit_id=3007),
            usage("T308", "2026-11-15T00:00:00Z", "p1", benefit_id=3002, status="voided"),
        ],
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == ["over_redeemed"]
    columns = ("status", "redeemed", "returned", "net_redeemed", "computed_remaining", "findings")
    ledger = {row["benefit_id"]: tuple(row[c] for c in columns) for row in run.ledger.iter_rows(named=True)}
    assert ledger == {
        3001: ("active", 2, 0, 2, 3, 0),
        3002: ("expired", 0, 0, 0, 5, 0),
        3003: ("fully_redeemed", 1, 0, 1, 0, 0),
        3004: ("over_redeemed", 2, 0, 2, -1, 1),
        3005: ("fully_redeemed", 1, 0, 1, 0, 0),
        3006: ("active", 0, 0, 0, 5, 0),
        3007: ("active", 2, 1, 1, None, 0),
    }
    # One row per usage and per redeem item (a pair is one row); the reversal 9308 is no redeem item.
    matches = sorted(run.matches.select("match", "transaction_external_id", "redemption_id").rows(),
                     key=lambda r: (r[0], r[1] or "", r[2] or 0))
    assert matches == [
        ("item_only", None, 9309),
        ("paired", "T301", 9301), ("paired", "T303", 9303), ("paired", "T304", 9304),
        ("paired", "T305", 9305), ("paired", "T306", 9306), ("paired", "T307", 9307),
        ("usage_only", "T308", None),
    ]


# Corrective payloads and the manifest --------------------------------------------------------


def mixed_export() -> Export:
    """Several findings of each payload kind (worked out in test_manifest_counts_…)."""
    return Export(
        benefits=[benefit(1001, "p1", 96, 2), benefit(1002, "p2", 94, 0), benefit(1003, "p3", 96, 4, timezone=PERTH)],
        redemptions=[
            redemption(9001, "p1", "2026-11-12T00:00:00Z", 1001, 1),
            redemption(9002, "p1", "2026-11-14T00:00:00Z", 1001, 1),
            redemption(9003, "p1", "2026-11-14T00:01:00Z", 1001, 1),
            redemption(9004, "p2", "2026-11-15T00:00:00Z", 1002, 1),
        ],
        transactions=[
            usage("T1", "2026-11-10T01:30:00Z", "p1", benefit_id=1001),
            usage("T2", "2026-11-14T00:00:00Z", "p1", benefit_id=1001),
            usage("T3", "2026-11-15T00:02:00Z", "p2", benefit_id=1002, status="voided"),
            usage("T4", "2026-11-15T10:00:00+11:00", "p1", code="VIPWELCOME"),
            usage("T5", "2026-11-16T10:00:00+11:00", "p2", code="VIPWELCOME"),
            usage("T7", "2026-11-18T00:00:00Z", "p3", benefit_id=1003),
        ],
    )


def test_manifest_counts_findings_by_category_and_action(tmp_path):
    # 1001 (max 5, reported 2): T1 (10 Nov) has no redemption within 24 h → missing_in_omneo,
    #   redemption call; 9001 (12 Nov) no sale → missing_in_pos; T2 pairs with 9002 (0 s),
    #   9003 a minute later → duplicate. Redeemed 3 → computed 2 = reported.
    # 1002 (max 1, reported 0): 9004 paired with voided T3 → voided_in_pos.
    # T4: p1 gold claims vip-welcome → claim_redeem; T5: p2 silver → manual_review.
    # 1003 (max 5, reported 4, nothing redeemed → computed 5): remaining_mismatch; T7 uses it with
    #   no redemption → missing_in_omneo, redemption call.
    run = reconcile(tmp_path, mixed_export())
    stage = next(s for s in read_manifest(run.path)["stages"] if s["stage"] == "reconcile")
    categories = {"missing_in_omneo": 4, "missing_in_pos": 1, "duplicate_redemption": 1, "voided_in_pos": 1,
                  "remaining_mismatch": 1}
    actions = {"redemption": 2, "claim_redeem": 1, "return": 3, "manual_review": 2}
    assert {k: v for k, v in stage["categories"].items() if v} == categories
    assert {k: v for k, v in stage["actions"].items() if v} == actions
    assert run.exceptions.height == 8


def test_payloads_are_deterministic_and_split_one_line_per_file(tmp_path):
    export = mixed_export()
    first = reconcile(tmp_path, export, "--lines-per-file", "1", run="first")
    second = reconcile(tmp_path, export, "--lines-per-file", "1", run="second", input_name="in2")

    # 2 redemption calls (T1, T7), 1 claim_redeem (T4), 3 returns (9001, 9003, 9004): one file each.
    expected_files = {"redemptions": 2, "claim_redeem": 1, "returns": 3}
    keys = []
    for kind, count in expected_files.items():
        names = [f.name for f in first.files(kind)]
        assert names == [f"part-{n:05d}.ndjson" for n in range(count)]
        assert [f.name for f in second.files(kind)] == names
        assert [f.read_bytes() for f in second.files(kind)] == [f.read_bytes() for f in first.files(kind)]
        for f in first.files(kind):
            lines = f.read_text("utf-8").splitlines()
            assert len(lines) == 1
            line = json.loads(lines[0])
            assert set(line) >= {"method", "path", "idempotency_key", "body"}
            assert line["method"] == "POST" and isinstance(line["body"], dict)
            keys.append(line["idempotency_key"])
    assert len(set(keys)) == len(keys) == 6
    # Each return gives back the one use; which category sorts first is the implementation's choice.
    assert sorted(calls(first.payloads("returns")), key=lambda c: c["path"]) == [
        return_call(r, 1) for r in (9001, 9003, 9004)]
    assert [line["body"]["external_id"] for line in first.payloads("redemptions")] == ["T1", "T7"]
    # T7 on Perth's 1003 at 18 Nov 00:00 UTC is 08:00 local.
    assert first.payloads("redemptions")[1]["body"] == {
        "issued_at": "2026-11-18 08:00:00", "timezone": PERTH, "external_id": "T7"}


def test_finding_ids_and_payloads_do_not_depend_on_input_row_order(tmp_path):
    # The same rows, every file in reverse order: exception_id is `category:` + the ids that
    # identify the finding, and the idempotency key hashes them, so nothing may change. (A key
    # that moved with a row's position would let a re-pulled export post the same call twice.)
    export = mixed_export()
    first = reconcile(tmp_path, export, run="first")
    reversed_input = export.write(tmp_path / "in-reversed", reverse=True)
    assert_ok(invoke(["reconcile", "--input", reversed_input, "--out", tmp_path / "second", "--as-of", AS_OF,
                      "--max-reject-ratio", "1"]))
    second = Run(tmp_path / "second")
    assert sorted(second.exceptions["exception_id"]) == sorted(first.exceptions["exception_id"])
    for kind in KINDS:
        assert [f.read_bytes() for f in second.files(kind)] == [f.read_bytes() for f in first.files(kind)]


# Missing inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", REQUIRED)
def test_missing_required_dataset_is_a_clear_error(tmp_path, dataset):
    folder = clean_export().write(tmp_path / "in", omit=dataset)
    result = invoke(["reconcile", "--input", folder, "--out", tmp_path / "run", "--as-of", AS_OF,
                     "--max-reject-ratio", "1"])
    assert result.exit_code == 1, result.output
    assert re.search(rf"\b{dataset}\b", result.output), result.output
    assert not (tmp_path / "run" / "reconciliation" / "exceptions.parquet").exists()


def test_optional_datasets_may_be_absent(tmp_path):
    # No profiles, returns or redemption_items: a plain paired use still reconciles cleanly.
    # The flat redemption leaves count empty: it defaults to 1, so first-spend is used up.
    export = Export(
        benefits=[benefit(1001, "p1", 94, 0)],
        redemptions=[redemption(9001, "p1", "2026-11-10T00:00:00Z", 1001, None)],
        transactions=[usage("T1", "2026-11-10T00:00:00Z", "p1", benefit_id=1001)],
        profiles=None,
    )
    run = reconcile(tmp_path, export)
    assert run.categories() == []
    expect(run.ledger_row(1001), redeemed=1, status="fully_redeemed", computed_remaining=0)


def test_a_flat_redemption_counts_as_an_omneo_item_in_the_summary_and_the_report(tmp_path):
    # A flat redemption has no item id: counted by item id, the summary and the report's
    # per-day chart left it out, and the chart showed the POS ahead of Omneo on its day.
    export = Export(
        benefits=[benefit(1001, "p1", 94, 0)],
        redemptions=[redemption(9001, "p1", "2026-11-10T03:00:00Z", 1001, 1)],
        transactions=[usage("T1", "2026-11-10T03:00:00Z", "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export)
    assert run.matches.select("match", "redemption_item_id").rows() == [("paired", None)]
    assert_ok(invoke(["report", "--out", run.path]))

    summary = invoke(["query", "--out", run.path, "--format", "csv",
                      "SELECT value FROM summary WHERE metric = 'omneo_redemption_items'"])
    assert summary.output.splitlines()[1:] == ["1"]
    html = (run.path / "report.html").read_text(encoding="utf-8")
    assert "2026-11-10 · Omneo: 1<" in html and "2026-11-10 · POS: 1<" in html


def test_the_report_days_end_on_the_as_of_day_in_the_zone_icu_gives(tmp_path):
    # The chart's last day was worked out by Python's zoneinfo, whose rules (the machine's
    # zone files first) can lag DuckDB's: Vancouver keeps -07 from 2026-11, so 00:30 local on
    # the 21st was 23:30 on the 20th, and a sale at 00:10 fell off the chart.
    export = Export(
        benefits=[benefit(1001, "p1", 94, 0, timezone="America/Vancouver")],
        redemptions=[redemption(9001, "p1", "2026-11-21T07:10:00Z", 1001, 1)],
        transactions=[usage("T1", "2026-11-21T07:10:00Z", "p1", benefit_id=1001)],
    )
    run = reconcile(tmp_path, export, "--as-of", "2026-11-21T00:30:00-07:00", "--default-timezone", "America/Vancouver")
    assert_ok(invoke(["report", "--out", run.path]))

    html = (run.path / "report.html").read_text(encoding="utf-8")
    assert "2026-11-21 · POS: 1<" in html, "the sale's day is not on the chart"
