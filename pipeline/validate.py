"""The validate stage: every input row ends up accepted (typed) or rejected with a reason.

Types and per-row rules come from the pandera models in `schemas/`; rules that need the
whole dataset (unique keys, references to other datasets) are SELECTs of the bad rows.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandera.polars as pa
import polars as pl

from pipeline import db, failpoints, prechecks
from pipeline.coerce import typed_select
from pipeline.context import PARQUET, RunContext
from pipeline.errors import InputError, RejectRatioExceeded, first_line
from pipeline.readers import LoadedFile, Loader, discover, require
from pipeline.runfolder import validated_paths
from schemas import DATASETS, Dataset
from schemas.benefit_definitions import rule_problem

RULE_COLUMN = "claim_condition"  # the one column whose values are JsonLogic rules
REJECT_COLUMNS = '"dataset", source_file, source_row, "column", "check", value, reason, detail'
REJECTS_DDL = """(
    dataset VARCHAR, source_file VARCHAR, source_row BIGINT, "column" VARCHAR, "check" VARCHAR,
    value VARCHAR, reason VARCHAR, detail VARCHAR)"""


@dataclass
class FileCounts:
    """Rows read, accepted and rejected for one input file of one dataset."""

    dataset: str
    path: str
    sha256: str
    rows_read: int
    accepted: int = 0
    rejected: int = 0


@dataclass
class ValidateResult:
    """What the validate stage read and decided, per file and per dataset."""

    files: list[FileCounts] = field(default_factory=list)
    staged: dict[str, int] = field(default_factory=dict)  # dataset -> accepted rows in its staged file
    seconds: float = 0.0

    def totals(self) -> dict[str, dict[str, int]]:
        totals: dict[str, dict[str, int]] = {}
        for counts in self.files:
            entry = totals.setdefault(counts.dataset, {"rows_read": 0, "accepted": 0, "rejected": 0})
            entry["rows_read"] += counts.rows_read
            entry["accepted"] += counts.accepted
            entry["rejected"] += counts.rejected
        return totals

    @property
    def rows_read(self) -> int:
        return sum(c.rows_read for c in self.files)

    @property
    def rejected(self) -> int:
        return sum(c.rejected for c in self.files)

    @property
    def reject_ratio(self) -> float:
        return self.rejected / self.rows_read if self.rows_read else 0.0


def run(context: RunContext) -> ValidateResult:
    """Validate every dataset and write validated/ and rejects/ (check, then write)."""
    return write(context, check(context))


def check(context: RunContext, required: dict[str, tuple[str, ...]] | None = None) -> ValidateResult:
    """Load and validate every dataset found in the input folder; write nothing.

    Leaves the accepted rows in tables named after the datasets. Raises InputError when a
    file cannot be read, and MissingDatasetError when a stage in `required` (stage name →
    datasets it needs) has no file for one of them.
    """
    started = time.perf_counter()
    con = context.con
    loader = Loader(con)
    sources = {name: discover(context.input_dir, name) for name in DATASETS}
    for stage, datasets in (required or {}).items():
        require(sources, list(datasets), stage)
    loaded: dict[str, list[LoadedFile]] = {name: [] for name in DATASETS}
    result = ValidateResult()
    with context.progress.stage("validate", 2 * len(DATASETS)) as step:
        for name in DATASETS:
            step(f"reading {name}")
            for source in sources[name]:
                file = loader.load(source)
                loaded[name].append(file)
                for child in loader.children(file):
                    loaded[child.source.dataset].append(child)
        for name, dataset in DATASETS.items():
            step(f"checking {name}")
            _validate_dataset(context, loader, dataset, loaded[name], result)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def write(context: RunContext, result: ValidateResult, stale: tuple[str, ...] = (),
          stale_stages: tuple[str, ...] = ()) -> ValidateResult:
    """Stage validated/ and rejects/ from the checked tables, then `commit` them."""
    started = time.perf_counter()
    _stage_outputs(context, result)
    result.seconds = round(result.seconds + time.perf_counter() - started, 3)
    return commit(context, result, stale, stale_stages)


def commit(context: RunContext, result: ValidateResult, stale: tuple[str, ...] = (),
           stale_stages: tuple[str, ...] = (), record: dict | None = None) -> ValidateResult:
    """Commit the staged validated/ and rejects/ with the stage's record; raise
    RejectRatioExceeded after. Whichever engine staged them, later stages read them from here.

    `stale` names outputs of an earlier run that tonight's inputs make wrong (its report,
    warehouse and push results), `stale_stages` their records: they go in the same commit.
    `record` adds to the stage's record (the Spark engine names itself).
    """
    failed = result.reject_ratio > context.max_reject_ratio
    failpoints.reach("validated_staged")
    context.commit("validate", {**_record(context, result), **(record or {})},
                   replaces=("validated/", "rejects/", *stale), drops=stale_stages,
                   status="failed" if failed else None)
    for name in DATASETS:
        read_from(context, name, [context.out_dir / path for path in validated_paths(context.outputs, name)])
    if failed:
        raise RejectRatioExceeded(
            f"{result.rejected} of {result.rows_read} rows rejected "
            f"({result.reject_ratio:.1%}, above --max-reject-ratio {context.max_reject_ratio:.1%}); "
            f"see {context.out_dir / 'rejects'}"
        )
    return result


def _validate_dataset(
    context: RunContext, loader: Loader, dataset: Dataset, files: list[LoadedFile], result: ValidateResult
) -> None:
    con = context.con
    name = dataset.name
    typed, rejects = type_rows(con, loader, dataset, files, context.naive_timezone)
    # References before keys: a row that names nothing is no rival for a later good copy.
    _reference_rejects(con, dataset, typed, rejects)
    _duplicate_rejects(con, dataset, typed, rejects)

    # The accepted rows, typed, under the dataset's own name for the stages that follow:
    # delete the few rejected rows rather than copy the many accepted ones.
    con.execute(
        f"""
        DELETE FROM {typed} WHERE (source_file, source_row) IN (SELECT source_file, source_row FROM {rejects});
        ALTER TABLE {typed} DROP COLUMN _cast_errors;
        {db.drop_statement(con, name)}
        ALTER TABLE {typed} RENAME TO {name};
        """
    )
    accepted = dict(db.rows(con, f"SELECT source_file, count(*) FROM {name} GROUP BY ALL"))
    result.staged[name] = _stage(context, name)
    rejected = dict(
        db.rows(con, f"SELECT source_file, count(DISTINCT source_row) FROM {rejects} GROUP BY ALL")
    )
    for file in files:
        display = file.source.display
        result.files.append(
            FileCounts(
                name, display, file.sha256, file.rows_read, accepted.get(display, 0), rejected.get(display, 0)
            )
        )


def type_rows(
    con: duckdb.DuckDBPyConnection, loader: Loader, dataset: Dataset, files: list[LoadedFile], naive_timezone: str
) -> tuple[str, str]:
    """Tables `typed_<name>` (the files' rows, typed, with `_cast_errors`) and
    `rejects_<name>` (what each row alone fails: its shape, a type, a pandera rule).

    What a row fails by itself, before any rule that needs the whole dataset (unique keys,
    references): the Spark engine runs this per input file, the default engine per dataset.
    """
    name = dataset.name
    typed, rejects = f"typed_{name}", f"rejects_{name}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {rejects} {REJECTS_DDL}")
    if files:
        # Neighbouring files with the same columns (a folder of parts) are cast as one
        # table: one SELECT to plan, not one per part.
        described = [(file, tuple(db.rows(con, f"DESCRIBE {file.table}"))) for file in files]
        selects, groups = [], []
        for number, (columns, group) in enumerate(itertools.groupby(described, key=lambda d: d[1])):
            tables = [file.table for file, _ in group]
            source = tables[0]
            if len(tables) > 1:
                source = f"parts_{name}_{number}"
                groups.append(source)
                con.execute(f"CREATE TEMP VIEW {source} AS " + " UNION ALL ".join(f"SELECT * FROM {t}" for t in tables))
            raw_columns = {row[0]: row[1] for row in columns}
            selects.append(typed_select(dataset, raw_columns, source, naive_timezone))
        for file in files:
            con.execute(
                f"INSERT INTO {rejects} SELECT ?, source_file, source_row, \"column\", \"check\", value, reason, detail FROM {file.malformed}",
                [name],
            )
        try:
            con.execute(f"CREATE OR REPLACE TABLE {typed} AS " + " UNION ALL BY NAME ".join(selects))
        except duckdb.Error as error:
            # A Parquet file is read here, not when it was found: a damaged page, or text
            # that is not UTF-8, surfaces now. It is the file's fault, named as such.
            raise _unreadable(error, files) from None
        for view in groups:
            con.execute(f"DROP VIEW {view}")
        for file in files:
            loader.release(file)
    else:
        # No file: an empty table with every declared column, so later stages can rely on it.
        con.execute("CREATE OR REPLACE TEMP TABLE no_rows (source_file VARCHAR, source_row BIGINT)")
        source_columns = {"source_file": "VARCHAR", "source_row": "BIGINT"}
        con.execute(
            f"CREATE OR REPLACE TABLE {typed} AS "
            + typed_select(dataset, source_columns, "no_rows", naive_timezone)
        )

    con.execute(
        f"""
        INSERT INTO {rejects}
        SELECT ?, source_file, source_row, e."column", 'dtype', e.value, 'invalid_type',
               'expected ' || e.expected || coalesce(', got ' || e.got, '')
        FROM (SELECT source_file, source_row, unnest(_cast_errors) AS e FROM {typed})
        """,
        [name],
    )
    _pandera_rejects(con, dataset, typed, rejects)
    return typed, rejects


def _unreadable(error: Exception, files: list[LoadedFile]) -> InputError:
    """The InputError for a DuckDB error met while reading `files`, naming the file it cites."""
    message = first_line(error)
    for file in files:
        path = str(file.source.path.absolute())
        if path in message:
            return InputError(f"{file.source.display}: cannot be read ({message.replace(path, file.source.display)})")
    names = ", ".join(file.source.display for file in files)
    return InputError(f"{names}: cannot be read ({message})")


# Rows handed to pandera at a time: bounds polars' memory whatever the dataset's size.
# Nothing pandera checks spans rows (keys and references are SQL over the whole dataset).
PANDERA_CHUNK_ROWS = 1_000_000


def _pandera_rejects(con: duckdb.DuckDBPyConnection, dataset: Dataset, typed: str, rejects: str) -> None:
    """Run the dataset's pandera model over the typed rows; its failures become rejects.

    Only the rows a check could fail go (`prechecks.suspects`): at 10M profiles, a few
    dozen rather than every one. The rows come in chunks of one streamed result, not by
    `rowid` ranges: an input column named `rowid` would stand in for DuckDB's and decide
    which rows are checked.
    """
    schema = _checked_part(dataset.schema)
    columns = ", ".join(db.quote(c) for c in [*schema.columns, "source_file", "source_row"])
    suspect = prechecks.suspects(schema)
    screen = "" if suspect is None else f" WHERE {suspect}"
    found: list[pl.DataFrame] = []
    # The reader owns the connection until it is drained: failures are inserted after.
    with con.sql(f"SELECT {columns} FROM {typed}{screen}").to_arrow_reader(batch_size=PANDERA_CHUNK_ROWS) as batches:
        for batch in batches:
            failures = _pandera_chunk(dataset, schema, pl.from_arrow(batch))
            if failures is not None:
                found.append(failures)
    if found:
        # Rows already rejected because a value did not fit its type: the null it became is
        # not a second fault of the same column.
        con.register("pandera_failures", pl.concat(found).to_arrow())
        try:
            con.execute(
                f"""
                INSERT INTO {rejects}
                SELECT f.* FROM pandera_failures f
                WHERE NOT EXISTS (SELECT 1 FROM {rejects} r WHERE r.source_file = f.source_file
                                  AND r.source_row = f.source_row AND r."column" = f."column"
                                  AND r.reason = 'invalid_type')
                """
            )
        finally:
            con.unregister("pandera_failures")
    if RULE_COLUMN in dataset.schema.columns:
        _explain_rules(con, typed, rejects)


def _checked_part(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """The columns pandera has something to check on: a rule, required or unique.

    Every column's type is already enforced by the SQL cast (a failed cast is an
    `invalid_type` reject), so a column with no other rule would only cost its conversion
    to polars: at 10M profiles, 10 of 15 columns and seconds. A check that spans columns
    keeps the whole model.
    """
    if schema.checks:
        return schema
    return schema.select_columns(
        [name for name, column in schema.columns.items() if column.checks or not column.nullable or column.unique]
    )


def _pandera_chunk(dataset: Dataset, schema: pa.DataFrameSchema, frame: pl.DataFrame) -> pl.DataFrame | None:
    """The reject rows of one chunk of typed rows (None when every row passes)."""
    try:
        schema.validate(frame, lazy=True)
        return None
    except pa.errors.SchemaErrors as errors:
        failures = errors.failure_cases
    # A failure with no row is a check that crashed or a column of the wrong type: a bug in
    # this program, never a fault of the data. Dropping it would accept rows unchecked.
    broken = failures.filter(pl.col("index").is_null())
    if broken.height:
        first = broken.row(0, named=True)
        raise RuntimeError(
            f"{dataset.name}: schema check {first['check']} on column {first['column']} "
            f"could not run: {str(first['failure_case']).splitlines()[0]}"
        )
    located = failures.join(
        frame.select("source_file", "source_row").with_row_index("index").with_columns(pl.col("index").cast(pl.Int32)),
        on="index",
        how="inner",
    )
    row_checks = dataset.row_checks
    reason = (
        pl.when(pl.col("check") == "not_nullable").then(pl.lit("missing_value"))
        .when(pl.col("check").str.starts_with("greater_than") | pl.col("check").str.starts_with("less_than")
              | pl.col("check").str.starts_with("in_range")).then(pl.lit("out_of_range"))
        .when(pl.col("check") == "valid_timezone").then(pl.lit("invalid_timezone"))
        .when(pl.col("check") == "supported_jsonlogic").then(pl.lit("invalid_rule"))
        .when(pl.col("check").is_in(list(row_checks))).then(
            pl.col("check").replace_strict({k: v[0] for k, v in row_checks.items()}, default=None))
        .otherwise(pl.lit("invalid_value"))
    )
    column = (
        pl.when(pl.col("check").is_in(list(row_checks)))
        .then(pl.col("check").replace_strict({k: v[1] for k, v in row_checks.items()}, default=None))
        .otherwise(pl.col("column"))
    )
    # A row-level check reports the whole row; show the value of the column it names.
    row_values = pl.concat(
        [
            frame.select(pl.col(col).cast(pl.Utf8).alias("row_value"))
            .with_row_index("index")
            .with_columns(pl.col("index").cast(pl.Int32), pl.lit(check).alias("check"))
            for check, (_, col) in row_checks.items()
        ]
        or [pl.DataFrame(schema={"index": pl.Int32, "row_value": pl.Utf8, "check": pl.Utf8})]
    )
    located = located.with_columns(pl.col("check").cast(pl.Utf8)).join(
        row_values, on=["index", "check"], how="left"
    )
    return located.select(
        pl.lit(dataset.name).alias("dataset"),
        "source_file",
        "source_row",
        column.alias("column"),
        pl.col("check").cast(pl.Utf8),
        pl.coalesce("row_value", pl.col("failure_case").cast(pl.Utf8)).str.slice(0, 500).alias("value"),
        reason.alias("reason"),
        pl.format("failed {}", pl.col("check")).alias("detail"),
    )


def _explain_rules(con: duckdb.DuckDBPyConnection, typed: str, rejects: str) -> None:
    """Say why each rejected claim condition does not compile (few rows: definitions).

    The rule is read whole from the typed row: a reject's `value` keeps only 500 characters,
    and a long rule cut there explained itself as JSON that ends too soon.
    """
    rows = con.execute(
        f"""SELECT DISTINCT t.{db.quote(RULE_COLUMN)} FROM {rejects} r
            JOIN {typed} t ON t.source_file = r.source_file AND t.source_row = r.source_row
            WHERE r.reason = 'invalid_rule'"""
    ).fetchall()
    for (rule,) in rows:
        con.execute(
            f"""UPDATE {rejects} SET detail = ? WHERE reason = 'invalid_rule' AND (source_file, source_row) IN (
                    SELECT source_file, source_row FROM {typed} WHERE {db.quote(RULE_COLUMN)} = ?)""",
            [rule_problem(rule) or "rule does not compile", rule],
        )


def _duplicate_rejects(con: duckdb.DuckDBPyConnection, dataset: Dataset, typed: str, rejects: str) -> None:
    """A repeated key keeps its first accepted row (by file, then row); later ones are rejected."""
    for key in dataset.unique:
        column = db.quote(key)
        con.execute(
            f"""
            INSERT INTO {rejects}
            WITH repeated AS (
                -- A cheap hash aggregate of the key alone first: only keys that repeat are
                -- looked at again (a repeat may still be a rejected row: ranked below).
                SELECT {column} AS k FROM {typed} WHERE {column} IS NOT NULL GROUP BY ALL HAVING count(*) > 1
            ), candidates AS (
                SELECT source_file, source_row, {column} AS k
                FROM {typed} t
                WHERE {column} IN (SELECT k FROM repeated) AND NOT EXISTS (
                    SELECT 1 FROM {rejects} r WHERE r.source_file = t.source_file AND r.source_row = t.source_row)
            )
            SELECT ?, source_file, source_row, ?, 'unique', CAST(k AS VARCHAR), 'duplicate_key',
                   'duplicate ' || ? || ' ' || CAST(k AS VARCHAR) || '; first at ' || first_file || ' row ' || first_row
            FROM (
                SELECT source_file, source_row, k,
                       first_value(source_file) OVER w AS first_file,
                       first_value(source_row) OVER w AS first_row,
                       row_number() OVER w AS n
                FROM candidates
                WINDOW w AS (PARTITION BY k ORDER BY source_file, source_row)
            )
            WHERE n > 1
            """,
            [dataset.name, key, key],
        )


def _reference_rejects(con: duckdb.DuckDBPyConnection, dataset: Dataset, typed: str, rejects: str) -> None:
    """A row naming a row of another dataset that was not accepted is rejected."""
    for reference in dataset.references:
        column = db.quote(reference.column)
        target = db.quote(reference.target)
        con.execute(
            f"""
            INSERT INTO {rejects}
            SELECT ?, source_file, source_row, ?, 'reference', CAST({column} AS VARCHAR), ?,
                   ? || ' ' || CAST({column} AS VARCHAR) || ' is not an accepted row of ' || ?
            FROM {typed} t
            WHERE {column} IS NOT NULL
              AND {column} NOT IN (SELECT {target} FROM {reference.dataset} WHERE {target} IS NOT NULL)
            """,
            [dataset.name, reference.column, reference.reason, reference.column, reference.dataset],
        )


def _stage(context: RunContext, name: str) -> int:
    """Write the accepted rows to their staged Parquet file and read them from there on.

    The file is committed into validated/ only when the run may write (after the campaign
    checks), so a stopped run leaves nothing behind; meanwhile the table's memory is free for
    the next dataset (at 10M profiles, gigabytes), and later stages read only the columns
    they use.
    """
    staged = context.staged_path(f"validated/{name}.parquet")
    rows = db.scalar(context.con, f"COPY {name} TO {db.literal(staged)} ({PARQUET})")
    context.con.execute(f"DROP TABLE {name}")
    read_from(context, name, [staged])
    return rows


def read_from(context: RunContext, name: str, paths: list[Path]) -> None:
    """The view `name` over a dataset's accepted rows: one file, or the parts of a folder."""
    files = db.path_literal([str(path.resolve()) for path in paths])
    context.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({files})")


def _stage_outputs(context: RunContext, result: ValidateResult) -> None:
    with context.progress.stage("write validated", len(DATASETS)) as step:
        for name in DATASETS:
            step(name)
            context.stage_output(f"validated/{name}.parquet", result.staged[name])
            context.copy_parquet(
                f"SELECT {REJECT_COLUMNS} FROM rejects_{name} ORDER BY source_file, source_row, \"column\", \"check\"",
                f"rejects/{name}.parquet",
            )
    context.con.execute(
        "CREATE OR REPLACE TABLE rejects AS "
        + " UNION ALL ".join(f"SELECT {REJECT_COLUMNS} FROM rejects_{name}" for name in DATASETS)
    )


def _record(context: RunContext, result: ValidateResult) -> dict:
    """Set the manifest's inputs; return the stage's record."""
    context.inputs = [
        {
            "dataset": c.dataset,
            "path": c.path,
            "sha256": c.sha256,
            "rows_read": c.rows_read,
            "accepted": c.accepted,
            "rejected": c.rejected,
        }
        for c in result.files
    ]
    return {
        "seconds": result.seconds,
        "rows_read": result.rows_read,
        "rejected": result.rejected,
        "reject_ratio": round(result.reject_ratio, 6),
        "datasets": result.totals(),
    }
