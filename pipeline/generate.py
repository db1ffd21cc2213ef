"""The generate stage: realistic synthetic Omneo and POS exports, with planted faults listed in truth/.

Every row is computed in DuckDB from hashes of (seed, key), never random(), so the same
seed, size and as_of give byte-identical files; nothing is built row by row in Python.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
from sqlglot import exp

from pipeline import __version__, db
from pipeline.errors import ConfigError
from pipeline.files import atomic_path, write_json_atomic, write_text_atomic
from pipeline.readers import discover
from pipeline.reconcile import CATEGORIES

DEFAULT_AS_OF = "2026-11-22T09:00:00+11:00"
FORMATS = {"csv": "FORMAT csv, HEADER true", "parquet": "FORMAT parquet, COMPRESSION zstd"}
# The exports, each with the table of its clean rows. Profiles are never stored: a profile
# is a function of (seed, index), computed by generate_profiles.sql while it is written.
DATASETS = {
    "profiles": None,
    "benefit_definitions": "g_benefit_definitions",
    "benefits": "g_benefits",
    "redemptions": "g_redemptions",
    "redemption_items": "g_redemption_items",
    "returns": "g_returns",
    "transactions": "g_transactions",
}
# Tables built in order from pipeline/sql/<name>.sql, later ones reading earlier ones; the
# table in third place is dropped after the step (memory is what limits the size).
BUILD = (
    ("g_definition_catalog", "generate_definitions", None),
    ("g_anomalies", "generate_anomalies", None),
    ("g_instances", "generate_instances", None),
    ("g_redemption_events", "generate_redemption_events", None),
    ("g_benefits", "generate_benefits", "g_instances"),
    ("g_benefit_definitions", "generate_benefit_definitions", None),
    ("g_redemptions", "generate_redemptions", None),
    ("g_redemption_items", "generate_redemption_items", None),
    ("g_returns", "generate_returns", None),
    ("g_transactions", "generate_transactions", None),
    ("g_faults", "generate_faults", None),
    ("truth_anomalies", "generate_truth_anomalies", "g_redemption_events"),
)
MELBOURNE = ZoneInfo("Australia/Melbourne")


@dataclass(frozen=True)
class Scale:
    """How much of everything a number of profiles gets."""

    profiles: int
    per_variant: int  # planted anomalies of each variant (the flash sales are fixed)
    reserved: int  # profiles at the end of the range kept for planted anomalies
    per_kind: int  # planted invalid rows of each kind (benefit definitions: one each)
    sales: int  # ordinary POS sales (benefit usages come on top)
    allocation_headroom: int  # allocations left on definitions that have a total

    @classmethod
    def of(cls, profiles: int) -> Scale:
        return cls(
            profiles=profiles,
            per_variant=max(1, profiles // 4000),
            reserved=min(profiles // 2, max(60, profiles // 50)),
            per_kind=max(2, profiles // 20000),
            sales=profiles // 4,
            allocation_headroom=max(20, profiles // 200),
        )


@dataclass
class GenerateResult:
    """Rows written per file, planted findings per category, planted invalid rows per dataset."""

    rows: dict[str, int] = field(default_factory=dict)
    anomalies: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0


def generate(
    out_dir: Path,
    *,
    profiles: int,
    seed: int = 0,
    file_format: str = "csv",
    as_of: datetime,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> GenerateResult:
    """Write every dataset of contract §2, campaigns.toml and truth/ into out_dir."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    _check(out_dir, profiles, file_format)
    scale = Scale.of(profiles)
    params = {
        "seed": seed,
        "as_of": as_of,
        "profiles": profiles,
        "reserved": scale.reserved,
        "background_profiles": profiles - scale.reserved,
        "per_variant": scale.per_variant,
        "per_kind": scale.per_kind,
        "sales": scale.sales,
        "allocation_headroom": scale.allocation_headroom,
        "csv": file_format == "csv",
    }
    result = GenerateResult()
    scratch = out_dir / ".tmp"
    con = db.connect(memory_limit=memory_limit, threads=threads, temp_directory=scratch / "duckdb")
    try:
        con.execute(db.sql_text("generate_macros"))
        for table, sql_name, drop in BUILD:
            _execute(con, f"CREATE OR REPLACE TEMP TABLE {table} AS " + db.sql_text(sql_name), params)
            if drop:
                con.execute(f"DROP TABLE {drop}")
        # Profiles last: every other table is written and dropped by then, which leaves the
        # memory to the biggest file.
        written = {d: _write_dataset(con, d, out_dir, file_format, params) for d in [*list(DATASETS)[1:], "profiles"]}
        result.rows = {dataset: written[dataset] for dataset in DATASETS}
        result.anomalies, result.invalid = _write_truth(con, out_dir, file_format, params, result.rows)
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)
    write_text_atomic(out_dir / "campaigns.toml", campaigns_toml(as_of, scale))
    _write_description(out_dir, seed, file_format, as_of, scale, result)
    result.files = [f"{dataset}.{file_format}" for dataset in DATASETS] + [
        "campaigns.toml", "truth/anomalies.csv", "truth/invalid_rows.csv", "truth/generated.json", "truth/README.md"]
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _check(out_dir: Path, profiles: int, file_format: str) -> None:
    """Refuse what would give a wrong dataset: a bad size or format, or other exports in out_dir."""
    if file_format not in FORMATS:
        raise ConfigError(f"--format {file_format!r}: choose one of {', '.join(FORMATS)}")
    if profiles < 100:
        raise ConfigError(f"--profiles {profiles}: generate at least 100 profiles")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a folder")
    # Another file of a dataset (the other format, parts) would be read along with ours.
    ours = {f"{dataset}.{file_format}" for dataset in DATASETS}
    strays = [s.display for d in DATASETS for s in discover(out_dir, d) if s.display not in ours]
    if strays:
        error = ConfigError(
            f"--out {out_dir} already holds {strays[0]}, which a run would read along with the new files"
        )
        error.hint = "generate into an empty folder, or into the same folder with the same --format"
        raise error


def _execute(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> None:
    con.execute(sql, _used(sql, params))


def _used(sql: str, params: dict) -> dict:
    """The named parameters sql uses (DuckDB refuses any other), comments left out."""
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    names = set(re.findall(r"\$([a-z_]+)", code))
    return {name: value for name, value in params.items() if name in names}


# The files ---------------------------------------------------------------------------------


def _write_dataset(con: duckdb.DuckDBPyConnection, dataset: str, out_dir: Path, file_format: str,
                   params: dict) -> int:
    """Write one dataset's clean rows with its planted invalid rows in place; return rows written."""
    table = DATASETS[dataset]
    if table is None:
        rows_sql = db.sql_text("generate_profiles")
    else:
        # A planted invalid row is a copy of its template row with some values overridden.
        rows_sql = f"""
            SELECT *, NULL::MAP(VARCHAR, VARCHAR) AS _overrides, _seq AS _pos, 0 AS _sub FROM {table}
            UNION ALL
            SELECT t.*, f.overrides, f.pos, f.sub
            FROM g_faults f JOIN {table} t ON t._seq = f.template
            WHERE f.dataset = $dataset"""
    bound = _used(rows_sql, {**params, "dataset": dataset})
    select = _export_select(con, rows_sql, bound, file_format, sort=table is not None)
    final = out_dir / f"{dataset}.{file_format}"
    options = FORMATS[file_format]
    if dataset == "transactions" and file_format == "csv":
        # A record no CSV reader can parse closes the file; DuckDB's writer cannot make one.
        with atomic_path(final) as temporary:
            target = db.literal(temporary)
            rows = db.scalar(con, f"COPY ({select}) TO {target} ({options})", bound)
            with temporary.open("a", encoding="utf-8") as handle:
                handle.write(malformed_line(params["as_of"]) + "\n")
        rows += 1
    else:
        rows = db.copy_atomic(con, select, final, options, bound)
    if table is not None:
        con.execute(f"DROP TABLE {table}")
    return rows


def _export_select(con: duckdb.DuckDBPyConnection, rows_sql: str, params: dict, file_format: str,
                   sort: bool) -> str:
    """SELECT text of a file's rows in file order, each value as the file holds it.

    `rows_sql` yields the dataset's columns and the generator's own, starting with `_`:
    `_overrides` (column → text) replaces values of a planted invalid row, `_pos`/`_sub`
    order the rows (`sort`: here; else rows_sql yields them in order), `_zone` is the zone
    times are written in. CSV holds every value as Omneo's export would (ISO 8601 local
    times with offsets, lists as JSON arrays); Parquet keeps the types.
    """
    described = db.rows(con, f"DESCRIBE {rows_sql}", params)
    projections = []
    for name, kind in ((row[0], row[1]) for row in described if not row[0].startswith("_")):
        column = exp.column(name, quoted=True)
        override = exp.Bracket(this=exp.column("_overrides"), expressions=[exp.Literal.string(name)])
        if file_format == "csv":
            value = _as_text(column, kind)
        else:
            value = column
            override = exp.cast(override, exp.DataType.build(kind, dialect="duckdb"))
        overridden = exp.func("map_contains", exp.column("_overrides"), exp.Literal.string(name))
        case = exp.Case(ifs=[exp.If(this=overridden, true=override)], default=value)
        projections.append(exp.alias_(case, name, quoted=True).sql("duckdb"))
    order = " ORDER BY _pos, _sub" if sort else ""
    return f"SELECT {', '.join(projections)} FROM ({rows_sql}){order}"


def _as_text(column: exp.Expression, kind: str) -> exp.Expression:
    if kind == "TIMESTAMP WITH TIME ZONE":
        return exp.func("gen_iso", column, exp.column("_zone"))
    if kind.endswith("[]"):
        return exp.cast(exp.func("to_json", column), "VARCHAR")
    if kind == "VARCHAR":
        return column
    return exp.cast(column, "VARCHAR")


def malformed_line(as_of: datetime) -> str:
    """The record with one field too many that closes transactions.csv."""
    moment = as_of.astimezone(MELBOURNE).replace(microsecond=0).isoformat()
    return f"MEL-001-BROKEN-1,{moment},,MEL-001,12.5,completed,,,,till-7"


# truth/ ------------------------------------------------------------------------------------


def _write_truth(con: duckdb.DuckDBPyConnection, out_dir: Path, file_format: str, params: dict,
                 rows: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Write truth/anomalies.csv and truth/invalid_rows.csv; return counts per category and dataset."""
    csv = file_format == "csv"
    invalid_params = {
        **params,
        "extension": f".{file_format}",
        "malformed_row": rows["transactions"] if csv else 0,
        "malformed_line": malformed_line(params["as_of"]),
    }
    _execute(con, "CREATE OR REPLACE TEMP TABLE truth_invalid AS " + db.sql_text("generate_truth_invalid"),
             invalid_params)
    db.copy_atomic(con, "SELECT * FROM truth_anomalies", out_dir / "truth" / "anomalies.csv", FORMATS["csv"])
    db.copy_atomic(con, "SELECT * FROM truth_invalid", out_dir / "truth" / "invalid_rows.csv", FORMATS["csv"])
    found = dict(db.rows(con, "SELECT category, count(*) FROM truth_anomalies GROUP BY ALL"))
    invalid = dict(db.rows(con, "SELECT dataset, count(*) FROM truth_invalid GROUP BY ALL"))
    return ({category: found.get(category, 0) for category in CATEGORIES},
            {dataset: invalid.get(dataset, 0) for dataset in DATASETS})


def run_command(out_dir: Path, as_of: datetime, reject_ratio: float) -> str:
    """The `omneo-bulk run` whose findings and rejects truth/ lists."""
    command = (
        f"omneo-bulk run --input {shlex.quote(str(out_dir))} "
        f"--campaigns {shlex.quote(str(out_dir / 'campaigns.toml'))} "
        f"--out {shlex.quote('runs/' + out_dir.name)} --as-of {as_of.isoformat()}"
    )
    # A small folder holds as many planted invalid rows as a big one: more than the default 5%.
    if reject_ratio > 0.04:
        command += " --max-reject-ratio 1"
    return command


def _write_description(out_dir: Path, seed: int, file_format: str, as_of: datetime, scale: Scale,
                       result: GenerateResult) -> None:
    """truth/generated.json and truth/README.md: what was generated and how to check it."""
    command = run_command(out_dir, as_of, sum(result.invalid.values()) / sum(result.rows.values()))
    description = {
        "generator": f"omneo-bulk {__version__}",
        "seed": seed,
        "profiles": scale.profiles,
        "format": file_format,
        "as_of": as_of.isoformat(),
        "run_command": command,
        "assumes": {"window_minutes": 1440, "grace_hours": 24},
        "files": {d: {"path": f"{d}.{file_format}", "rows": n} for d, n in result.rows.items()},
        "anomalies": result.anomalies,
        "invalid_rows": result.invalid,
        "anomalies_per_variant": scale.per_variant,
        "invalid_rows_per_kind": scale.per_kind,
    }
    write_json_atomic(out_dir / "truth" / "generated.json", description)
    readme = TRUTH_README.format(command=command, as_of=as_of.isoformat(), seed=seed, profiles=scale.profiles)
    write_text_atomic(out_dir / "truth" / "README.md", readme)


TRUTH_README = """# What was planted in this folder

Generated by `omneo-bulk generate` (seed {seed}, {profiles} profiles, as of {as_of}); see
docs/generate.md. The reconciliation this truth describes is:

    {command}

It must use the same `--as-of` and the default `--window-minutes 1440` and
`--grace-hours 24`: under them the background data has no finding at all.

- `anomalies.csv`: one row per finding `reconciliation/exceptions.parquet` must hold:
  `category`, `action`, and the ids the finding carries (`profile_id`, `benefit_id`,
  `definition_id`, `redemption_id`, `transaction_external_id`; empty is null), then the
  planted `variant` and a `note`. Any other exception is a false positive.
- `invalid_rows.csv`: one row per planted invalid row: `dataset`, `source_file`,
  `source_row` (1-based data row), `column` and `reason` as `rejects/<dataset>.parquet`
  reports them, the `value` written and a `note`. No other row may be rejected.
- `generated.json`: seed, size, format, as_of, rows per file, the counts, the command.
"""


def campaigns_toml(as_of: datetime, scale: Scale) -> str:
    """Tonight's campaigns over the generated definitions: audiences, priorities, caps, zones."""
    local = as_of.astimezone(MELBOURNE)
    return CAMPAIGNS.format(
        year=local.year, month=local.month, date=local.date().isoformat(), quarter=(local.month - 1) // 3 + 1,
        spender_limit=max(10, scale.profiles // 500),
    )


CAMPAIGNS = """# Tonight's campaigns over the generated definitions.
# Every key is described in omneo-bulk's docs/contract.md, section 4.

[[campaigns]]
id = "birthday-{year}-{month:02d}"
definition = "birthday-gift"
audience = '{{"==": [{{"var": "birth_month"}}, {month}]}}'
issued_at = "{date} 09:00:00"
timezone = "Australia/Melbourne"
cycle = "{year}"
priority = "joined_at"
# birthday-gift's total_allocations_remaining caps it: the rest are allocation_exhausted.

[[campaigns]]
id = "welcome-first-spend"
definition = "first-spend"
audience = '{{"<=": [{{"var": "days_since_joined"}}, 30]}}'
cycle = "welcome"

[[campaigns]]
id = "gold-free-shipping"
definition = "free-shipping"
audience = '{{"and": [{{"in": [{{"var": "tier.handle"}}, ["gold", "platinum"]]}}, {{"var": "attributes.comms.email_promo"}}]}}'
timezone = "Australia/Melbourne"
cycle = "{year}-q{quarter}"
priority = "-aggregations.spend_12m"

[[campaigns]]
id = "big-spender-anniversary"
definition = "anniversary-20"
audience = '{{">=": [{{"var": "aggregations.spend_12m"}}, 400]}}'
cycle = "{year}"
priority = "-aggregations.spend_12m"
limit = {spender_limit}

[[campaigns]]
id = "vic-app-exclusive"
definition = "app-exclusive"
audience = '{{"and": [{{"in": ["app", {{"var": "flattened_tags"}}]}}, {{"==": [{{"var": "region"}}, "VIC"]}}]}}'
timezone = "Australia/Melbourne"
cycle = "{year}-{month:02d}"

[[campaigns]]
id = "gold-limited-drop"
definition = "limited-drop"
audience = '{{"in": [{{"var": "tier_handle"}}, ["gold", "platinum"]]}}'
priority = "-aggregations.spend_all"

[[campaigns]]
id = "loyalty-milestone"
definition = "loyalty-milestone"
audience = '{{">=": [{{"var": "aggregations.shop_count"}}, 3]}}'
cycle = "{year}"
priority = "joined_at"

[[campaigns]]
id = "vip-free-shipping"
definition = "free-shipping"
audience = '{{"in": ["vip", {{"var": "flattened_tags"}}]}}'
cycle = "{year}-q{quarter}-vip"
priority = "-aggregations.spend_all"
# Gold VIPs already get free shipping above: they are duplicate_in_run here.

[[campaigns]]
id = "summer-preview"
definition = "summer-preview"
audience = '{{"==": [{{"var": "tier_handle"}}, "platinum"]}}'
# summer-preview is unpublished: every profile is definition_not_issuable.
"""
