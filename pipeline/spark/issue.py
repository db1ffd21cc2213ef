"""The issue stage on Spark: every profile's candidacy decided on its shard, the rest on the driver.

`consider` runs one Spark job (docs/scale-out.md, "What runs where"):

1. **Sales, by sale** (`external_id`): `sale_tops.sql` on each shard of POS rows gives one row
   per sale with the profile its spend goes to, as the default engine computes it.
2. **Profiles, by profile**: each profile's row, its sales, its holdings and the bulk
   external ids that name it meet in one shard. There DuckDB builds the profile context and
   runs every campaign's rules and `reasons` (plan_campaign.sql), the default engine's SQL.
   A shard returns one narrow row per (campaign, candidate) and one row of counts.

What needs every profile stays on the driver's DuckDB, over those narrow rows: each campaign
in file order takes its candidates, `decide` applies `duplicate_in_run` and the cap (the
allocation key is bytes, `create_sort_key`, so no shard compares priorities), and the plan,
payloads and state are written by the default engine's code. The holdings (the benefits
export and the issuance state) are put together on the driver too, and routed by Spark.
"""

from __future__ import annotations

from pipeline import db
from pipeline.spark.jobs import spark_job
from pipeline.spark.shard import FailOnce, arrow_schema, conformed, duckdb_shard, unpack

SALE_COLUMNS = ("external_id", "profile_id", "total", "status", "transacted_at")
SALE_TOPS = "total decimal(38,6), profile_id string, transacted_at timestamp"
HOLDINGS = ("profile_id", "definition_id", "external_id", "issued_at", "expires_at", "has_remaining", "pending")
# What a shard returns: a row per (campaign, candidate), and per campaign a row of counts
# (profile_id null).
REASONS = ("campaign_position int, profile_id string, zone string, reason_before string, reason_after string, "
           "rank_key binary, profiles long, in_audience long, considered long")


class Considered:
    """Every campaign's candidates, decided profile by profile on the shards (table
    `shard_reasons` on the driver); `take` hands one campaign to `issuance.decide`."""

    def __init__(self, con):
        self.con = con

    def take(self, values: dict) -> dict:
        """Tables `candidates` and `reasons`, and the slots, for one campaign; its counts."""
        from pipeline import issuance

        con = self.con
        position = values["position"]
        con.execute("CREATE OR REPLACE TABLE candidates AS SELECT profile_id, zone AS timezone FROM shard_reasons "
                    "WHERE campaign_position = ? AND profile_id IS NOT NULL", [position])
        issuance.slots(con, values)
        con.execute("CREATE OR REPLACE TABLE reasons AS SELECT profile_id, zone, reason_before, reason_after, rank_key "
                    "FROM shard_reasons WHERE campaign_position = ? AND profile_id IS NOT NULL", [position])
        profiles, in_audience, considered = db.rows(
            con, "SELECT coalesce(sum(profiles), 0), coalesce(sum(in_audience), 0), coalesce(sum(considered), 0) "
                 "FROM shard_reasons WHERE campaign_position = ? AND profile_id IS NULL", [position])[0]
        return {"profiles": int(profiles), "in_audience": int(in_audience), "considered": int(considered)}


def consider(context, campaigns, prepared) -> Considered:
    """Run every campaign's rules and reasons on the shards; the driver's `holdings` and
    `bulk_holdings` must exist. The rows come back as table `shard_reasons`."""
    from pyspark.sql import types as T

    from pipeline import issuance

    with spark_job(context, "issue") as job:
        con = context.con
        # What the driver assembled: the holdings, and the bulk external ids by the profile they name.
        routes = " UNION ".join(
            f"SELECT substr(external_id, {len(prefix) + 1}) AS profile_id, external_id FROM bulk_holdings "
            f"WHERE starts_with(external_id, {db.literal(prefix)})"
            for prefix in sorted({f"bulk:{c.id}:{c.cycle}:" for c in campaigns}))
        profile_types = {name: kind for name, kind, *_ in db.rows(con, "DESCRIBE profiles")}
        wanted = _context_reads() | set(prepared.context_columns)
        shipped = [name for name in profile_types if name in wanted]
        frames = {"profiles": job.validated("profiles", shipped),
                  "holdings": job.from_driver("holdings", f"SELECT {', '.join(HOLDINGS)} FROM holdings"),
                  "bulk": job.from_driver("bulk", routes)}
        keys = {"profiles": "id", "holdings": "profile_id", "bulk": "profile_id", "sales": "profile_id"}
        sale_tops = T._parse_datatype_string(SALE_TOPS)
        if any(name.startswith("aggregations.") for name in prepared.context_columns):
            sales = job.pack({"context_sales": job.validated("transactions", SALE_COLUMNS)},
                             {"context_sales": "external_id"})
            frames["sales"] = job.on_shards(sales, duckdb_shard(
                issuance.sale_tops(context.as_of), sale_tops, ["context_sales"], memory_limit=context.memory_limit),
                sale_tops)
        else:
            # No rule reads spend: no sale is read (the default engine leaves them out too).
            frames["sales"] = job.spark.createDataFrame([], sale_tops)
        schema = T._parse_datatype_string(REASONS)
        task = _shard_task(
            plan=[(issuance.campaign_values(c, prepared.definitions[c.id], context.as_of, context.default_timezone),
                   rules) for c, rules in zip(campaigns, prepared.rules)],
            profile_context=prepared.profile_context,
            params={"as_of": context.as_of, "default_timezone": context.default_timezone},
            profile_types=profile_types,
            shipped=shipped,
            definitions=con.sql("SELECT * FROM benefit_definitions").to_arrow_table(),
            schema=arrow_schema(schema),
            memory_limit=context.memory_limit,
            fail_once=FailOnce.from_environment("issue"),
        )
        job.to_driver(job.on_shards(job.pack(frames, keys), task, schema), "shard_reasons")
    return Considered(context.con)


def _context_reads() -> set[str]:
    """The profile columns profile_context.sql names itself (through its aliases `l` and `p`),
    whatever the rules read: read from the statement, so a column it comes to use is shipped."""
    import sqlglot
    from sqlglot import exp

    statement = sqlglot.parse_one(db.sql_text("profile_context"), read="duckdb")
    return {column.name for column in statement.find_all(exp.Column) if column.table in ("l", "p")}


def _shard_task(plan, profile_context, params, profile_types, shipped, definitions, schema, memory_limit, fail_once):
    """A function for `Job.on_shards`: one shard's profile context and every campaign's
    `reasons`, on a DuckDB of the task."""

    def run(key, table):
        import pyarrow as pa

        from pipeline import issuance

        shard = key[0].as_py()
        if fail_once is not None:
            fail_once.reach(shard)
        con = db.connect(threads=1, memory_limit=memory_limit)
        try:
            for name, rows in unpack(table, ("profiles", "sales", "holdings", "bulk")).items():
                con.register(f"shard_{name}", rows)
            # Every profile column, with the default engine's types: the ones Spark carried
            # cast back, the others null (no rule reads them).
            con.execute(f"CREATE TEMP VIEW context_profiles AS SELECT {conformed(profile_types, shipped)} "
                        "FROM shard_profiles")
            con.execute("CREATE TEMP VIEW context_sale_tops AS SELECT * FROM shard_sales")
            con.execute(profile_context, params)
            con.execute("CREATE TABLE holdings AS SELECT * FROM shard_holdings")
            con.execute("CREATE TABLE bulk_holdings AS SELECT DISTINCT external_id FROM shard_bulk")
            con.register("shard_definitions", definitions)
            con.execute("CREATE TABLE benefit_definitions AS SELECT * FROM shard_definitions")
            con.execute(f"CREATE TABLE plan_slots {issuance.PLAN_SLOTS_DDL}")
            parts = []
            for values, (audience, condition, priority) in plan:
                counts = issuance.consider(con, values, audience, condition, priority)
                parts.append(con.sql(
                    "SELECT $position AS campaign_position, profile_id, zone, reason_before, reason_after, rank_key, "
                    "NULL::BIGINT AS profiles, NULL::BIGINT AS in_audience, NULL::BIGINT AS considered FROM reasons "
                    "UNION ALL SELECT $position, NULL, NULL, NULL, NULL, NULL, $profiles, $in_audience, $considered",
                    params={"position": values["position"], **counts}).to_arrow_table().cast(schema))
        finally:
            con.close()
        return pa.concat_tables(parts) if parts else schema.empty_table()

    return run
