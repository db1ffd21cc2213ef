"""The issue stage: which profiles get which benefit tonight, and the calls that issue them.

Campaigns run in file order, each one set-wise SQL over every profile (`plan_campaign.sql`);
the plan and the batched payloads are committed, and the issuance state told, only when all
succeed.
"""

from __future__ import annotations

import difflib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipeline import db, failpoints, payloads, state
from pipeline.campaigns import Campaign
from pipeline.context import RunContext, new_commit_id
from pipeline.errors import CampaignError, RuleError
from pipeline.jsonlogic import Variables, compile_condition
from pipeline.jsonlogic.rules import parse_rule

PLAN_COLUMNS = (
    "campaign_id, profile_id, definition_id, definition_handle, decision, reason, issued_at_local, "
    "issued_at_utc, timezone, expires_at_local, expires_at_utc, external_id"
)
# Tables issuance builds and drops when its files are written (the plan is plan.parquet).
SCRATCH = ("profile_context", "holdings", "bulk_holdings", "plan", "plan_rows", "plan_slots", "candidates", "reasons",
           "shard_reasons", "issued",
           "benefit_calls", "issuance_state")
PLAN_DDL = """(
    campaign_id VARCHAR, profile_id VARCHAR, definition_id BIGINT, definition_handle VARCHAR,
    decision VARCHAR, reason VARCHAR, issued_at_local TIMESTAMP, issued_at_utc TIMESTAMPTZ,
    timezone VARCHAR, expires_at_local TIMESTAMP, expires_at_utc TIMESTAMPTZ, external_id VARCHAR,
    campaign_position INTEGER)"""
# A campaign's narrow rows, and what every row of one (campaign, zone) shares: its slot.
PLAN_ROWS_DDL = """(
    profile_id VARCHAR, definition_id BIGINT, decision VARCHAR, reason VARCHAR, slot INTEGER,
    campaign_position INTEGER)"""
PLAN_SLOTS_DDL = """(
    slot INTEGER, campaign_position INTEGER, campaign_id VARCHAR, definition_handle VARCHAR,
    timezone VARCHAR, issued_at_local TIMESTAMP, issued_at_utc TIMESTAMPTZ, expires_at_local TIMESTAMP,
    expires_at_utc TIMESTAMPTZ, external_id_prefix VARCHAR)"""
SKIP_REASONS = (
    "definition_not_issuable",
    "profile_inactive",
    "already_issued_this_cycle",
    "duplicate_in_run",
    "holds_active",
    "not_reclaimable",
    "allocation_exhausted",
)
# Profile-context columns a rule or priority may not use: bookkeeping, not profile data.
HIDDEN = {"source_file", "source_row"}


@dataclass
class IssueResult:
    """Counts per campaign, the payload files written, and the time taken."""

    campaigns: list[dict] = field(default_factory=list)
    issued: int = 0
    payload_files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    pruned: int = 0  # state rows dropped because the benefits export now shows them


@dataclass(frozen=True)
class Options:
    """The issue command's own options."""

    campaigns: list[Campaign]
    state_dir: Path
    batch_size: int = 500
    lines_per_file: int = 1000
    single: bool = False


@dataclass(frozen=True)
class Prepared:
    """Campaigns checked against the accepted definitions, their rules compiled to SQL."""

    definitions: dict[str, dict]
    rules: list[tuple[str, str, str]]  # (audience, claim condition, priority) per campaign
    profile_context: str  # the statement that creates table profile_context, run by `run`
    context_columns: tuple[str, ...]  # the columns that statement keeps


def prepare(context: RunContext, options: Options) -> Prepared:
    """Resolve every campaign's definition and compile its rules; raise CampaignError.

    Runs before any output is written, so a bad campaign leaves nothing behind.
    """
    definitions = _resolve_definitions(context, options.campaigns)
    rule_texts = [c.audience for c in options.campaigns] + [d["claim_condition"] for d in definitions.values()]
    variables, columns, create, available = describe_profile_context(
        context, rule_texts, priorities=[c.priority_column for c in options.campaigns]
    )
    rules = [_compile(c, definitions[c.id], variables, columns, available) for c in options.campaigns]
    return Prepared(definitions, rules, create, tuple(columns))


def build_profile_context(
    context: RunContext, rules: list, priorities: list[str] = (), only_profiles: str | None = None
) -> tuple[Variables, dict[str, str]]:
    """Create table `profile_context` (contract §3); return the rule variables that read it."""
    variables, columns, create, _ = describe_profile_context(context, rules, priorities, only_profiles)
    context.con.execute(create, _context_params(context))
    return variables, columns


def describe_profile_context(
    context: RunContext, rules: list, priorities: list[str] = (), only_profiles: str | None = None
) -> tuple[Variables, dict[str, str], str, list[str]]:
    """The variables and columns of `profile_context`, the statement that creates it, and
    every column it could have (what a rule may name).

    Only the columns `rules` and `priorities` can read are kept: DuckDB then skips the rest
    of the context query (a full copy of every profile column costs seconds at 10M).
    `only_profiles`, a SELECT of profile ids, limits the rows. Nothing is computed yet, so
    issuance can check its campaigns before any output and build the table after the
    validated files are written, when their memory is free again.
    """
    con = context.con
    # Scope first, so a context for a few profiles never aggregates every sale.
    con.execute(
        "CREATE OR REPLACE TEMP VIEW context_profiles AS SELECT * FROM profiles"
        + (f" WHERE id IN ({only_profiles})" if only_profiles else "")
    )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW context_sales AS SELECT * FROM transactions"
        # Every row of a sale that touches a profile in scope: the sale's spend goes to the
        # profile on its largest row, as it does over all profiles.
        + (f" WHERE external_id IN (SELECT external_id FROM transactions WHERE profile_id IN ({only_profiles}))"
           if only_profiles else "")
    )
    con.execute("CREATE OR REPLACE TEMP VIEW context_sale_tops AS " + sale_tops(context.as_of))
    context_sql = db.sql_text("profile_context")
    params = _context_params(context)
    available = [name for name, *_ in db.rows(con, f"DESCRIBE {context_sql}", params) if name not in HIDDEN]
    chosen = _columns_read(rules, list(priorities), available)
    if not any(name.startswith("aggregations.") for name in chosen):
        # No rule reads spend: DuckDB would still aggregate every sale for the join.
        con.execute("CREATE OR REPLACE TEMP VIEW context_sales AS SELECT * FROM transactions WHERE false")
    selected = ", ".join(db.quote(name) for name in chosen)
    select = f"SELECT {selected} FROM ({context_sql})"
    columns = {name: kind for name, kind, *_ in db.rows(con, f"DESCRIBE {select}", params)}
    variables = Variables.from_columns(columns, json_columns=["attributes"])
    return variables, columns, f"CREATE OR REPLACE TABLE profile_context AS {select}", available


def sale_tops(as_of) -> str:
    """`sale_tops.sql` for the run's clock: one row per sale of `context_sales`.

    A view takes no parameters, so the clock is written in as a literal instant.
    """
    instant = f"CAST({db.literal(as_of.isoformat())} AS TIMESTAMPTZ)"
    return db.sql_text("sale_tops").replace("$as_of", instant)


def _context_params(context: RunContext) -> dict:
    return {"as_of": context.as_of, "default_timezone": context.default_timezone}


def run(context: RunContext, options: Options, prepared: Prepared) -> IssueResult:
    """Plan every campaign, then write plan, payloads and state. Needs validated tables."""
    started = time.perf_counter()
    con = context.con
    definitions = prepared.definitions
    result = IssueResult()
    with context.progress.stage("issue", len(options.campaigns) + 5) as step:
        step("holdings")
        state.settle(con, options.state_dir)
        state.load(con, options.state_dir, resumed_run=context.run_id if context.resumed else None)
        con.execute("CREATE OR REPLACE TABLE holdings AS " + db.sql_text("holdings"))
        # What earlier bulk runs issued, by external_id: each campaign looks for its own cycle
        # here, not in every holding.
        con.execute(
            "CREATE OR REPLACE TABLE bulk_holdings AS "
            "SELECT DISTINCT external_id FROM holdings WHERE starts_with(external_id, 'bulk:')"
        )
        con.execute(f"CREATE OR REPLACE TABLE plan {PLAN_DDL}")
        con.execute(f"CREATE OR REPLACE TABLE plan_rows {PLAN_ROWS_DDL}")
        con.execute(f"CREATE OR REPLACE TABLE plan_slots {PLAN_SLOTS_DDL}")
        considered = None
        if context.engine == "spark" and options.campaigns:
            from pipeline.spark import issue as on_spark

            step("profile context and every campaign's candidates, on Spark")
            considered = on_spark.consider(context, options.campaigns, prepared)
        else:
            step("profile context")
            con.execute(prepared.profile_context, _context_params(context))
        for campaign, (audience, condition, priority) in zip(options.campaigns, prepared.rules):
            step(campaign.id)
            definition = definitions[campaign.id]
            values = campaign_values(campaign, definition, context.as_of, context.default_timezone)
            if considered is None:
                counts = consider(con, values, audience, condition, priority)
            else:
                counts = considered.take(values)
            result.campaigns.append(decide(context, campaign, definition, values, counts))
        result.issued = sum(c["issued"] for c in result.campaigns)
        # The plan is decided: what the campaigns read goes now, so the writes below (the
        # payloads' ordered aggregates above all) have the memory.
        _drop(con, ("profile_context", "candidates", "reasons", "shard_reasons", "holdings", "bulk_holdings", "plan_rows",
                     "plan_slots"))

        step("plan.parquet")
        # `plan` is in plan order already (campaign, then profile): a scan keeps that order.
        context.copy_parquet(f"SELECT {PLAN_COLUMNS} FROM plan", "issuance/plan.parquet")
        step("payloads")
        result.payload_files = payloads.write_benefits(
            context, batch_size=options.batch_size, lines_per_file=options.lines_per_file, single=options.single
        )
        failpoints.reach("payloads_staged")
        step("state")
        # The state learns tonight's benefits as pending, the folder lists the payloads,
        # then the state calls them emitted: a kill anywhere between leaves a state the next
        # run settles by what the folder shows (docs/runs.md).
        commit_id = new_commit_id()
        state.stage(con, options.state_dir, context.run_id, context.out_dir, commit_id)
        result.seconds = round(time.perf_counter() - started, 3)
        record = {
            "seconds": result.seconds,
            "issued": result.issued,
            "campaigns": result.campaigns,
            "payload_files": len(result.payload_files),
            "state": str(options.state_dir.resolve()),
            # So that a project moved as a whole (runs and state together) still finds it.
            "state_relative": os.path.relpath(options.state_dir.resolve(), context.out_dir.resolve()),
            **({"engine": "spark"} if context.engine == "spark" else {}),
        }
        context.commit("issue", record, replaces=("issuance/", "payloads/benefits/"), commit_id=commit_id)
        failpoints.reach("issue_committed")
        state.promote(options.state_dir, context.run_id)
        # The state keeps only what Omneo's export does not confirm yet (docs/push.md, Pruning).
        result.pruned = state.prune(con, options.state_dir, keep_run=context.run_id)
    # Everything issuance built is in its files now; reconciliation wants the memory.
    _drop(con, SCRATCH)
    return result


def _drop(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> None:
    """Drop these tables where they exist: their memory goes back to DuckDB."""
    con.execute("DROP TABLE IF EXISTS " + "; DROP TABLE IF EXISTS ".join(tables))


def _resolve_definitions(context: RunContext, campaigns: list[Campaign]) -> dict[str, dict]:
    """Each campaign's accepted definition, by handle or numeric id; unknown stops the run."""
    rows = db.rows(
        context.con,
        "SELECT id, handle, claim_condition, total_allocations_remaining FROM benefit_definitions",
    )
    by_handle = {row[1]: row for row in rows}
    by_id = {str(row[0]): row for row in rows}
    resolved = {}
    for campaign in campaigns:
        row = by_handle.get(campaign.definition) or by_id.get(campaign.definition)
        if row is None:
            known = ", ".join(sorted(by_handle)[:12]) or "none"
            raise CampaignError(
                f"campaign {campaign.id!r}: unknown definition {campaign.definition!r} "
                f"(no accepted benefit definition has that handle or id; accepted handles: {known})"
            )
        resolved[campaign.id] = {
            "id": row[0], "handle": row[1], "claim_condition": row[2], "allocations_remaining": row[3]
        }
    return resolved


def _compile(
    campaign: Campaign, definition: dict, variables: Variables, columns: dict[str, str], available: list[str]
) -> tuple[str, str, str]:
    """The campaign's audience and the definition's claim condition as SQL, and its priority."""
    try:
        audience = compile_condition(campaign.audience, variables) if campaign.audience is not None else "true"
    except RuleError as error:
        raise CampaignError(f"campaign {campaign.id!r}: audience: {error}") from None
    try:
        condition = (
            compile_condition(definition["claim_condition"], variables)
            if definition["claim_condition"]
            else "true"
        )
    except RuleError as error:
        raise CampaignError(
            f"campaign {campaign.id!r}: claim_condition of {definition['handle']!r}: {error}"
        ) from None
    read = _profile_paths(parse_rule(campaign.audience)) if campaign.audience is not None else set()
    unknown = sorted(path for path in read if not any(_within(path, name) for name in available))
    if unknown:
        # JsonLogic reads a missing variable as null, and null passes `<=`: a typo in an
        # audience once issued a campaign to every profile, without a word.
        close = difflib.get_close_matches(unknown[0], available, n=1)
        raise CampaignError(
            f"campaign {campaign.id!r}: audience reads {unknown[0]!r}, which is no profile variable"
            + (f" (did you mean {close[0]!r}?)" if close else "")
        )
    if campaign.priority_column not in columns:
        raise CampaignError(
            f"campaign {campaign.id!r}: priority {campaign.priority!r} is not a profile variable "
            "(e.g. joined_at, -aggregations.spend_12m)"
        )
    return audience, condition, db.quote(campaign.priority_column)


def campaign_values(campaign: Campaign, definition: dict, as_of, default_timezone: str) -> dict:
    """The parameters of `plan_campaign.sql` but the cap, which depends on earlier campaigns."""
    return {
        "definition_id": definition["id"],
        "campaign_id": campaign.id,
        "cycle": campaign.cycle,
        "campaign_timezone": campaign.timezone,
        "default_timezone": default_timezone,
        "issued_at_local": campaign.issued_at,
        "as_of": as_of,
        "descending": campaign.descending,
        # Whether any cap can apply: only then is the allocation key worth computing.
        "ranked": campaign.limit is not None or definition["allocations_remaining"] is not None,
        "position": campaign.position,
    }


def consider(con: duckdb.DuckDBPyConnection, values: dict, audience: str, condition: str, priority: str) -> dict:
    """Table `reasons`: the campaign's candidates, with what decides them profile by profile.

    Needs `profile_context`, `holdings`, `bulk_holdings` and `benefit_definitions`; each
    candidate's rows in them are its own, so the Spark engine runs this on every shard.
    Returns the counts the campaign's record starts from.
    """
    # Rules go in WHERE, never in a projection: there DuckDB pushes the typed clauses into
    # the scan and stops at the first false one (about 5x cheaper per row).
    con.execute(
        f"""
        CREATE OR REPLACE TABLE candidates AS
        SELECT id AS profile_id, {priority} AS priority_value, profile_type, timezone
        FROM profile_context
        WHERE ({audience}) AND ({condition})
        """
    )
    profiles = db.scalar(con, "SELECT count(*) FROM profile_context")
    considered = db.scalar(con, "SELECT count(*) FROM candidates")
    # The audience alone is counted by another scan only when a condition follows it: most
    # campaigns have one rule or the other, and a scan of JSON rules costs a second a 10M.
    if condition == "true":
        in_audience = considered
    elif audience == "true":
        in_audience = profiles
    else:
        in_audience = db.scalar(con, f"SELECT count(*) FROM profile_context WHERE {audience}")
    slots(con, values)
    _run_part(con, "reasons", values)
    return {"profiles": profiles, "in_audience": in_audience, "considered": considered}


def slots(con: duckdb.DuckDBPyConnection, values: dict) -> None:
    """The campaign's rows of `plan_slots`, one per zone of `candidates`."""
    _run_part(con, "slots", values)


def _run_part(con: duckdb.DuckDBPyConnection, part: str, values: dict, prefix: str = "") -> None:
    sql = db.sql_parts("plan_campaign")[part]
    con.execute(prefix + sql, db.named(sql, values))


def decide(context: RunContext, campaign: Campaign, definition: dict, values: dict, counts: dict) -> dict:
    """Append the campaign's decisions to `plan_rows` and its rows to `plan`, from `reasons`
    and `plan_slots`; return the campaign's record."""
    con = context.con
    cap = _cap(context, campaign, definition)
    values = {**values, "cap": cap}
    _run_part(con, "decide", values, prefix="INSERT INTO plan_rows BY NAME ")
    # The campaign's slots as one list, slot n at index n, for the widening lookup.
    con.execute(
        "SET VARIABLE plan_slots = (SELECT list(s ORDER BY s.slot) FROM plan_slots s WHERE s.campaign_position = ?)",
        [campaign.position],
    )
    try:
        _run_part(con, "plan", values, prefix="INSERT INTO plan BY NAME ")
    finally:
        con.execute("RESET VARIABLE plan_slots")
    decided = dict(
        db.rows(
            con,
            "SELECT coalesce(reason, 'issued'), count(*) FROM plan_rows WHERE campaign_position = ? GROUP BY ALL",
            [campaign.position],
        )
    )
    issued = decided.get("issued", 0)
    return {
        "campaign_id": campaign.id,
        "definition": definition["handle"],
        "not_in_audience": counts["profiles"] - counts["in_audience"],
        "condition_false": counts["in_audience"] - counts["considered"],
        "considered": counts["considered"],
        "issued": issued,
        "skipped": {reason: decided.get(reason, 0) for reason in SKIP_REASONS},
        "allocation": {"cap": cap, "used": issued},
    }


def _cap(context: RunContext, campaign: Campaign, definition: dict) -> int | None:
    """How many this campaign may issue: the campaign's limit and what the definition has left.

    What is left is the export's `total_allocations_remaining`, less instances this project
    issued that the export does not show yet, less what earlier campaigns of this run issue.
    """
    caps = []
    if campaign.limit is not None:
        caps.append(campaign.limit)
    if definition["allocations_remaining"] is not None:
        spent = db.scalar(
            context.con,
            """SELECT (SELECT count(*) FROM holdings WHERE pending AND definition_id = $d)
                    + (SELECT count(*) FROM plan_rows WHERE decision = 'issue' AND definition_id = $d)""",
            {"d": definition["id"]},
        )
        caps.append(max(0, definition["allocations_remaining"] - spent))
    return min(caps) if caps else None


# Columns the plan itself reads, whatever the rules say.
PLAN_NEEDS = ("id", "profile_type", "timezone")


def _columns_read(rules: list, priorities: list[str], available: list[str]) -> list[str]:
    """The context columns the rules' `var`/`missing` paths and the priorities can reach.

    A path whose name is computed at run time could read anything: then every column.
    """
    paths: set[str] = set(priorities)
    for rule in rules:
        if rule is None or rule == "":
            continue
        found = _var_paths(json.loads(rule) if isinstance(rule, str) else rule)
        if found is None:
            return available
        paths |= found
    wanted = set(PLAN_NEEDS)
    for path in paths:
        wanted |= {name for name in available if _within(path, name)}
    return [name for name in available if name in wanted]


# Operators whose later arguments run once per element, where `var` reads the element.
_LAMBDAS = ("map", "filter", "reduce", "all", "none", "some")


def _reads(node, in_lambda: bool = False) -> Iterator[tuple[str | None, bool]]:
    """Every name a rule's `var`, `missing` and `missing_some` read, with whether it is read
    inside a lambda (the element's, not the profile's); None for a name computed at run time
    (or `var` of the whole datum)."""
    if isinstance(node, list):
        for item in node:
            yield from _reads(item, in_lambda)
        return
    if not isinstance(node, dict) or len(node) != 1:
        return
    (operator, args), = node.items()
    listed = args if isinstance(args, list) else [args]
    if operator == "var":
        path = listed[0] if listed else None
        if not (isinstance(path, (int, float)) and not isinstance(path, bool)):  # an index: not a column
            yield (path if isinstance(path, str) and path != "" else None), in_lambda
        yield from _reads(listed if not isinstance(path, str) else listed[1:], in_lambda)
    elif operator in ("missing", "missing_some"):
        # missing: ["a", "b"]; missing_some: [minimum, ["a", "b"]]
        names = listed[1] if operator == "missing_some" and len(listed) > 1 else listed
        for name in names if isinstance(names, list) else [names]:
            yield (name if isinstance(name, str) else None), in_lambda
    elif operator in _LAMBDAS:
        # The array, and reduce's initial value, are read in the profile's scope.
        for index, arg in enumerate(listed):
            yield from _reads(arg, in_lambda if index == 0 or (operator == "reduce" and index == 2) else True)
    else:
        yield from _reads(listed, in_lambda)


def _profile_paths(node) -> set[str]:
    """The static paths a rule reads from the profile (not inside a lambda, not computed)."""
    return {name for name, in_lambda in _reads(node) if name and not in_lambda}


def _var_paths(node) -> set[str] | None:
    """Static paths read by `var`, `missing` and `missing_some` in a rule; None if dynamic."""
    found = set()
    for name, _ in _reads(node):
        if name is None:
            return None
        found.add(name)
    return found


def _within(path: str, column: str) -> bool:
    """A path names the column, or a part of it: "attributes.comms.email_promo" reads column
    "attributes"; "tier.handle" is a column of its own."""
    return path == column or path.startswith(column + ".")
