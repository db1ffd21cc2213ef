"""The run context: options, paths, the one DuckDB connection and the manifest of a run.

Built once per command and closed in one place; stages read from it and record into it.
"""

from __future__ import annotations

import secrets
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from pipeline import __version__, db
from pipeline.errors import ConfigError
from pipeline.files import sha256_of, write_json_atomic
from pipeline.log import Silent


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
        moment = moment.replace(tzinfo=zone(naive_timezone, "naive_timezone"))
    return moment.astimezone(timezone.utc)


def zone(name: str, option: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{option} {name!r} is not an IANA time zone (e.g. Australia/Melbourne)") from None


# How every Parquet output is written.
PARQUET = "FORMAT parquet, COMPRESSION zstd"


@dataclass
class Output:
    """A finished output file, as listed in the manifest.

    Its sha256 is computed on a background thread while DuckDB writes the next file (a
    gigabyte of payloads takes seconds to hash) and is waited for when first read.
    """

    path: str
    digest: Future[str]
    rows: int | None

    @property
    def sha256(self) -> str:
        return self.digest.result()

    def record(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "rows": self.rows}


@dataclass
class RunContext:
    """Everything a stage needs to know about the run it is part of."""

    out_dir: Path
    input_dir: Path | None = None
    as_of: datetime = field(default_factory=lambda: parse_as_of(None))
    naive_timezone: str = "UTC"
    default_timezone: str = "UTC"
    max_reject_ratio: float = 0.05
    memory_limit: str | None = None
    threads: int | None = None
    state_dir: Path | None = None
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3))
    version: str = __version__
    inputs: list[dict] = field(default_factory=list)
    stages: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, Output] = field(default_factory=dict)
    progress: Silent = field(default_factory=Silent)
    _con: duckdb.DuckDBPyConnection | None = None
    _hasher: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        zone(self.naive_timezone, "naive_timezone")
        zone(self.default_timezone, "default_timezone")
        if not 0 <= self.max_reject_ratio <= 1:
            raise ConfigError(f"--max-reject-ratio {self.max_reject_ratio} must be between 0 and 1")

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._con = db.connect(
                memory_limit=self.memory_limit,
                threads=self.threads,
                temp_directory=self.out_dir / ".tmp" / "duckdb",
            )
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._hasher is not None:
            # The digests still being computed finish (the manifest reads them); the thread ends.
            self._hasher.shutdown(wait=True)
            self._hasher = None
        scratch = self.out_dir / ".tmp"
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)

    # Outputs ---------------------------------------------------------------------

    def copy_parquet(self, select: str, relative: str, params: list | None = None) -> Output:
        """Write a SELECT's rows to `relative` under the run folder as Parquet, atomically."""
        rows = db.copy_atomic(self.con, select, self.out_dir / relative, PARQUET, params)
        return self.record_output(relative, rows)

    def record_output(self, relative: str, rows: int | None) -> Output:
        if self._hasher is None:
            self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        output = Output(relative, self._hasher.submit(sha256_of, self.out_dir / relative), rows)
        self.outputs[relative] = output
        return output

    def manifest(self) -> dict:
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "version": self.version,
            "settings": {
                "naive_timezone": self.naive_timezone,
                "default_timezone": self.default_timezone,
                "max_reject_ratio": self.max_reject_ratio,
            },
            "inputs": self.inputs,
            "stages": [{"stage": name, **record} for name, record in self.stages.items()],
            "outputs": [output.record() for output in sorted(self.outputs.values(), key=lambda o: o.path)],
        }

    def write_manifest(self) -> Path:
        path = self.out_dir / "manifest.json"
        write_json_atomic(path, self.manifest())
        return path
