"""The reconcile stage: Omneo's redemptions against the POS sales that used benefits.

Builds items (Omneo) and usages (POS) in SQL, pairs them one-to-one per benefit, then
writes the ledger, the matches, one row per finding, and the corrective API calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipeline import db, failpoints, payloads
from pipeline.context import RunContext
from pipeline.errors import RuleError
from pipeline.issuance import build_profile_context
from pipeline.jsonlogic import compile_condition

REQUIRED = ("benefit_definitions", "benefits", "redemptions", "transactions")
CATEGORIES = (
    "missing_in_omneo", "missing_in_pos", "voided_in_pos", "duplicate_redemption", "unknown_benefit",
    "unknown_redeem_code", "profile_mismatch", "redeemed_before_issue", "redeemed_after_expiry",
    "over_redeemed", "global_over_redeemed", "return_exceeds_redeemed", "remaining_mismatch",
)
ACTIONS = ("redemption", "claim_redeem", "return", "manual_review")
PAYLOAD_KINDS = ("redemptions", "claim_redeem", "returns")
EXCEPTION_COLUMNS = (
    "exception_id, category, severity, action, profile_id, benefit_id, definition_id, redemption_id, "
    "redemption_item_id, transaction_external_id, detail"
)


@dataclass(frozen=True)
class Options:
    """The reconcile command's own options."""

    window_minutes: int = 1440
    grace_hours: float = 24
    lines_per_file: int = 1000


@dataclass
class ReconcileResult:
    """Counts per category and per action, matching figures, files written, time taken."""

    categories: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    matches: dict[str, int] = field(default_factory=dict)
    payload_files: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run(context: RunContext, options: Options) -> ReconcileResult:
    """Reconcile the validated tables and write reconciliation/ and the corrective payloads."""
    started = time.perf_counter()
    con = context.con
    window = {"window_seconds": options.window_minutes * 60}
    with context.progress.stage("reconcile", 5) as step:
        step("resolving usages")
        con.execute("CREATE OR REPLACE TABLE recon_items AS " + db.sql_text("recon_items"))
        # The ledger needs only the items; every later statement reads the benefits from it.
        con.execute("CREATE OR REPLACE TABLE recon_ledger AS " + db.sql_text("ledger"), {"as_of": context.as_of})
        con.execute("CREATE OR REPLACE TABLE recon_usages AS " + db.sql_text("recon_usages"))
        step("matching")
        _match(context, window)
        step("ledger and exceptions")
        con.execute("CREATE OR REPLACE TEMP TABLE recon_facts AS " + db.sql_text("recon_facts"))
        # Items of returns and reversals are never paired, so not in recon_facts: a few rows.
        con.execute(
            """CREATE OR REPLACE TEMP TABLE recon_return_items AS
               SELECT i.*, b.benefit_id IS NOT NULL AS known_benefit, b.profile_id AS benefit_profile_id,
                      b.definition_id, b.issued_at, b.expires_at
               FROM recon_items i LEFT JOIN recon_ledger b ON b.benefit_id = i.benefit_id
               WHERE i.kind <> 'redeem'"""
        )
        # The profiles a finding can need (a claim's holder, a call's time zone): those of the
        # completed, unpaired usages. One read of profiles, a few rows kept.
        con.execute(
            """CREATE OR REPLACE TEMP TABLE recon_profiles AS
               SELECT id, timezone FROM profiles
               WHERE id IN (SELECT usage_profile_id FROM recon_facts
                            WHERE match = 'usage_only' AND pos_status = 'completed')"""
        )
        _claim_eligible(context)
        # exception_id names the finding by business ids (never by file row), so a reordered
        # export yields the same ids and so the same idempotency keys; a count tells apart
        # findings that share every id (the same code rung up twice on one sale).
        # The findings first, on their own: a few rows out of millions, so naming them below
        # is instant (in one statement the window ran under the big joins' memory, 6 s at 10M).
        con.execute(
            "CREATE OR REPLACE TEMP TABLE recon_found AS " + db.sql_text("exceptions"),
            {"as_of": context.as_of, "grace_seconds": options.grace_hours * 3600, **window},
        )
        con.execute(
            """
            CREATE OR REPLACE TABLE recon_exceptions AS
            WITH named AS (
                SELECT category || ':' || concat_ws(':', benefit_id, definition_id, redemption_id, _item_position,
                                                     transaction_external_id, _redeem_code) AS base_id, *
                FROM recon_found
            )
            SELECT base_id || CASE WHEN n > 1 THEN ':' || n ELSE '' END AS exception_id, * EXCLUDE (base_id, n)
            FROM (SELECT *, row_number() OVER (PARTITION BY base_id ORDER BY _usage_source_file, _usage_source_row) AS n
                  FROM named)
            ORDER BY category, exception_id
            """
        )

        step("writing outputs")
        context.copy_parquet(
            """SELECT l.* EXCLUDE (timezone), coalesce(f.findings, 0) AS findings FROM recon_ledger l
               LEFT JOIN (SELECT benefit_id, count(*) AS findings FROM recon_exceptions GROUP BY ALL) f
               USING (benefit_id) ORDER BY l.benefit_id""",
            "reconciliation/ledger.parquet",
        )
        # Written from a table (recon_facts), never straight from a join: DuckDB marks a
        # Parquet column REQUIRED when the table's statistics show it holds no NULL, so the
        # file's schema, and its bytes, would otherwise depend on how the rows were computed.
        context.copy_parquet(db.sql_text("matches"), "reconciliation/matches.parquet")
        context.copy_parquet(f"SELECT {EXCEPTION_COLUMNS} FROM recon_exceptions", "reconciliation/exceptions.parquet")
        step("payloads")
        result = ReconcileResult(payload_files=_write_payloads(context, options.lines_per_file))

    counted = dict(((c, a), n) for c, a, n in db.rows(con, "SELECT category, action, count(*) FROM recon_exceptions GROUP BY ALL"))
    result.categories = {c: sum(n for (cat, _), n in counted.items() if cat == c) for c in CATEGORIES}
    result.actions = {a: sum(n for (_, act), n in counted.items() if act == a) for a in ACTIONS}
    result.matches = dict(db.rows(con, "SELECT match, count(*) FROM recon_facts GROUP BY ALL ORDER BY ALL"))
    result.seconds = round(time.perf_counter() - started, 3)
    failpoints.reach("reconcile_staged")
    record = {
        "seconds": result.seconds,
        "window_minutes": options.window_minutes,
        "grace_hours": options.grace_hours,
        "exceptions": sum(result.categories.values()),
        "categories": result.categories,
        "actions": result.actions,
        "matches": result.matches,
        "payload_files": len(result.payload_files),
        **({"engine": "spark"} if context.engine == "spark" else {}),
    }
    context.commit("reconcile", record, replaces=("reconciliation/", *(f"payloads/{k}/" for k in PAYLOAD_KINDS)))
    return result


def _match(context: RunContext, window: dict) -> None:
    """Table `recon_pairs`: on the Spark engine, benefit by benefit on its shards."""
    if context.engine == "spark":
        from pipeline.spark import reconcile as on_spark

        on_spark.match(context, window)
    else:
        pair(context.con, window)


def pair(con, window: dict) -> None:
    """Pair usages with redeem items: direct pairs first, then nearest-in-time rounds.

    Reads `recon_usages` and `recon_items`; a pair's two sides name one benefit.
    """
    con.execute("CREATE OR REPLACE TABLE recon_pairs AS " + db.sql_text("recon_direct_pairs"))
    con.execute("CREATE OR REPLACE TEMP TABLE recon_candidates AS " + db.sql_text("recon_candidates"), window)
    round_sql = "INSERT INTO recon_pairs " + db.sql_text("recon_match_round")
    # Each round takes every pair that is first choice for both sides; rounds repeat only
    # where choices competed, so a handful suffice even at millions of rows.
    while db.scalar(con, round_sql):
        pass
    # Millions of rows at 10M profiles; the exceptions query below wants the memory.
    con.execute("DROP TABLE recon_candidates")


def _claim_eligible(context: RunContext) -> None:
    """Table `claim_eligible`: unresolved sales whose code a profile could claim-redeem.

    The code is a claimable, published definition's; the profile holds no valid instance
    (the usage did not resolve); the claim window holds at the sale; and the definition's
    claim_condition holds for the profile as of the run (compiled to SQL, evaluated in bulk).
    """
    con = context.con
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE claim_candidates AS
        SELECT u.usage_source_file, u.usage_source_row, u.usage_profile_id, d.id AS definition_id
        FROM recon_usages u
        JOIN benefit_definitions d ON d.id = u.code_definition_id
        WHERE u.benefit_id IS NULL AND u.pos_status = 'completed'
          AND coalesce(d.is_claimable, false) AND coalesce(d.is_published, true) AND NOT coalesce(d.is_archived, false)
          AND (d.claim_period_start_at IS NULL OR d.claim_period_start_at <= u.transacted_at)
          AND (d.claim_period_end_at IS NULL OR u.transacted_at <= d.claim_period_end_at)
          AND u.usage_profile_id IN (SELECT id FROM recon_profiles)
        """
    )
    con.execute("CREATE OR REPLACE TABLE claim_eligible (usage_source_file VARCHAR, usage_source_row BIGINT)")
    conditions = db.rows(
        con,
        """SELECT DISTINCT d.id, d.handle, d.claim_condition FROM claim_candidates c
           JOIN benefit_definitions d ON d.id = c.definition_id ORDER BY d.id""",
    )
    if not conditions:
        return
    variables, _ = build_profile_context(
        context, [rule for _, _, rule in conditions], only_profiles="SELECT usage_profile_id FROM claim_candidates"
    )
    for definition_id, handle, rule in conditions:
        try:
            condition = compile_condition(rule, variables) if rule else "true"
        except RuleError:  # validation rejects such definitions; never claim on a broken rule
            continue
        con.execute(
            f"""
            INSERT INTO claim_eligible
            SELECT c.usage_source_file, c.usage_source_row
            FROM claim_candidates c JOIN profile_context ON profile_context.id = c.usage_profile_id
            WHERE c.definition_id = ? AND ({condition})
            """,
            [definition_id],
        )
    con.execute("DROP TABLE profile_context")


def _write_payloads(context: RunContext, lines_per_file: int) -> list[str]:
    con = context.con
    con.execute(
        "CREATE OR REPLACE TEMP TABLE correction_calls AS " + db.sql_text("payload_corrections"),
        {"default_timezone": context.default_timezone},
    )
    written = []
    for kind in PAYLOAD_KINDS:
        # Ordered by the finding's id; the key hashes kind and id, so reruns are identical.
        # A table, not a view: each part file reads a slice, and a view would number and
        # build every line again for each file (at --lines-per-file 7, 1453 files: 12 s).
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE correction_lines AS
                SELECT row_number() OVER (ORDER BY exception_id) AS line_no,
                       {payloads.envelope("path", "body")} AS line
                FROM (SELECT *, kind || '-' || sha256(exception_id)[1:32] AS idempotency_key
                      FROM correction_calls WHERE kind = '{kind}')"""
        )
        written += payloads.write_lines(context, kind, "correction_lines", lines_per_file)
    con.execute("DROP TABLE IF EXISTS correction_lines")
    return written
