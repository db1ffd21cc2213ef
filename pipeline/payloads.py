"""API-ready payload files: one JSON call per line, at most --lines-per-file lines a file.

Lines are built and written by DuckDB (`COPY … (FORMAT json)` writes one object per row);
order and idempotency keys depend only on the inputs, so a rerun is byte-identical.
"""

from __future__ import annotations

from pipeline import db
from pipeline.context import RunContext

BATCH_PATH = "/api/v3/benefits/batch.json"
SINGLE_PATH = "/api/v3/benefits"


def write_benefits(context: RunContext, *, batch_size: int, lines_per_file: int, single: bool) -> list[str]:
    """Write payloads/benefits/ from the plan's `issue` rows; return the files written."""
    con = context.con
    # `plan` is stored in plan order (campaign, then profile), and a scan keeps it.
    # Every value goes through to_json, so any text is safe.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE issued AS
           SELECT external_id,
                  to_json(struct_pack(
                      benefit_definition_id := definition_id,
                      profile_id := profile_id,
                      issued_at := strftime(issued_at_local, '%Y-%m-%d %H:%M:%S'),
                      timezone := timezone,
                      external_id := external_id)) AS benefit
           FROM plan WHERE decision = 'issue'"""
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE benefit_calls AS " + db.sql_text("benefit_calls"),
        {"per_call": 1 if single else batch_size, "as_of": context.as_of.isoformat()},
    )
    # POST /benefits takes one benefit as its body; the batch endpoint a list of them.
    body = "benefits" if single else """'{"benefits":[' || benefits || ']}'"""
    path = db.literal(SINGLE_PATH if single else BATCH_PATH)
    # A view, not a table: each part file's COPY renders the lines it writes, and only those.
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW benefit_payloads AS
            SELECT line_no, {envelope(path, body)} AS line FROM benefit_calls"""
    )
    return write_lines(context, "benefits", "benefit_payloads", lines_per_file)


def envelope(path: str, body: str) -> str:
    """SQL for one call's JSON line from SQL expressions for its path and its body JSON text.

    Needs a column `idempotency_key` in scope. Values go through to_json, so any text is safe.
    """
    return (
        """'{"method":"POST","path":' || to_json(""" + path + """) || ',"idempotency_key":' """
        """|| to_json(idempotency_key) || ',"body":' || """ + body + """ || '}'"""
    )


def write_lines(context: RunContext, kind: str, table: str, lines_per_file: int) -> list[str]:
    """Stage table's `line`s (JSON text, ordered by line_no) as payloads/<kind>/part-NNNNN.ndjson.

    Committed with the stage, which replaces every part file of the kind an earlier run left.
    """
    lines = db.scalar(context.con, f"SELECT count(*) FROM {table}")
    written = []
    for part in range(-(-lines // lines_per_file)):
        relative = f"payloads/{kind}/part-{part:05d}.ndjson"
        # Lines are finished JSON: written as they are (no quoting; JSON text never holds a
        # raw newline or U+001F).
        rows = db.scalar(
            context.con,
            f"COPY (SELECT line FROM {table} WHERE line_no > ? AND line_no <= ? ORDER BY line_no) "
            f"TO {db.literal(context.staged_path(relative))} "
            "(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER chr(31))",
            [part * lines_per_file, (part + 1) * lines_per_file],
        )
        context.stage_output(relative, rows)
        written.append(relative)
    return written
