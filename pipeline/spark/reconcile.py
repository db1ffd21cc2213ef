"""The reconcile stage's pairing on Spark: each benefit's usages and redeem items in one shard.

A usage pairs only with an item of the benefit it resolved to (a direct pair names the
item, whose benefit that is; a nearest-in-time pair joins on the benefit), so the greedy
matching of one benefit never looks at another's. Spark routes the resolved usages and the
redeem items by benefit; each shard runs the default engine's direct pairs, candidates and
rounds (recon_direct_pairs.sql, recon_candidates.sql, recon_match_round.sql) in DuckDB, and
the pairs come back to the driver as table `recon_pairs`. The rest of the stage (resolving
usages, the ledger, the findings, the ordered files) runs on the driver's DuckDB.
"""

from __future__ import annotations

from pipeline import db
from pipeline.spark.jobs import spark_job
from pipeline.spark.shard import FailOnce, arrow_schema, conformed, unpack

USAGES = ("usage_source_file", "usage_source_row", "transacted_at", "benefit_id", "direct_redemption_id",
          "direct_item_position")
ITEMS = ("redemption_id", "item_position", "benefit_id", "kind", "redeemed_at")
PAIRS = "usage_source_file string, usage_source_row long, redemption_id long, item_position long, paired_by string"


def match(context, window: dict) -> None:
    """Table `recon_pairs` from the driver's `recon_usages` and `recon_items`, paired on shards."""
    from pyspark.sql import types as T

    with spark_job(context, "reconcile") as job:
        # Only what pairing reads, and only rows that can pair: a usage resolved to no benefit
        # and the items of returns never do.
        selects = {"recon_usages": f"SELECT {', '.join(USAGES)} FROM recon_usages WHERE benefit_id IS NOT NULL",
                   "recon_items": f"SELECT {', '.join(ITEMS)} FROM recon_items WHERE kind = 'redeem'"}
        frames = {name: job.from_driver(name, select) for name, select in selects.items()}
        types = {name: {column: kind for column, kind, *_ in db.rows(context.con, f"DESCRIBE {select}")}
                 for name, select in selects.items()}
        schema = T._parse_datatype_string(PAIRS)
        task = _shard_task(types, window, arrow_schema(schema), context.memory_limit,
                           FailOnce.from_environment("reconcile"))
        paired = job.pack(frames, {"recon_usages": "benefit_id", "recon_items": "benefit_id"})
        job.to_driver(job.on_shards(paired, task, schema), "recon_pairs")


def _shard_task(types: dict, window: dict, schema, memory_limit, fail_once):
    """A function for `Job.on_shards`: one shard's pairs, by the default engine's rounds."""

    def run(key, table):
        from pipeline import reconcile

        if fail_once is not None:
            fail_once.reach(key[0].as_py())
        con = db.connect(threads=1, memory_limit=memory_limit)
        try:
            for name, rows in unpack(table, tuple(types)).items():
                con.register(f"shard_{name}", rows)
                # The driver's types, which Spark's may not be (an INTEGER position comes back BIGINT).
                con.execute(f"CREATE TABLE {name} AS SELECT {conformed(types[name], types[name])} FROM shard_{name}")
            reconcile.pair(con, window)
            return con.sql("SELECT * FROM recon_pairs").to_arrow_table().cast(schema)
        finally:
            con.close()

    return run
