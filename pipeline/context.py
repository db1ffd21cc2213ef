"""The run context: options, paths, the one DuckDB connection and the manifest of a run.

Built once per command and closed in one place; stages read from it, stage their files
through it and commit them (with their record in the manifest) when they finish.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from pipeline import __version__, db, zones
from pipeline.errors import ConfigError, RunFolderError
from pipeline.files import sha256_of
from pipeline.log import Silent
from pipeline.runfolder import SCRATCH, RunFolder


def parse_as_of(text: str | None, naive_timezone: str = "UTC") -> datetime:
    """`--as-of` as an aware UTC instant; a value with no offset is read in naive_timezone."""
    if not text:
        return datetime.now(timezone.utc).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--as-of {text!r} is not a timestamp (use ISO 8601 or 'YYYY-MM-DD HH:MM:SS')"
        ) from None
    if moment.tzinfo is None:
        check_zone(naive_timezone, "--naive-timezone")
        return zones.wall_to_utc(moment, naive_timezone)
    return moment.astimezone(timezone.utc)


def check_zone(name: str, option: str) -> None:
    """A usage error unless every stage can convert zone `name` (`zones.usable`)."""
    if name not in zones.usable():
        raise ConfigError(f"{option} {name!r} is not an IANA time zone (e.g. Australia/Melbourne)")


# How every Parquet output is written.
PARQUET = "FORMAT parquet, COMPRESSION zstd"


def fingerprint(command: str, options: dict, input_dir: Path | None, skip: tuple[Path, ...] = ()) -> str:
    """What a command was asked to do: its name, its options, and its input files as they are.

    Input files count by path, size and modification time (no reading: the answer is
    needed before the files are read, at gigabytes). Equal fingerprints are a retry of the
    same job, so a finished run is taken up again rather than followed by a new one.
    `skip` are folders inside the input folder that are not inputs (a run folder put there).
    """
    files = []
    skipped = [folder.resolve() for folder in skip]
    if input_dir is not None and input_dir.is_dir():
        for path in sorted(input_dir.rglob("*")):
            if path.is_file() and not any(path.resolve().is_relative_to(folder) for folder in skipped):
                stat = path.stat()
                files.append([path.relative_to(input_dir).as_posix(), stat.st_size, stat.st_mtime_ns])
    request = {"command": command, "options": options, "inputs": files}
    text = json.dumps(request, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass
class Output:
    """A staged output file, as it will be listed in the manifest once committed.

    Its sha256 is computed (and its bytes flushed to disk) on a background thread while
    DuckDB writes the next file (a gigabyte of payloads takes seconds) and is waited for
    when the stage commits.
    """

    path: str
    digest: Future[str]
    rows: int | None

    def record(self) -> dict:
        return {"path": self.path, "sha256": self.digest.result(), "rows": self.rows}


@dataclass
class RunContext:
    """Everything a stage needs to know about the run it is part of.

    Opening it holds the run folder (`RunFolder`). A folder whose last run did not finish
    (killed, or stopped by a fault) is resumed: the same run id and, unless `as_of` is
    given, the same clock, so the rerun ends where an uninterrupted run would have.
    `keeps_run` (the `report` command) changes nothing of the run's identity at all.
    """

    out_dir: Path
    input_dir: Path | None = None
    as_of: datetime | None = None  # None: the resumed run's clock, else now
    naive_timezone: str = "UTC"
    default_timezone: str = "UTC"
    max_reject_ratio: float = 0.05
    memory_limit: str | None = None
    threads: int | None = None
    engine: str = "duckdb"  # or "spark": the validate stage runs on Spark (docs/scale-out.md)
    spark_master: str | None = None
    shards: int | None = None
    state_dir: Path | None = None
    keeps_run: bool = False
    command: str | None = None  # the command this run is (validate, issue, reconcile, run)
    request: str | None = None  # `fingerprint` of what the command was asked to do
    run_id: str = field(default_factory=new_run_id)
    version: str = __version__
    resumed: bool = False
    status: str = "running"
    settings: dict = field(default_factory=dict)
    inputs: list[dict] = field(default_factory=list)
    stages: dict[str, dict] = field(default_factory=dict)  # as committed, this run's and earlier ones'
    outputs: dict[str, dict] = field(default_factory=dict)  # committed: path -> {path, sha256, rows}
    staged: dict[str, Output] = field(default_factory=dict)  # written, waiting for their stage's commit
    progress: Silent = field(default_factory=Silent)
    passed_on: Callable[[str], None] | None = None  # where Spark's JVM's stderr lines go (the log)
    folder: RunFolder | None = None
    _con: duckdb.DuckDBPyConnection | None = None
    _spark: object | None = None  # a SparkSession, made on first use
    _spark_is_local: bool = False  # its JVM is this process's, to stop at the end
    _hasher: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        check_zone(self.naive_timezone, "--naive-timezone")
        check_zone(self.default_timezone, "--default-timezone")
        if not 0 <= self.max_reject_ratio <= 1:
            raise ConfigError(f"--max-reject-ratio {self.max_reject_ratio} must be between 0 and 1")
        self.settings = {
            "naive_timezone": self.naive_timezone,
            "default_timezone": self.default_timezone,
            "max_reject_ratio": self.max_reject_ratio,
        }

    def open(self) -> RunContext:
        """Hold the run folder and take up what it holds (resuming an unfinished run); returns self.

        Separate from construction so that a command can check its settings, and take other
        locks, before it touches the folder.
        """
        self.folder = RunFolder.open(self.out_dir, must_hold_a_run=self.keeps_run)
        previous = self.folder.manifest
        if previous is not None:
            _check_finishable(previous, self)
            # What the folder holds stays listed until a stage of this run replaces it.
            self.outputs = {o["path"]: o for o in previous["outputs"]}
            self.stages = {s["stage"]: {k: v for k, v in s.items() if k != "stage"} for s in previous["stages"]}
            self.inputs = previous.get("inputs", [])
            retried = self.request is not None and previous.get("request") == self.request
            if self.keeps_run or retried or previous.get("status") != "complete":
                self.resumed = not self.keeps_run
                self.run_id = previous["run_id"]
                if self.as_of is None:
                    self.as_of = datetime.fromisoformat(previous["as_of"])
            if self.keeps_run:
                self.command = previous.get("command")
                self.request = previous.get("request")
                self.status = previous.get("status", "complete")
                self.settings = previous.get("settings", self.settings)
                self.version = previous.get("version", self.version)
        if self.as_of is None:
            self.as_of = parse_as_of(None)
        return self

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = db.connect(
                memory_limit=self.memory_limit,
                threads=self.threads,
                temp_directory=self.out_dir / SCRATCH / "duckdb",
            )
        return self._con

    @property
    def spark(self):
        """The Spark engine's session (`--spark-master`, `--shards`), started on first use."""
        if self._spark is None:
            from pipeline.spark.session import build_session, is_local

            # Spark's own log lines (a failed task's traceback) would bury the one line that
            # names the fault; the fault itself is raised as the default engine raises it.
            self._spark = build_session(self.spark_master, shards=self.shards, log_level="OFF",
                                        jvm_output=self.passed_on, input_bytes=self._input_bytes())
            self._spark_is_local = is_local(self._spark.sparkContext.master)
        return self._spark

    def _input_bytes(self) -> int | None:
        """The size of the input folder's files, or None without one."""
        if self.input_dir is None or not self.input_dir.is_dir():
            return None
        return sum(path.stat().st_size for path in self.input_dir.rglob("*") if path.is_file())

    def close_connection(self) -> None:
        """Close DuckDB (its memory goes back) and wait for the digests still being computed."""
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._hasher is not None:
            self._hasher.shutdown(wait=True)
            self._hasher = None

    def close(self) -> None:
        """Close DuckDB and Spark, drop what was staged and never committed, release the run folder."""
        self.close_connection()
        if self._spark is not None:
            spark, self._spark = self._spark, None
            # A cluster's session is the submitter's (spark-submit, a Databricks job) to stop.
            if self._spark_is_local:
                try:
                    spark.stop()
                except Exception:  # noqa: BLE001 - its JVM is gone already (killed): nothing to stop
                    pass
        if self.folder is not None:
            self.folder.close()
            self.folder = None

    # Outputs ---------------------------------------------------------------------

    def staged_path(self, relative: str) -> Path:
        """Where a stage writes the output `relative` before its commit."""
        return self.folder.staged(relative)

    def copy_parquet(self, select: str, relative: str, params: list | None = None) -> Output:
        """Stage a SELECT's rows as the Parquet output `relative`."""
        rows = db.scalar(self.con, f"COPY ({select}) TO {db.literal(self.staged_path(relative))} ({PARQUET})", params)
        return self.stage_output(relative, rows)

    def stage_output(self, relative: str, rows: int | None) -> Output:
        """Count a file written at `staged_path(relative)` as an output of the stage under way."""
        if self._hasher is None:
            self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        staged = self.staged_path(relative)
        output = Output(relative, self._hasher.submit(sha256_of, staged, sync=True), rows)
        self.staged[relative] = output
        return output

    def commit(
        self, stage: str, record: dict, *, replaces: Iterable[str] = (), drops: Iterable[str] = (),
        commit_id: str | None = None, status: str | None = None,
    ) -> str:
        """Move the staged outputs into place and list them, with the stage's record, as one step.

        `replaces` names what this stage's outputs supersede (files, or folders ending in
        `/`): whatever of it the manifest lists and is not staged again is removed in the same
        commit, so an old part file never sits beside tonight's; a file no run listed is never
        touched. `drops` names stage records that go with it. Returns the commit's id.
        """
        commit_id = commit_id or new_commit_id()
        moves = sorted(self.staged)
        removes = set()
        for prefix in replaces:
            listed = [p for p in self.outputs if p == prefix or (prefix.endswith("/") and p.startswith(prefix))]
            removes |= set(listed) - set(moves)
        outputs = {p: o for p, o in self.outputs.items() if p not in removes}
        outputs.update({relative: output.record() for relative, output in self.staged.items()})
        stages = {name: kept for name, kept in self.stages.items() if name not in drops}
        stages[stage] = {**record, "run_id": self.run_id, "commit": commit_id}
        manifest = self._manifest(outputs, stages, status or self.status)
        self.folder.commit(manifest, moves, sorted(removes))
        self.outputs, self.stages, self.staged = outputs, stages, {}
        self.status = manifest["status"]
        return commit_id

    def finish(self) -> None:
        """Mark the run complete: a later command into this folder starts a new run."""
        if self.status != "complete":
            self.status = "complete"
            self.folder.commit(self._manifest(self.outputs, self.stages, "complete"), [], [])

    def manifest(self) -> dict:
        """The manifest as last committed (what the folder holds)."""
        return self._manifest(self.outputs, self.stages, self.status)

    def _manifest(self, outputs: dict[str, dict], stages: dict[str, dict], status: str) -> dict:
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "version": self.version,
            "status": status,
            "command": self.command,
            "request": self.request,
            "settings": self.settings,
            "inputs": self.inputs,
            "stages": [{"stage": name, **record} for name, record in stages.items()],
            "outputs": [outputs[path] for path in sorted(outputs)],
        }


def _check_finishable(previous: dict, context: RunContext) -> None:
    """An unfinished run is finished by the command it is, not by another one.

    `validate` into a folder where `run` was killed would otherwise take that run up and mark
    it complete, and the scheduler's retry of the `run` would then plan around its benefits
    and replace their payloads: emitted, and in no run folder.
    """
    unfinished = previous.get("status") != "complete"
    if context.keeps_run or not unfinished or previous.get("command") in (None, context.command):
        return
    raise RunFolderError(
        f"{context.out_dir} holds run {previous['run_id']} of `{previous['command']}`, unfinished "
        f"({previous.get('status')}); rerun that command to finish it (it picks up where it stopped), "
        f"or give this `{context.command}` its own --out"
    )


def new_commit_id() -> str:
    return secrets.token_hex(8)
