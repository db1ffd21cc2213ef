"""Find each dataset's files in an input folder and load them into DuckDB untyped.

Every file becomes a table with its own columns plus `source_file` and `source_row`; rows
the file format itself cannot yield (a broken CSV record, a line that is not JSON) go to
a `malformed` table instead, so that no row read is ever dropped.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import scans
from pipeline.coerce import CAST_ERROR_TYPE, LOAD_ERRORS
from pipeline.db import duckdb_path, literal, quote, rows, scalar
from pipeline.errors import InputError, MissingDatasetError, first_line
from pipeline.files import check_input_file
from schemas import DATASETS, Dataset

# Suffix → format. `.json` is an API list response ({"data": [...]}) or a JSON array.
FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".ndjson": "ndjson",
    ".ndjson.gz": "ndjson",
    ".jsonl": "ndjson",
    ".jsonl.gz": "ndjson",
    ".json": "json",
    ".json.gz": "json",
}
CSV_DELIMITERS = (",", ";", "\t", "|")
# The longest CSV record read (DuckDB's default is 2 MB: a big `attributes` object is more).
MAX_CSV_RECORD = 64 * 2**20
# The largest single JSON document DuckDB is asked to parse (an API list file).
MAX_JSON_DOCUMENT = 2**31 - 1
# Nested lists in a JSON source that are split out into their own dataset.
NESTED = {"redemptions": ("items", "redemption_items", "redemption_id")}


@dataclass(frozen=True)
class SourceFile:
    """One input file of one dataset."""

    dataset: str
    path: Path
    display: str  # the path as the user knows it, relative to --input
    format: str


@dataclass
class LoadedFile:
    """A source file loaded into DuckDB: where its rows are and how many were read."""

    source: SourceFile
    sha256: str
    table: str  # rows with columns as read, plus source_file and source_row
    malformed: str  # reject rows for records the format could not yield
    rows_read: int
    nested: dict[str, tuple[str, str]]  # dataset → (table, malformed) split out of this file


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    return None


def _stem(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def discover(input_dir: Path, dataset: str) -> list[SourceFile]:
    """The files of `dataset` in `input_dir`: `<name>.<ext>`, `<name>-*.<ext>`, or a folder of parts
    named `<name>/` or like a file (`<name>.<ext>/`, as Spark writes one).

    Names match in any letter case (`Profiles.CSV`). A file that is named for the dataset
    but has no format this reads (`profiles.tsv`, `profiles.csv.zst`) stops the run rather
    than being skipped: its rows would silently be missing. Hidden files are skipped.
    """
    if not input_dir.exists():
        raise InputError(f"{input_dir}: input folder does not exist")
    if not input_dir.is_dir():
        raise InputError(f"{input_dir}: --input must be a folder of export files")
    found: list[SourceFile] = []
    for path in sorted(input_dir.iterdir()):
        if path.name.startswith("."):
            continue
        fmt = _format_of(path)
        stem = (_stem(path) if fmt else path.name).lower()
        named = stem == dataset or stem.startswith(f"{dataset}-")
        if path.is_dir():
            # `profiles/`, and what Spark's df.write.csv("profiles.csv") makes: a folder
            # named like a file, holding the parts.
            if path.name.lower() == dataset or (fmt and named):
                found.extend(_parts(input_dir, path, dataset))
            continue
        if not (named or (not fmt and stem.startswith(f"{dataset}."))):
            continue
        if not path.is_file():
            # A broken link, a pipe: skipped, its dataset would silently have no rows.
            raise InputError(f"{path.name}: named like a dataset file but not a file that can be read "
                             "(a broken link?); restore it, or move it out of the input folder")
        if not fmt:
            raise InputError(_unreadable_format(path.name))
        found.append(SourceFile(dataset, path, path.name, fmt))
    return found


def _parts(input_dir: Path, path: Path, dataset: str) -> list[SourceFile]:
    """The data files of a dataset's folder, at any depth (Spark markers and hidden files left out)."""
    parts = []
    for part in sorted(path.rglob("*")):
        if not part.is_file() or any(p.startswith((".", "_")) for p in part.relative_to(path).parts):
            continue  # hidden files, Spark's _SUCCESS and _committed_* markers
        display = f"{path.name}/{part.relative_to(path)}"
        if _format_of(part):
            parts.append(SourceFile(dataset, part, display, _format_of(part)))
        elif _looks_like_data(part.name):
            raise InputError(_unreadable_format(display))
    if not parts:
        raise InputError(f"{input_dir / path.name}/: folder has no data files ({_known_suffixes()})")
    return parts


def _looks_like_data(name: str) -> bool:
    """A name with a data format inside it (`part-0.csv.zst`, `part-0.parquet.gz`)."""
    return any(f"{suffix}." in name.lower() for suffix in FORMATS if not suffix.endswith(".gz"))


def _unreadable_format(display: str) -> str:
    return (
        f"{display}: named like a dataset file but not a format omneo-bulk reads ({_known_suffixes()}); "
        "convert it, or move it out of the input folder"
    )


def _known_suffixes() -> str:
    return ", ".join(sorted(FORMATS))


def require(sources: dict[str, list[SourceFile]], datasets: list[str], stage: str) -> None:
    """Raise MissingDatasetError naming the first dataset `stage` needs that has no file."""
    for name in datasets:
        if not sources.get(name):
            raise MissingDatasetError(
                f"{stage} needs the {name} dataset: no {name}.csv, {name}.parquet, "
                f"{name}.ndjson, {name}.json, {name}-*.csv or {name}/ in the input folder"
            )


def _json_document_bound(path: Path) -> int:
    """An upper bound on the bytes of the one JSON document in `path` (gzip: its ISIZE)."""
    size = path.stat().st_size
    if path.name.lower().endswith(".gz") and size >= 4:
        with path.open("rb") as handle:
            handle.seek(-4, os.SEEK_END)
            size = int.from_bytes(handle.read(4), "little")  # uncompressed size mod 4 GiB
    return min(MAX_JSON_DOCUMENT, max(2**20, size + 1))


class Loader:
    """Loads source files into tables of one DuckDB connection, naming them uniquely."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self._names = itertools.count(1)
        self._views: set[str] = set()
        self._under: dict[str, str] = {}  # a view → the table or view it reads

    def release(self, file: LoadedFile) -> None:
        """Drop what loading a file created, once its rows have been used."""
        for table in (file.table, self._under.pop(file.table, None)):
            if table is not None:
                kind = "VIEW" if table in self._views else "TABLE"
                self.con.execute(f"DROP {kind} IF EXISTS {table}")
        self.con.execute(f"DROP TABLE IF EXISTS {file.malformed}")

    def _name(self, prefix: str) -> str:
        return f"{prefix}_{next(self._names)}"

    def load(self, source: SourceFile) -> LoadedFile:
        text = source.format != "parquet"
        sha256 = check_input_file(source.path, source.display, text=text)
        table, malformed = self._name("raw"), self._name("malformed")
        reader = {
            "csv": self._load_csv,
            "parquet": self._load_parquet,
            "ndjson": self._load_ndjson,
            "json": self._load_json,
        }[source.format]
        try:
            nested = reader(source, table, malformed)
            spec = NESTED.get(source.dataset)
            if spec and source.format in ("csv", "parquet") and spec[0] in self._columns(table):
                nested = {spec[1]: self._split_column(source, table, *spec)}
            rows_read = self.rows_read(table, malformed)  # reads a Parquet file's values too
        except duckdb.Error as error:
            message = first_line(error).replace(str(source.path.absolute()), source.display)
            raise InputError(f"{source.display}: cannot be read ({message})") from None
        return LoadedFile(source, sha256, table, malformed, rows_read, nested)

    def children(self, file: LoadedFile) -> list[LoadedFile]:
        """The datasets split out of `file` (items nested in redemptions), each as a file of its own."""
        return [
            LoadedFile(SourceFile(child, file.source.path, file.source.display, file.source.format),
                       file.sha256, table, malformed, self.rows_read(table, malformed), {})
            for child, (table, malformed) in file.nested.items()
        ]

    def rows_read(self, table: str, malformed: str) -> int:
        """Rows a file yielded: the good ones plus the malformed ones, each counted once."""
        return scalar(
            self.con,
            f"SELECT (SELECT count(*) FROM {table}) + (SELECT count(DISTINCT source_row) FROM {malformed})",
        )

    # CSV ---------------------------------------------------------------------------

    def _load_csv(self, source: SourceFile, table: str, malformed: str) -> dict:
        header, delimiter = _csv_header(source)
        _check_names(source, header)
        _require_columns(source, header)
        rejects, rejects_scan = self._name("csv_rejects"), self._name("csv_scans")
        columns = {_input_name(name): "VARCHAR" for name in header}
        try:
            self.con.execute(
                f"""
                CREATE TEMP TABLE {table}_ord AS
                SELECT * EXCLUDE (ordinality), ordinality AS _ordinal
                FROM read_csv(?, columns = ?, header = true, delim = ?, quote = '"', escape = '"',
                              auto_detect = false, strict_mode = true, store_rejects = true,
                              rejects_table = ?, rejects_scan = ?, compression = ?,
                              max_line_size = ?) WITH ORDINALITY
                """,
                [duckdb_path(source.path), columns, delimiter, rejects, rejects_scan, _compression(source.path),
                 MAX_CSV_RECORD],
            )
        except duckdb.InvalidInputException:
            # DuckDB's strict parser gives up on a file whose lines end both in CRLF and LF
            # ("state machine reached an invalid state"): say which line, if that is it.
            other = scans.first_other_line_ending(source.path)
            if other:
                line, ending, first = other
                raise InputError(
                    f"{source.display}: line {line} ends in {ending} but line 1 in {first}: mixed line "
                    "endings; re-export the file with one kind"
                ) from None
            raise
        # reject_errors.line counts records with the header as 1, so data row = line - 1,
        # except that it also counts blank lines, which the row stream skips.
        # csv_line starts with the blank lines before the record; the record starts after them.
        self.con.execute(
            f"""ALTER TABLE {rejects} ADD COLUMN record_start BIGINT;
                UPDATE {rejects} SET record_start = line_byte_position + length(csv_line)
                                                   - length(ltrim(csv_line, chr(10) || chr(13)));
                ALTER TABLE {rejects} ADD COLUMN blanks_before BIGINT DEFAULT 0"""
        )
        positions = [r[0] for r in rows(self.con, f"SELECT DISTINCT record_start FROM {rejects}")]
        for position, count in scans.blank_lines_before(source.path, positions).items():
            if count:
                self.con.execute(
                    f"UPDATE {rejects} SET blanks_before = ? WHERE record_start = ?", [count, position]
                )
        _stop_at_unterminated_quote(self.con, source, rejects, f"{table}_ord")
        self.con.execute(
            f"""
            CREATE TEMP TABLE {malformed} AS
            SELECT ? AS source_file, line - 1 - blanks_before AS source_row,
                   coalesce(column_name, '') AS "column",
                   lower(replace(error_type, ' ', '_')) AS "check",
                   left(ltrim(csv_line, chr(10) || chr(13)), 500) AS value,
                   'malformed_row' AS reason,
                   error_message AS detail
            FROM (SELECT *, row_number() OVER (PARTITION BY line ORDER BY column_idx) AS n FROM {rejects})
            WHERE n = 1
            """,
            [source.display],
        )
        self._renumber(f"{table}_ord", table, malformed, source.display)
        self._reject_repeated_header(table, malformed, header, delimiter)
        return {}

    def _reject_repeated_header(self, table: str, malformed: str, header: list[str], delimiter: str) -> None:
        """A row that is the header again (parts joined with `cat`, perhaps with a BOM) is no
        record: read as one, a profile `id` of "id" would be issued benefits."""
        same = " AND ".join(
            f"ltrim(trim({quote(_input_name(name))}), chr(65279)) = {literal(name)}" for name in header
        )
        if not scalar(self.con, f"SELECT count(*) FROM {table} WHERE {same}"):
            return
        self.con.execute(
            f"""
            INSERT INTO {malformed}
            SELECT source_file, source_row, '', 'repeated_header', left(?, 500), 'malformed_row',
                   'the header row again, inside the file (files joined together?)'
            FROM {table} WHERE {same}
            """,
            [delimiter.join(header)],
        )
        self.con.execute(f"DELETE FROM {table} WHERE {same}")

    def _renumber(self, ordered: str, table: str, malformed: str, display: str) -> None:
        """Turn the k-th good record's ordinal into its data row, skipping malformed rows.

        A reject j (sorted) has g_j = row_j - j good rows before it, so good record k sits
        after every reject with g_j < k: its row is k + that count. An ASOF join finds it.
        """
        if not scalar(self.con, f"SELECT count(*) FROM {malformed}"):
            # The usual case: every record parsed, so its ordinal is its row. No copy.
            display_literal = literal(display)
            self.con.execute(
                f"""ALTER TABLE {ordered} RENAME COLUMN _ordinal TO source_row;
                    ALTER TABLE {ordered} ADD COLUMN source_file VARCHAR DEFAULT {display_literal};
                    ALTER TABLE {ordered} RENAME TO {table}"""
            )
            return
        self.con.execute(
            f"""
            CREATE TEMP TABLE {table} AS
            WITH bad AS (
                SELECT source_row - row_number() OVER (ORDER BY source_row) AS good_before,
                       row_number() OVER (ORDER BY source_row) AS bad_so_far
                FROM {malformed}
            ), steps AS (SELECT good_before, max(bad_so_far) AS bad_so_far FROM bad GROUP BY good_before)
            SELECT r.* EXCLUDE (_ordinal), ? AS source_file,
                   r._ordinal + coalesce(s.bad_so_far, 0) AS source_row
            FROM {ordered} r ASOF LEFT JOIN steps s ON r._ordinal > s.good_before
            ORDER BY source_row
            """,
            [display],
        )
        self.con.execute(f"DROP TABLE {ordered}")

    # Parquet -----------------------------------------------------------------------

    def _load_parquet(self, source: SourceFile, table: str, malformed: str) -> dict:
        try:
            schema = pq.read_schema(source.path)
        except (pa.ArrowException, OSError) as error:
            raise InputError(f"{source.display}: not a readable Parquet file ({first_line(error)})") from None
        names = schema.names
        if not names:
            raise InputError(f"{source.display}: the Parquet file has no columns")
        _check_names(source, names)
        _require_columns(source, names)
        path = literal(duckdb_path(source.path))
        described = rows(self.con, f"DESCRIBE SELECT * FROM read_parquet({path})")
        if len(described) != len(names):
            raise InputError(f"{source.display}: cannot be read (DuckDB sees {len(described)} columns, not {len(names)})")
        # Columns by position (#i), not by name: no name in the file (rowid, a second `id`
        # DuckDB would rename id_1, file_row_number) can then stand for another column.
        columns = ", ".join(
            f"{_positional(i, field.type)} AS {quote(_input_name(field.name))}" for i, field in enumerate(schema, 1)
        )
        display = literal(source.display)
        if "file_row_number" not in {name.lower() for name in names}:
            # A view: the file does not change during a run, and the typed copy is the only
            # one worth making. Paths are literals here because a view cannot hold parameters.
            self.con.execute(
                f"""
                CREATE TEMP VIEW {table} AS
                SELECT {columns}, {display} AS source_file, #{len(names) + 1} + 1 AS source_row
                FROM read_parquet({path}, file_row_number = true)
                """
            )
            self._views.add(table)
        else:
            # DuckDB cannot add its row number beside a column of that name: copy the rows in
            # file order (insertion order is preserved) and number them by the copy's rowid.
            copied = self._name("parquet_rows")
            self.con.execute(
                f"CREATE TEMP TABLE {copied} AS SELECT "
                + ", ".join(f"#{i} AS c{i}" for i in range(1, len(names) + 1))
                + f" FROM read_parquet({path})"
            )
            columns = ", ".join(
                f"{_positional(i, field.type, f'c{i}')} AS {quote(_input_name(field.name))}"
                for i, field in enumerate(schema, 1)
            )
            self.con.execute(
                f"CREATE TEMP TABLE {table} AS SELECT {columns}, {display} AS source_file, rowid + 1 AS source_row"
                f" FROM {copied} ORDER BY rowid; DROP TABLE {copied}"
            )
        _empty_rejects(self.con, malformed)
        return {}

    # NDJSON and API list JSON ------------------------------------------------------

    def _load_ndjson(self, source: SourceFile, table: str, malformed: str) -> dict:
        # Lines are split by pyarrow, not DuckDB's CSV reader: that one has a maximum line
        # size and treats a lone CR as a line break, and a line it refuses renumbered every
        # line after it. Here every line keeps its number, whatever its length or bytes.
        lines, batches = self._name("lines"), self._name("line_batches")
        self.con.register(batches, pa.RecordBatchReader.from_batches(scans.LINE_SCHEMA, scans.line_batches(source.path)))
        try:
            # JSON whitespace is space, tab and CR (a CRLF file's lines end in CR): a line
            # of nothing else is blank, skipped, but counted.
            self.con.execute(
                f"""
                CREATE TEMP TABLE {lines} AS
                SELECT source_row, rtrim(line, chr(13)) AS line FROM {batches}
                WHERE trim(line, ' ' || chr(9) || chr(13)) <> ''
                """
            )
        finally:
            self.con.unregister(batches)
        return self._objects_to_table(source, lines, table, malformed)

    def _load_json(self, source: SourceFile, table: str, malformed: str) -> dict:
        # DuckDB reserves a buffer of maximum_object_size up front, so it is sized to the
        # document: a fixed 2 GiB would not fit under a small --memory-limit.
        document = self._name("document")
        self.con.execute(
            f"""
            CREATE TEMP TABLE {document} AS
            SELECT json FROM read_json_objects(?, format = 'unstructured', maximum_object_size = ?,
                                               compression = ?)
            """,
            [duckdb_path(source.path), _json_document_bound(source.path), _compression(source.path)],
        )
        kinds = rows(self.con, f"SELECT json_type(json), json_type(json -> '$.data') FROM {document}")
        if len(kinds) != 1 or not (kinds[0][0] == "ARRAY" or kinds[0][1] == "ARRAY"):
            raise InputError(
                f'{source.display}: JSON is not a list (expected {{"data": [...]}} or [...])'
            )
        path = "$[*]" if kinds[0][0] == "ARRAY" else "$.data[*]"
        lines = self._name("lines")
        self.con.execute(
            f"""
            CREATE TEMP TABLE {lines} AS
            SELECT unnest(range(1, len(elements) + 1)) AS source_row,
                   unnest(elements)::VARCHAR AS line
            FROM (SELECT json_extract(json, ?) AS elements FROM {document})
            """,
            [path],
        )
        self.con.execute(f"DROP TABLE {document}")
        return self._objects_to_table(source, lines, table, malformed)

    def _objects_to_table(
        self, source: SourceFile, lines: str, table: str, malformed: str, implied: tuple[str, ...] = ()
    ) -> dict:
        """Spread JSON object lines into columns, one per key; other lines are malformed.

        An object that repeats a key is malformed too: DuckDB reads the first value, most
        JSON readers (Python, JavaScript) the last, so no reading of it is safe.
        """
        parsed = self._name("parsed")
        self.con.execute(
            f"""
            CREATE TEMP TABLE {parsed} AS
            SELECT source_row, line, doc,
                   CASE WHEN doc IS NULL THEN 'the line is not valid JSON'
                        WHEN json_type(doc) <> 'OBJECT' THEN 'the line is JSON but not an object'
                        WHEN len(keys) <> len(list_distinct(keys))
                        THEN 'the object repeats the key ' || array_to_string(list_transform(
                            list_filter(list_distinct(keys), lambda k: len(list_filter(keys, lambda j: j = k)) > 1),
                            lambda k: to_json(k)::VARCHAR), ', ')
                   END AS fault
            FROM (SELECT source_row, line, doc, CASE WHEN json_type(doc) = 'OBJECT' THEN json_keys(doc) END AS keys
                  FROM (SELECT source_row, line, TRY_CAST(line AS JSON) AS doc FROM {lines}))
            """
        )
        self.con.execute(
            f"""
            CREATE TEMP TABLE {malformed} AS
            SELECT ? AS source_file, source_row, '' AS "column",
                   'json_object' AS "check", left(line, 500) AS value,
                   'malformed_json' AS reason, fault AS detail
            FROM {parsed} WHERE fault IS NOT NULL
            """,
            [source.display],
        )
        objects = self._name("objects")
        self.con.execute(
            f"""
            CREATE TEMP TABLE {objects} AS
            SELECT source_row, doc FROM {parsed} WHERE fault IS NULL;
            DROP TABLE {parsed}
            """
        )
        self.con.execute(f"DROP TABLE {lines}")
        keys = self._keys(objects, source.dataset)
        if keys:  # an empty list ({"data": []}) is zero rows, like a header-only CSV
            _check_names(source, keys)
            _require_columns(source, keys + list(implied))
        nested_spec = NESTED.get(source.dataset)
        nested: dict[str, tuple[str, str]] = {}
        if nested_spec and nested_spec[0] in keys:
            nested[nested_spec[1]] = self._split_nested(source, objects, *nested_spec)
        self._spread(objects, table, keys, source.dataset, source.display)
        self.con.execute(f"DROP TABLE {objects}")
        return nested

    def _keys(self, objects: str, dataset: str) -> list[str]:
        found = {
            row[0]
            for row in rows(self.con, f"SELECT DISTINCT unnest(json_keys(doc)) FROM {objects}")
        }
        declared = [name for name in DATASETS[dataset].columns if name in found] if dataset in DATASETS else []
        return declared + sorted(found - set(declared))

    def _spread(self, objects: str, table: str, keys: list[str], dataset: str, display: str) -> None:
        """One column per key. A declared column keeps its JSON value (SQL NULL for JSON
        null), so that the cast can tell the number 12 from the string "12" and an array
        from a string; an extra column is text: a string unquoted, anything else as JSON."""
        declared = set(DATASETS[dataset].columns)
        # One json_extract of a list of paths parses each object once, not once per key.
        typed_keys = [key for key in keys if key in declared]
        text_keys = [key for key in keys if key not in declared]
        typed_paths = literal([_json_path(key) for key in typed_keys])
        text_paths = literal([_json_path(key) for key in text_keys])
        position = {key: i for i, key in enumerate(typed_keys, 1)} | {key: i for i, key in enumerate(text_keys, 1)}
        columns = [
            (f"nullif(_typed[{position[key]}], 'null'::JSON)" if key in declared else f"_text[{position[key]}]")
            + f" AS {quote(_input_name(key))}"
            for key in keys
        ]
        nested = NESTED.get(dataset)
        if nested and nested[0] in keys:
            # A nested list that is not a list (an object, a string) cannot be split into
            # rows: the parent row is rejected for it rather than its items dropped.
            path = literal(_json_path(nested[0]))
            columns.append(
                f"""CASE WHEN json_type(doc, {path}) NOT IN ('ARRAY', 'NULL')
                    THEN [struct_pack("column" := {literal(nested[0])},
                                      value := left(CAST(json_extract(doc, {path}) AS VARCHAR), 500),
                                      expected := 'a list (JSON array) of items',
                                      got := 'a JSON ' || lower(json_type(doc, {path})))]
                    ELSE CAST([] AS {CAST_ERROR_TYPE}) END AS {LOAD_ERRORS}"""
            )
        select = ", ".join(columns + ["? AS source_file", "source_row"])
        self.con.execute(
            f"""CREATE TEMP TABLE {table} AS SELECT {select}
                FROM (SELECT doc, source_row, json_extract(doc, {typed_paths}) AS _typed,
                             json_extract_string(doc, {text_paths}) AS _text FROM {objects})
                ORDER BY source_row""",
            [display],
        )

    def _split_column(self, source: SourceFile, table: str, field: str, dataset: str, parent_key: str) -> tuple[str, str]:
        """Split a CSV or Parquet column of nested lists (redemptions' `items`: JSON text, or
        a Parquet list of structs) into rows of `dataset`, as a JSON file's would be.

        The file's table is renamed beneath a view that adds `_load_errors`, so that a value
        that is not a list rejects its redemption instead of losing its items.
        """
        column = quote(field)
        kind = {row[0]: row[1] for row in rows(self.con, f"DESCRIBE {table}")}[field]
        document = f"TRY_CAST({column} AS JSON)" if kind == "VARCHAR" else f"to_json({column})"
        rows_table = f"{table}_rows"
        kind_of_table = "VIEW" if table in self._views else "TABLE"
        self.con.execute(f"ALTER {kind_of_table} {table} RENAME TO {rows_table}")
        if table in self._views:
            self._views.discard(table)
            self._views.add(rows_table)
        got = f"coalesce('a JSON ' || lower(json_type({document})), 'text that is not JSON')"
        self.con.execute(
            f"""
            CREATE TEMP VIEW {table} AS
            SELECT *, CASE WHEN {column} IS NOT NULL AND coalesce(json_type({document}), '') <> 'ARRAY'
                      THEN [struct_pack("column" := {literal(field)},
                                        value := left(CAST({column} AS VARCHAR), 500),
                                        expected := 'a list (JSON array) of items', got := {got})]
                      ELSE CAST([] AS {CAST_ERROR_TYPE}) END AS {LOAD_ERRORS}
            FROM {rows_table}
            """
        )
        self._views.add(table)
        self._under[table] = rows_table
        objects = self._name("objects")
        self.con.execute(
            f"""
            CREATE TEMP TABLE {objects} AS
            SELECT source_row, json_object('id', to_json({quote(_input_name("id"))}), {literal(field)}, {document}) AS doc
            FROM {rows_table} WHERE json_type({document}) = 'ARRAY'
            """
        )
        try:
            return self._split_nested(source, objects, field, dataset, parent_key)
        finally:
            self.con.execute(f"DROP TABLE {objects}")

    def _split_nested(
        self, source: SourceFile, objects: str, field: str, dataset: str, parent_key: str
    ) -> tuple[str, str]:
        """Split each object's nested list (a redemption's `items`) into rows of `dataset`.

        An item's source_row counts items through the file in order; `source_parent_row`
        names the row of the object it came from.
        """
        children, table, malformed = self._name("children"), self._name("raw"), self._name("malformed")
        self.con.execute(
            f"""
            CREATE TEMP TABLE {children} AS
            SELECT row_number() OVER (ORDER BY source_row, position) AS source_row,
                   source_row AS source_parent_row, parent_id, item::VARCHAR AS line
            FROM (
                SELECT source_row, nullif(json_extract(doc, '$.id'), 'null'::JSON) AS parent_id,
                       unnest(items) AS item, unnest(range(len(items))) AS position
                FROM (SELECT source_row, doc,
                             CASE WHEN json_type(doc -> ?) = 'ARRAY'
                                  THEN json_extract(doc, ?) ELSE [] END AS items
                      FROM {objects})
            )
            """,
            [_json_path(field), _json_path(field) + "[*]"],
        )
        child = SourceFile(dataset, source.path, source.display, source.format)
        parents = self._name("parents")
        self.con.execute(
            f"CREATE TEMP TABLE {parents} AS SELECT source_row, source_parent_row, parent_id FROM {children}"
        )
        self.con.execute(f"ALTER TABLE {children} DROP COLUMN source_parent_row")
        self.con.execute(f"ALTER TABLE {children} DROP COLUMN parent_id")
        self._objects_to_table(child, children, f"{table}_items", malformed, implied=(parent_key,))
        # The parent's id fills the item's foreign key unless the item names one itself.
        has_key = parent_key in self._columns(f"{table}_items")
        key_expr = f'coalesce(i."{parent_key}", p.parent_id)' if has_key else "p.parent_id"
        self.con.execute(
            f"""
            CREATE TEMP TABLE {table} AS
            SELECT i.* EXCLUDE ({'"' + parent_key + '", ' if has_key else ''}source_row),
                   {key_expr} AS "{parent_key}", i.source_row, p.source_parent_row
            FROM {table}_items i JOIN {parents} p USING (source_row)
            ORDER BY i.source_row
            """
        )
        self.con.execute(f"DROP TABLE {table}_items")
        self.con.execute(f"DROP TABLE {parents}")
        return table, malformed

    def _columns(self, table: str) -> list[str]:
        return [row[0] for row in rows(self.con, f"DESCRIBE {table}")]


# Column names the pipeline itself adds. An input column with one of these names (say, a
# validated/ file fed back in) is kept as input_<name>, so provenance stays the pipeline's.
RESERVED = frozenset(
    {"source_file", "source_row", "source_parent_row", "ordinality", "_ordinal", "_cast_errors", LOAD_ERRORS}
)


def _input_name(name: str) -> str:
    return f"input_{name}" if name.lower() in RESERVED else name


def _compression(path: Path) -> str:
    """gzip for a `.gz` name in any case (DuckDB's own detection is case-sensitive)."""
    return "gzip" if path.name.lower().endswith(".gz") else "none"


# Arrow types DuckDB reads as something else: a duration arrives as its bare integer.
def _positional(index: int, arrow_type: pa.DataType, name: str | None = None) -> str:
    """The expression reading a Parquet file's column `index` (1-based) as what it holds."""
    column = name or f"#{index}"
    if pa.types.is_duration(arrow_type):
        per_microsecond = {"s": "* 1000000", "ms": "* 1000", "us": "", "ns": "// 1000"}[arrow_type.unit]
        return f"to_microseconds(CAST({column} AS BIGINT) {per_microsecond})"
    return column


def _check_names(source: SourceFile, names: list[str]) -> None:
    """Column names DuckDB can hold apart, and none that looks like a declared one.

    DuckDB names are case-insensitive, so `Email` beside `email` would be one column; and a
    lone `ID` or `Email` is most likely the declared column under another spelling, which
    read as an extra column would silently leave the declared one empty.
    """
    if any(not name.strip() for name in names):
        raise InputError(f"{source.display}: header has an empty column name")
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(_input_name(name).lower(), name)
        if other == name and list(names).count(name) > 1:
            raise InputError(f"{source.display}: header repeats column {name!r}")
        if other != name:
            raise InputError(
                f"{source.display}: columns {other!r} and {name!r} differ only in letter case "
                "(column names are case-insensitive): rename one"
            )
    declared = {column.lower(): column for column in DATASETS[source.dataset].columns}
    for name in names:
        column = declared.get(name.lower())
        if column is not None and column != name:
            raise InputError(
                f"{source.display}: column {name!r} is the {source.dataset} column {column!r} in other "
                f"letter case: rename it to {column!r}"
            )


def _json_path(key: str) -> str:
    """The JSON path of a top-level key. DuckDB's paths know only the escapes for a quote
    and a backslash; any other character is written as it is (json.dumps would write an
    accent as an escape, and the path would find nothing)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _empty_rejects(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(
        f"""CREATE TEMP TABLE {name} (source_file VARCHAR, source_row BIGINT, "column" VARCHAR,
            "check" VARCHAR, value VARCHAR, reason VARCHAR, detail VARCHAR)"""
    )


def _require_columns(source: SourceFile, columns: list[str]) -> None:
    dataset: Dataset = DATASETS[source.dataset]
    missing = [name for name in dataset.required_columns if name not in columns]
    if missing:
        raise InputError(
            f"{source.display}: missing required column{'s' if len(missing) > 1 else ''} "
            + ", ".join(repr(name) for name in missing)
            + f" for {source.dataset}"
        )


def _csv_header(source: SourceFile) -> tuple[list[str], str]:
    """The header's column names and the delimiter, read from the first record.

    The delimiter is judged on the first line; the names are read as a CSV record, which
    may go on past that line when a quoted name holds a line break.
    """
    with scans.open_bytes(source.path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        first = text.readline()
        if not first.strip():
            raise InputError(f"{source.display}: empty file, no header row")
        delimiter = max(CSV_DELIMITERS, key=first.count)
        header = [name.strip() for name in next(csv.reader(itertools.chain([first], text), delimiter=delimiter))]
    return header, delimiter


def _stop_at_unterminated_quote(con: duckdb.DuckDBPyConnection, source: SourceFile, rejects: str, good: str) -> None:
    """Raise InputError when a quote that is never closed swallowed lines after its own.

    DuckDB then reads from the quote to the end of the file as one broken record, the last
    one it yields: the lines after it vanished into one reject row. Which of them were
    meant as records cannot be known, so the file cannot be read. (DuckDB says
    "unterminated quote" for a stray quote too, but then goes on reading the next record;
    and an unclosed quote on the last line is just that record's fault.)
    """
    found = rows(
        con,
        f"""SELECT record_start, column_name FROM {rejects}
            WHERE error_message ILIKE '%unterminated quote%'
              AND line - 1 - blanks_before = (SELECT count(*) FROM {good})
                                             + (SELECT count(DISTINCT line) FROM {rejects})""",
    )
    if not found:
        return
    position, column = found[0]
    line, later = scans.lines_around(source.path, position)
    if later:
        raise InputError(
            f"{source.display}: line {line}: a quote opened in column {column!r} is never closed, so the "
            f"{later} line{'s' if later > 1 else ''} after it cannot be read (fix the quoting and re-export)"
        )
