"""The validate stage on Spark: the default engine's checks, each input file in a task of its own.

Three Spark jobs, DuckDB computing every value (docs/scale-out.md, "What runs where"):

1. **Per file** (one task each): the file is read, typed and checked row by row by
   `validate.type_rows`, the default engine's own code, on a DuckDB connection of the task.
   The typed rows and what they fail alone go to the scratch folder as Parquet, written
   by DuckDB, so no value passes through Spark's types.
2. **Whole datasets**, in the contract's order (a reference names an *accepted* row of an
   earlier dataset): references, then unique keys, in Spark SQL over the key columns
   alone. They compare text for equality and order it by (source_file, source_row), which
   Spark and DuckDB do the same way (bytes), and the reject texts are built from the same
   words as the default engine's.
3. **Per file** again: DuckDB writes the accepted rows, every rejected row left out, as one
   part of `validated/<dataset>.parquet/`.

Every task's effects are files it writes whole under a name of its own, so Spark may run
a task again (a retry, a lost executor) and the outputs are the same.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.readers import SourceFile, discover
from pipeline.spark.shard import FailOnce, conformed, spark_type, task_error
from schemas import DATASETS

GLOB = re.compile(r"[\[\]*?{}:]")


def refuse_glob(path: Path, named: str | None = None) -> None:
    """A usage error for a path Spark would misread: its readers expand glob characters, and
    Hadoop's paths refuse a colon. `named` is how the message names it (`--out X`)."""
    if GLOB.search(str(path.absolute())):
        raise ConfigError(f"{named or path}: the Spark engine needs a path without any of [ ] * ? {{ }} :")
REJECT_SCHEMA = ("dataset string, source_file string, source_row long, `column` string, `check` string, "
                 "value string, reason string, detail string")


@dataclass
class Validation:
    """What one call wrote: a record per (input file, dataset), and every file written."""

    files: list[dict]  # number, dataset, display, sha256, rows_read, accepted, rejected
    outputs: dict[str, int]  # path under the call's folder -> rows, in the order written


def validate(spark, input_dir: Path, out_dir: Path, naive_timezone: str, *, scratch: Path | None = None,
             sources: dict[str, list[SourceFile]] | None = None, memory_limit: str | None = None,
             fail_once: FailOnce | None = None) -> Validation:
    """Write `validated/<dataset>.parquet/` (parts) and `rejects/<dataset>.parquet` under `out_dir`.

    The records count rows read, accepted and rejected, and give each file's sha256, as the
    default engine counts them, in the manifest's order. `scratch` (default: a folder in
    `out_dir`) holds a typed copy of every input during the call, and goes with it.
    `sources` are the input files per dataset when the caller found them already.
    `memory_limit` is each task's DuckDB limit (`--memory-limit`; a task has one thread).
    `fail_once` makes one task of the first job fail on its first attempt (tests: Spark
    must retry it).
    """
    out_dir = out_dir.absolute()
    scratch = (scratch or out_dir / ".spark-scratch").absolute()
    for path in (out_dir, scratch):
        refuse_glob(path)
    shutil.rmtree(scratch, ignore_errors=True)
    sources = sources or {name: discover(input_dir, name) for name in DATASETS}
    # (number, SourceFile), in the contract's order: the number names the file's parts.
    tasks = list(enumerate(source for name in DATASETS for source in sources[name]))
    outputs: dict[str, int] = {}
    try:
        kinds = _empty_tables(scratch, naive_timezone)
        files = _per_file(spark, tasks, lambda part: _type_files(part, scratch, naive_timezone, memory_limit, fail_once))
        _whole_datasets(spark, scratch, kinds)
        for name in DATASETS:
            # What an earlier call wrote goes first: an old part would be read as tonight's rows.
            for kind in ("validated", "rejects"):
                _remove(out_dir / kind / f"{name}.parquet")
        written, rejected = _write_rejects(scratch, out_dir, memory_limit)
        outputs.update(written)
        columns = _dataset_columns(scratch)
        counts = {(c["dataset"], c["number"]): c for c in
                  _per_file(spark, files, lambda part: _write_accepted(part, scratch, out_dir, columns, memory_limit))}
        outputs.update({_part(c["dataset"], c["number"]): c["accepted"] for c in counts.values()})
        outputs.update(_write_empty(scratch, out_dir, {f["dataset"] for f in files}, columns))
    finally:
        # The scratch folder holds a typed copy of every input: it never outlives the call.
        shutil.rmtree(scratch, ignore_errors=True)
    records = [{**f, **counts[(f["dataset"], f["number"])], "rejected": rejected.get((f["dataset"], f["display"]), 0)}
               for f in files]
    return Validation(records, outputs)


def check(context, required: dict[str, tuple[str, ...]] | None = None):
    """The validate stage of a run on Spark: `validate` into the run folder's staging, every
    file written counted as the stage's output, and the views later stages read made over
    the staged parts. Returns the default engine's `ValidateResult`; `pipeline.validate.commit`
    commits it as the default engine's outputs are."""
    from pipeline import validate as on_duckdb
    from pipeline.readers import require
    from pipeline.runfolder import validated_paths
    from pipeline.spark.jobs import scratch

    started = time.perf_counter()
    sources = {name: discover(context.input_dir, name) for name in DATASETS}
    for stage, datasets in (required or {}).items():
        require(sources, list(datasets), stage)
    # Everything Spark writes goes under a folder of this process's own, then is staged by
    # the driver: a task still running for a killed command cannot write into the rerun's.
    with scratch(context, "validate") as own:
        with context.progress.stage("validate on Spark", 1) as step:
            step("every input file, then the whole datasets")
            done = validate(context.spark, context.input_dir, own / "out", context.naive_timezone,
                            scratch=own / "scratch", sources=sources, memory_limit=context.memory_limit,
                            fail_once=FailOnce.from_environment("validate"))
        for relative, rows in done.outputs.items():
            os.replace(own / "out" / relative, context.staged_path(relative))
            context.stage_output(relative, rows)
    result = on_duckdb.ValidateResult()
    for f in done.files:
        result.files.append(on_duckdb.FileCounts(f["dataset"], f["display"], f["sha256"], f["rows_read"],
                                               f["accepted"], f["rejected"]))
    for name in DATASETS:
        parts = validated_paths(done.outputs, name)
        result.staged[name] = sum(done.outputs[part] for part in parts)
        on_duckdb.read_from(context, name, [context.staged_path(part) for part in parts])
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _part(name: str, number: int | str) -> str:
    """A part of a dataset's validated folder, named by its input file's number ("empty": none)."""
    label = f"{number:05d}" if isinstance(number, int) else number
    return f"validated/{name}.parquet/part-{label}.parquet"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _per_file(spark, items: list, function) -> list[dict]:
    """`function` over `items`, one task per item; what the tasks return, in item order."""
    if not items:
        return []
    try:
        found = spark.sparkContext.parallelize(items, len(items)).mapPartitions(function).collect()
    except Exception as error:
        raise task_error(error) from None
    return sorted(found, key=lambda f: (list(DATASETS).index(f["dataset"]), f["number"]))


def _empty_tables(scratch: Path, naive_timezone: str) -> dict[str, str]:
    """An empty typed table and reject table of every dataset: every folder Spark reads exists,
    with the declared columns, even for a dataset with no file. Returns, per dataset, the
    Spark schema of the columns the whole-dataset rules read."""
    from pipeline import db, validate
    from pipeline.readers import Loader

    read = {name: {"source_file", "source_row", *d.unique, *(r.column for r in d.references)}
            for name, d in DATASETS.items()}
    for dataset in DATASETS.values():
        for reference in dataset.references:
            read[reference.dataset].add(reference.target)
    kinds = {}
    con = db.connect(threads=1)
    try:
        for name, dataset in DATASETS.items():
            typed, rejects = validate.type_rows(con, Loader(con), dataset, [], naive_timezone)
            kinds[name] = ", ".join(f"`{column}` {spark_type(kind)}" for column, kind, *_ in db.rows(con, f"DESCRIBE {typed}")
                                    if column in read[name])
            _write(con, f"SELECT * EXCLUDE (_cast_errors) FROM {typed}", scratch / "typed" / name / "empty.parquet")
            _write(con, f"SELECT * FROM {rejects}", scratch / "rows" / name / "empty.parquet")
    finally:
        con.close()
    return kinds


def _type_files(part: Iterable[tuple[int, SourceFile]], scratch: Path, naive_timezone: str,
                memory_limit: str | None, fail_once: FailOnce | None) -> Iterator[dict]:
    """Job 1, in a task: each file read, typed and checked row by row, as the default engine does."""
    from pipeline import db, validate
    from pipeline.readers import Loader

    for number, source in part:
        if fail_once is not None:
            fail_once.reach(number)
        con = db.connect(threads=1, memory_limit=memory_limit)
        try:
            loader = Loader(con)
            file = loader.load(source)
            for one in [file, *loader.children(file)]:
                name = one.source.dataset
                typed, rejects = validate.type_rows(con, loader, DATASETS[name], [one], naive_timezone)
                _write(con, f"SELECT * EXCLUDE (_cast_errors) FROM {typed}", scratch / "typed" / name / f"{number}.parquet")
                _write(con, f"SELECT * FROM {rejects}", scratch / "rows" / name / f"{number}.parquet")
                yield {"number": number, "dataset": name, "display": source.display,
                       "sha256": one.sha256, "rows_read": one.rows_read}
        finally:
            con.close()


def _whole_datasets(spark, scratch: Path, kinds: dict[str, str]) -> None:
    """Job 2: references, then unique keys, dataset after dataset; rejected rows to scratch."""
    from pyspark.sql import functions as F

    accepted_keys = {}
    for name, dataset in DATASETS.items():
        # Only the columns the rules read, with their declared types: a file's extra columns,
        # whatever their types, stay in DuckDB's files.
        typed = spark.read.schema(kinds[name]).parquet(str(scratch / "typed" / name))
        rejected = spark.read.schema(REJECT_SCHEMA).parquet(str(scratch / "rows" / name))
        for reference in dataset.references:
            column = reference.column
            targets = accepted_keys[(reference.dataset, reference.target)]
            named = typed.where(F.col(column).isNotNull())
            missing = named.join(targets, named[column] == targets["key"], "left_anti")
            value = F.col(column).cast("string")
            rejected = rejected.unionByName(missing.select(
                F.lit(name).alias("dataset"), "source_file", "source_row", F.lit(column).alias("column"),
                F.lit("reference").alias("check"), value.alias("value"), F.lit(reference.reason).alias("reason"),
                F.concat(F.lit(column + " "), value, F.lit(" is not an accepted row of " + reference.dataset)).alias("detail"),
            ))
        for key in dataset.unique:
            rejected = rejected.unionByName(_duplicates(name, key, typed, rejected))
        rejected.write.mode("overwrite").parquet(str(scratch / "rejected" / name))
        rejected = spark.read.schema(REJECT_SCHEMA).parquet(str(scratch / "rejected" / name))
        accepted = typed.join(rejected.select("source_file", "source_row").distinct(),
                              ["source_file", "source_row"], "left_anti")
        for target in {(r.dataset, r.target) for d in DATASETS.values() for r in d.references if r.dataset == name}:
            accepted_keys[target] = (accepted.where(F.col(target[1]).isNotNull())
                                     .select(F.col(target[1]).alias("key")).distinct())


def _duplicates(name: str, key: str, typed, rejected):
    """A repeated key keeps its first row not yet rejected (by file, then row); later ones go."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    candidates = (typed.where(F.col(key).isNotNull())
                  .join(rejected.select("source_file", "source_row").distinct(), ["source_file", "source_row"], "left_anti")
                  .select("source_file", "source_row", F.col(key).alias("k")))
    order = Window.partitionBy("k").orderBy("source_file", "source_row")
    ranked = candidates.select(
        "source_file", "source_row", "k",
        F.first("source_file").over(order).alias("first_file"),
        F.first("source_row").over(order).alias("first_row"),
        F.row_number().over(order).alias("n"),
    ).where("n > 1")
    value = F.col("k").cast("string")
    return ranked.select(
        F.lit(name).alias("dataset"), "source_file", "source_row", F.lit(key).alias("column"),
        F.lit("unique").alias("check"), value.alias("value"), F.lit("duplicate_key").alias("reason"),
        F.concat(F.lit(f"duplicate {key} "), value, F.lit("; first at "), F.col("first_file"),
                 F.lit(" row "), F.col("first_row").cast("string")).alias("detail"),
    )


def _dataset_columns(scratch: Path) -> dict[str, list[tuple[str, str]]]:
    """Each dataset's columns and types across its files, as the default engine's one table
    has them (`UNION ALL BY NAME`: the first file's columns first, types widened to fit all):
    every part is written with them, so the parts of a folder share one schema. Only the
    files' footers are read."""
    from pipeline import db

    con = db.connect(threads=1)
    try:
        found = {}
        for name in DATASETS:
            files = sorted((scratch / "typed" / name).glob("*.parquet"), key=_file_order)
            described = db.rows(con, f"DESCRIBE SELECT * FROM read_parquet({db.path_literal(files)}, union_by_name = true)")
            found[name] = [(column, kind) for column, kind, *_ in described]
        return found
    finally:
        con.close()


def _file_order(path: Path) -> tuple[int, int]:
    """The files in input order, then the empty table: it adds no column but, with no file,
    gives the declared ones."""
    return (1, 0) if path.stem == "empty" else (0, int(path.stem))


def _conformed(con, source: str, columns: list[tuple[str, str]]) -> str:
    """A SELECT list over `source` giving exactly `columns`: each cast to the dataset's type,
    null where this file has no such column."""
    from pipeline import db

    present = {row[0] for row in db.rows(con, f"DESCRIBE SELECT * FROM {source}")}
    return conformed(dict(columns), present)


def _write_accepted(part: Iterable[dict], scratch: Path, out_dir: Path,
                    columns: dict[str, list[tuple[str, str]]], memory_limit: str | None) -> Iterator[dict]:
    """Job 3, in a task: a file's accepted rows, as one part of its dataset's validated folder."""
    from pipeline import db

    for file in part:
        name, number = file["dataset"], file["number"]
        con = db.connect(threads=1, memory_limit=memory_limit)
        try:
            typed = db.path_literal(scratch / "typed" / name / f"{number}.parquet")
            rejected = db.literal(db.duckdb_path(scratch / "rejected" / name) + "/*.parquet")
            target = out_dir / _part(name, number)
            source = f"read_parquet({typed})"
            accepted = _write(con, f"""
                SELECT {_conformed(con, source, columns[name])} FROM {source}
                WHERE (source_file, source_row) NOT IN (
                    SELECT source_file, source_row FROM read_parquet({rejected}) WHERE source_file = ?)""",
                target, [file["display"]])
            yield {"number": number, "dataset": name, "accepted": accepted}
        finally:
            con.close()


def _write_empty(scratch: Path, out_dir: Path, present: set[str],
                 columns: dict[str, list[tuple[str, str]]]) -> dict[str, int]:
    """A dataset with no input file still gets its validated folder: one part, no rows, every
    declared column, as the default engine writes an empty file that later stages rely on."""
    from pipeline import db

    written = {}
    con = db.connect(threads=1)
    try:
        for name in DATASETS:
            if name not in present:
                source = f"read_parquet({db.path_literal(scratch / 'typed' / name / 'empty.parquet')})"
                written[_part(name, "empty")] = _write(con, f"SELECT {_conformed(con, source, columns[name])} FROM {source}",
                                                       out_dir / _part(name, "empty"))
    finally:
        con.close()
    return written


def _write_rejects(scratch: Path, out_dir: Path,
                   memory_limit: str | None) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Each dataset's rejected rows as one file, in the default engine's order, written by
    DuckDB on the driver: rejects are few (the run stops above --max-reject-ratio).

    Returns the files written (path -> rows) and the rows rejected per (dataset, file).
    """
    from pipeline import db, validate

    written, rejected = {}, {}
    con = db.connect(threads=1, memory_limit=memory_limit)
    try:
        for name in DATASETS:
            relative = f"rejects/{name}.parquet"
            # The empty table gives the columns when Spark wrote no part (no row rejected).
            files = [*sorted((scratch / "rejected" / name).glob("*.parquet")), scratch / "rows" / name / "empty.parquet"]
            source = f"read_parquet({db.path_literal(files)})"
            written[relative] = _write(con, f"SELECT {validate.REJECT_COLUMNS} FROM {source} "
                                            'ORDER BY source_file, source_row, "column", "check"', out_dir / relative)
            for file, rows in db.rows(con, f"SELECT source_file, count(DISTINCT source_row) FROM {source} GROUP BY ALL"):
                rejected[(name, file)] = rows
    finally:
        con.close()
    return written, rejected


def _write(con, select: str, path: Path, params: list | None = None) -> int:
    """`select` as a Parquet file, under a temporary name of this process, then renamed:
    whole or absent, and two attempts of one task never share a temporary file."""
    from pipeline import db
    from pipeline.context import PARQUET

    return db.copy_atomic(con, select, path, PARQUET, params)
