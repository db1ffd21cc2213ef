"""The `omneo-bulk` command line: parse options, run one stage, map errors to exit codes.

No data logic lives here. Exit status: 0 done, 1 data fault, 2 usage error. The stages
are imported by the commands that run them: `--help`, a usage error or a `query` never
pays for pandera, polars or pandas (tests/test_cli_basics.py).
"""

from __future__ import annotations

import functools
import ipaddress
import os
import sys
import tomllib
import urllib.parse
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline import __version__
from pipeline.errors import CampaignError, ConfigError, PipelineError, PushError, StateError, first_line
from pipeline.files import sha256_of
from pipeline.log import Log

if TYPE_CHECKING:
    from pipeline import issuance, reconcile, validate
    from pipeline.context import RunContext

ENV_PREFIX = "OMNEO_BULK"


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Eager callback: a TOML file's keys become this command's option defaults.

    Top-level keys apply to every command; a `[<command>]` table applies to that command
    only. Precedence: command line > environment (OMNEO_BULK_*) > config file > default.
    """
    if not value:
        return value
    path = Path(value)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise click.BadParameter(f"{path}: no such file", ctx=ctx, param=_param) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise click.BadParameter(f"{path}: not valid TOML ({error})", ctx=ctx, param=_param) from None
    command = ctx.command.name
    settings = {k: v for k, v in data.items() if not isinstance(v, dict)}
    settings.update(data.get(command, {}))
    # A setting is named like its option (`input`, `max-reject-ratio` or `max_reject_ratio`).
    names = {
        opt.lstrip("-").replace("-", "_"): p.name
        for p in ctx.command.params
        for opt in getattr(p, "opts", [])
        if opt.startswith("--")
    }
    defaults = {}
    for key, value in settings.items():
        name = names.get(key.replace("-", "_"))
        if name is None:
            raise click.BadParameter(f"{path}: unknown setting {key!r} for {command}", ctx=ctx, param=_param)
        defaults[name] = value
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def input_options(command: Callable) -> Callable:
    """Options shared by every command that reads an input folder."""
    options = [
        click.option("--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
                     callback=_load_config, help="TOML file of option defaults."),
        click.option("--input", "input_dir", required=True, type=click.Path(path_type=Path),
                     help="Folder of export files (profiles.csv, benefits.parquet, …)."),
        click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Run folder to write (created if missing)."),
        click.option("--as-of", help="Run time, ISO 8601 or 'YYYY-MM-DD HH:MM:SS' [default: now]."),
        click.option("--naive-timezone", default="UTC", show_default=True,
                     help="Time zone of input timestamps that carry no offset."),
        click.option("--default-timezone", default="UTC", show_default=True,
                     help="Time zone for a profile or benefit that names none."),
        click.option("--max-reject-ratio", type=float, default=0.05, show_default=True,
                     help="Exit 1 when rejected rows / rows read exceeds this."),
        click.option("--memory-limit", help="DuckDB memory limit, e.g. 4GB [default: a sixth of RAM]."),
        click.option("--threads", type=click.IntRange(min=1), help="DuckDB threads [default: all cores]."),
        click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
                     help="spark: the validate stage on Apache Spark (needs omneo-bulk[spark]); docs/scale-out.md."),
        click.option("--spark-master", metavar="URL",
                     help="With --engine spark: local[N], spark://…, yarn [default: spark-submit's, else local[*,2]]."),
        click.option("--shards", type=click.IntRange(min=1),
                     help="With --engine spark: partitions of every shuffle [default: Spark's]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# Options that change how a command runs, never what it writes: not part of its request.
# (--engine is part of it: the Spark engine writes validated/ as folders of parts.)
HOW_NOT_WHAT = {"memory_limit", "threads", "spark_master", "shards"}


def _context(options: dict, log: Log) -> RunContext:
    """The command's run context, its settings checked; `open()` it to hold the run folder."""
    from pipeline.context import RunContext, fingerprint, parse_as_of

    command = click.get_current_context().command.name
    asked = {k: str(Path(v).resolve()) if isinstance(v, Path) else v for k, v in options.items() if k not in HOW_NOT_WHAT}
    if options.get("engine") == "spark":
        _check_spark(options["out_dir"], options["spark_master"])
    else:
        for name, option in (("spark_master", "--spark-master"), ("shards", "--shards")):
            if options.get(name) is not None:
                raise ConfigError(f"{option} is for --engine spark; --engine duckdb runs on DuckDB alone")
        asked.pop("engine", None)  # a DuckDB run asks what it asked before there was a choice
    if options.get("campaigns_file") is not None and options["campaigns_file"].is_file():
        asked["campaigns_sha256"] = sha256_of(options["campaigns_file"])
    return RunContext(
        command=command,
        request=fingerprint(command, asked, options["input_dir"],
                            skip=tuple(options[k] for k in ("out_dir", "state_dir") if options.get(k))),
        progress=log.progress(),
        passed_on=log.passed_on,
        out_dir=options["out_dir"],
        input_dir=options["input_dir"],
        as_of=parse_as_of(options["as_of"], options["naive_timezone"]) if options["as_of"] else None,
        naive_timezone=options["naive_timezone"],
        default_timezone=options["default_timezone"],
        max_reject_ratio=options["max_reject_ratio"],
        memory_limit=options["memory_limit"],
        threads=options["threads"],
        engine=options["engine"],
        spark_master=options["spark_master"],
        shards=options["shards"],
    )


def _check_spark(out_dir: Path, master: str | None) -> None:
    """Stop before the run folder is touched when the Spark engine cannot run."""
    import importlib.util

    from pipeline.spark.session import check_master, is_local, require_java
    from pipeline.spark.validate import refuse_glob

    if importlib.util.find_spec("pyspark") is None:
        raise ConfigError("--engine spark needs PySpark: pip install 'omneo-bulk[spark]' (and Java 17)")
    check_master(master)
    if master is None or is_local(master):  # a JVM of this machine's (spark-submit's, or the local one)
        require_java()
    refuse_glob(out_dir, f"--out {out_dir}")


def output_options(command: Callable) -> Callable:
    """--quiet, --log-format and --debug: how a command speaks, shared by every command."""
    options = [
        click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (no progress, no summary)."),
        click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
                     help="json: every line printed is one JSON object, for schedulers."),
        click.option("--debug", is_flag=True, help="Show the traceback of an error."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def reports_errors(command: Callable) -> Callable:
    """Give the command its Log; turn a domain error into one line and its exit status."""

    @output_options
    @functools.wraps(command)
    def wrapper(*args, quiet: bool, log_format: str, debug: bool, **options):
        log = Log(log_format, quiet)
        try:
            return command(*args, log=log, **options)
        except KeyboardInterrupt:
            # Outputs are renamed into place only when finished, so none is half-written.
            log.error("interrupted", event="interrupted")
            sys.exit(130)
        except PipelineError as error:
            if debug:
                raise
            _stop_if_out_of_memory(log, error, options)
            log.error(str(error), error.hint)
            sys.exit(error.exit_code)
        except BrokenPipeError:
            # Whoever read stdout stopped (`query ... | head`): no fault to report. Quiet, with
            # the status a shell gives a command its pipe's reader left (128 + SIGPIPE); stdout
            # goes to /dev/null so the interpreter's own flush at exit cannot complain again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except OSError as error:  # the machine's fault (disk full, no permission): name the file
            if debug:
                raise
            where = f"{error.filename}: " if error.filename else ""
            log.error(f"{where}{error.strerror or error}", "check the folder's permissions and free space")
            sys.exit(1)
        except Exception as error:  # a bug: still one line, the traceback behind --debug
            if debug:
                raise
            _stop_if_out_of_memory(log, error, options)
            log.error(f"{type(error).__name__}: {first_line(error)}", "rerun with --debug for the traceback, and report it",
                      event="internal_error")
            sys.exit(1)

    return wrapper


def _stop_if_out_of_memory(log: Log, error: BaseException, options: dict) -> None:
    """Exit with one line naming the memory limit when DuckDB ran out of memory under `error`.

    Wherever it happens, it is the limit's fault, not a file's or a bug: a reader that
    turned it into "cannot be read" (`raise ... from None` keeps it as the context) would
    send the user to look at a sound export.
    """
    import duckdb  # loaded already by whatever failed; not on the --help path

    cause = _found_under(error, duckdb.OutOfMemoryException)
    if cause is None or "memory_limit" not in options:  # query keeps DuckDB's own limit: its message says it
        return
    from pipeline.db import default_memory_limit

    limit = options["memory_limit"] or default_memory_limit()
    log.error(f"DuckDB ran out of memory under --memory-limit {limit} ({first_line(cause)})",
              "raise --memory-limit, or lower --threads, and run the same command again", event="out_of_memory")
    sys.exit(1)


def _found_under(error: BaseException, kind: type) -> BaseException | None:
    """`error` or the first exception of type `kind` it was raised from or while handling.

    Both links are followed (a domain error raised `from` one error while handling another
    holds the first in __cause__ and the second in __context__), each exception once: a
    chain can loop.
    """
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        pending += [current.__cause__, current.__context__]
    return None


class Main(click.Group):
    """The command group; a usage error is one JSON object too when json logs were asked for.

    Click reports a bad option before any command runs, so before the command's own Log
    exists: a scheduler that parses every line as JSON would otherwise get Click's text.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or not _asks_for_json(argv):
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            return super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as error:
            event = "usage_error" if isinstance(error, click.UsageError) else "error"
            Log("json").error(error.format_message(), event=event)
            sys.exit(error.exit_code)
        except click.Abort:
            Log("json").error("aborted", event="aborted")
            sys.exit(1)


def _asks_for_json(argv: list[str]) -> bool:
    """Is the log format json? The last --log-format given, else OMNEO_BULK_<COMMAND>_LOG_FORMAT.

    The same precedence as for the option itself: the command line beats the environment.
    """
    chosen = None
    for position, arg in enumerate(argv):
        if arg.startswith("--log-format="):
            chosen = arg.split("=", 1)[1]
        elif arg == "--log-format" and position + 1 < len(argv):
            chosen = argv[position + 1]
    if chosen is None:
        command = next((arg for arg in argv if not arg.startswith("-")), "")
        chosen = os.environ.get(f"{ENV_PREFIX}_{command.upper()}_LOG_FORMAT")
    return chosen == "json"


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": ENV_PREFIX})
@click.version_option(__version__, prog_name="omneo-bulk")
def main() -> None:
    """Bulk benefit issuance and redemption reconciliation for Omneo.

    \b
    Example:
      omneo-bulk run --input sample_data --campaigns sample_data/campaigns.toml --out runs/sample
    """


def _validate(
    context: RunContext,
    before_writing: Callable[[], object] = lambda: None,
    required: dict[str, tuple[str, ...]] | None = None,
):
    """Validate, run `before_writing` (campaign checks), then commit validated/ and rejects/."""
    from pipeline import report, validate

    # An earlier run's report, warehouse and push results would mix its figures with tonight's.
    stale = {"stale": (*report.FILES, "push/"), "stale_stages": ("report", "push")}
    if context.engine == "spark":
        from pipeline.spark import validate as on_spark

        checked = on_spark.check(context, required)
        prepared = before_writing()
        validate.commit(context, checked, **stale, record={"engine": "spark"})
    else:
        checked = validate.check(context, required)
        prepared = before_writing()
        validate.write(context, checked, **stale)
    return checked, prepared


@main.command("validate")
@input_options
@reports_errors
def validate_command(log: Log, **options) -> None:
    """Read every export in --input, validate it, and write validated/ and rejects/.

    \b
    Example:
      omneo-bulk validate --input sample_data --out runs/sample
    """
    context = _context(options, log)
    try:
        context.open()
        result, _ = _validate(context)
        context.finish()
    finally:
        context.close()
    _echo_validation(log, result, context)


def _echo_validation(log: Log, result: validate.ValidateResult, context: RunContext) -> None:
    for dataset, totals in result.totals().items():
        log.event(
            "dataset_validated",
            f"{dataset:<20} {totals['rows_read']:>10} read {totals['accepted']:>10} accepted "
            f"{totals['rejected']:>8} rejected",
            dataset=dataset, **totals,
        )
    log.event("manifest_written", f"wrote {context.out_dir / 'manifest.json'}",
              path=str(context.out_dir / "manifest.json"))


def issue_options(command: Callable) -> Callable:
    """Options of the issue stage (issue and run)."""
    options = [
        click.option("--campaigns", "campaigns_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="TOML file of [[campaigns]]."),
        click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Issuance state folder [default: .omneo-bulk/ beside the run folder]."),
        click.option("--batch-size", type=click.IntRange(1, 500), default=500, show_default=True,
                     help="Benefits per batch call (Omneo's cap is 500)."),
        click.option("--lines-per-file", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="API calls per payload file."),
        click.option("--single", is_flag=True, help="One POST /api/v3/benefits call per benefit instead of batches."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _issue_options(options: dict) -> issuance.Options:
    from pipeline import campaigns, issuance

    return issuance.Options(
        campaigns=campaigns.load(options["campaigns_file"]),
        state_dir=options["state_dir"] or options["out_dir"].resolve().parent / ".omneo-bulk",
        batch_size=options["batch_size"],
        lines_per_file=options["lines_per_file"],
        single=options["single"],
    )


def _echo_issuance(log: Log, result: issuance.IssueResult) -> None:
    for campaign in result.campaigns:
        skipped = sum(campaign["skipped"].values())
        log.event(
            "campaign_planned",
            f"{campaign['campaign_id']:<28} {campaign['considered']:>9} considered "
            f"{campaign['issued']:>9} issued {skipped:>9} skipped",
            **campaign,
        )
    log.event("issued", f"{result.issued} benefits in {len(result.payload_files)} payload file(s)",
              benefits=result.issued, payload_files=len(result.payload_files))
    if result.pruned:
        log.event("state_pruned", f"{result.pruned} benefits left the state: Omneo's export shows them now",
                  benefits=result.pruned)


@main.command("issue")
@input_options
@issue_options
@reports_errors
def issue_command(log: Log, **options) -> None:
    """Validate --input, plan tonight's campaigns, and write the benefit payloads.

    \b
    Example:
      omneo-bulk issue --input sample_data --campaigns sample_data/campaigns.toml \\
          --out runs/tonight --as-of "2026-11-22 09:00:00"
    """
    from pipeline import history, issuance

    required = {"issue": ("profiles", "benefit_definitions")}
    with _issuing(options, log, required) as (context, stage, _, prepared):
        result = issuance.run(context, stage, prepared)
        history.record(stage.state_dir, context.run_id, context.as_of, context.out_dir, context.stages)
        context.finish()
    _echo_issuance(log, result)


@contextmanager
def _issuing(options: dict, log: Log, required: dict[str, tuple[str, ...]]):
    """What issue and run share: hold the state, open the run, validate, check the campaigns.

    Yields (context, issue options, validation result, prepared campaigns).
    """
    from pipeline import issuance, state

    stage = _issue_options(options)  # a bad campaigns file stops before any output
    context = _context(options, log)  # a bad setting stops before the state folder is made
    try:
        with state.locked(stage.state_dir):
            context.open()
            _check_resumed_state(context, stage.state_dir)
            _check_nothing_undelivered_is_replaced(context, stage.state_dir)
            validated, prepared = _validate(context, lambda: _prepare(options, context, stage), required)
            yield context, stage, validated, prepared
    finally:
        context.close()


def _prepare(options: dict, context: RunContext, stage):
    """issuance.prepare, its faults naming the campaigns file as the file's own faults do."""
    from pipeline import issuance

    try:
        return issuance.prepare(context, stage)
    except CampaignError as error:
        raise CampaignError(f"{options['campaigns_file']}: {error}") from None


def _check_resumed_state(context: RunContext, state_dir: Path) -> None:
    """A run resumed in its folder must use the state it issued with, or it could issue twice."""
    issued = context.stages.get("issue", {})
    if context.resumed and issued.get("run_id") == context.run_id and "state" in issued:
        if Path(issued["state"]) != state_dir.resolve():
            raise ConfigError(
                f"{context.out_dir} holds run {context.run_id}, unfinished, which issued with --state "
                f"{issued['state']}; rerun it with that --state, or give this run a new --out"
            )


def _check_nothing_undelivered_is_replaced(context: RunContext, state_dir: Path) -> None:
    """A new run into a folder must not replace another run's benefit calls never delivered.

    The state calls those benefits emitted, so no later run issues them again: replacing
    their only payload files would lose them. Delivered (push sent every benefit call) or
    confirmed by Omneo's export (the state forgot them) is fine.
    """
    from pipeline.state import ISSUED

    issued = context.stages.get("issue", {})
    earlier = issued.get("run_id")
    if context.resumed or earlier in (None, context.run_id):
        return
    holds_calls = any(path.startswith("payloads/benefits/") for path in context.outputs)
    # The state that calls them emitted is the one the earlier run issued with, whichever
    # --state tonight's run names.
    earlier_state = Path(issued["state"]) if "state" in issued else state_dir
    still_emitted = (earlier_state / ISSUED / f"{earlier}.parquet").is_file()
    pushed = context.stages.get("push", {}).get("by_kind", {}).get("benefits")
    delivered = pushed is not None and not any(pushed.get(s) for s in ("pending", "in_flight", "ambiguous"))
    if holds_calls and still_emitted and not delivered:
        raise StateError(
            f"{context.out_dir} holds the benefit calls of run {earlier}, never delivered, which the state "
            f"{earlier_state} calls emitted: a new run here would replace them and they would be lost. Push them first "
            f"(omneo-bulk push --out {context.out_dir}), or give this run its own --out"
        )


def reconcile_options(command: Callable) -> Callable:
    """Options of the reconcile stage (reconcile and run)."""
    options = [
        click.option("--window-minutes", type=click.IntRange(min=0), default=1440, show_default=True,
                     help="How far apart a POS sale and an Omneo redemption may be and still pair."),
        click.option("--grace-hours", type=click.FloatRange(min=0), default=24, show_default=True,
                     help="How old an unmatched Omneo redemption must be to count as missing in POS."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _reconcile_options(options: dict) -> reconcile.Options:
    from pipeline import reconcile

    return reconcile.Options(
        window_minutes=options["window_minutes"],
        grace_hours=options["grace_hours"],
        lines_per_file=options["lines_per_file"],
    )


def _echo_reconciliation(log: Log, result: reconcile.ReconcileResult) -> None:
    found = {c: n for c, n in result.categories.items() if n}
    log.event(
        "reconciled",
        "reconciliation: "
        + (", ".join(f"{n} {c}" for c, n in found.items()) if found else "no exceptions")
        + f"; {len(result.payload_files)} corrective payload file(s)",
        categories=result.categories, actions=result.actions, payload_files=len(result.payload_files),
    )


@main.command("reconcile")
@input_options
@reconcile_options
@click.option("--lines-per-file", type=click.IntRange(min=1), default=1000, show_default=True,
              help="API calls per payload file.")
@reports_errors
def reconcile_command(log: Log, **options) -> None:
    """Validate --input, then reconcile Omneo's redemptions against the POS sales.

    \b
    Example:
      omneo-bulk reconcile --input sample_data --out runs/recon --window-minutes 1440 --grace-hours 24
    """
    from pipeline import reconcile

    context = _context(options, log)
    try:
        context.open()
        _validate(context, required={"reconcile": reconcile.REQUIRED})
        result = reconcile.run(context, _reconcile_options(options))
        context.finish()
    finally:
        context.close()
    _echo_reconciliation(log, result)


@main.command("run")
@input_options
@issue_options
@reconcile_options
@reports_errors
def run_command(log: Log, **options) -> None:
    """Run every stage on --input into --out: validate, issue, reconcile, then report.

    Writes report.html, report.md and warehouse.duckdb beside the stage outputs.

    \b
    Example:
      omneo-bulk run --input sample_data --campaigns sample_data/campaigns.toml --out runs/sample
    """
    from pipeline import history, issuance, reconcile, report

    required = {"issue": ("profiles", "benefit_definitions"), "reconcile": reconcile.REQUIRED}
    with _issuing(options, log, required) as (context, stage, validated, prepared):
        _echo_validation(log, validated, context)
        result = issuance.run(context, stage, prepared)
        reconciled = reconcile.run(context, _reconcile_options(options))
        # Before the report, so that it shows tonight beside the recent runs.
        history.record(stage.state_dir, context.run_id, context.as_of, context.out_dir, context.stages)
        context.close_connection()  # frees DuckDB's memory before the report reads the files back
        report.run(context)
        context.finish()
    _echo_issuance(log, result)
    _echo_reconciliation(log, reconciled)
    _echo_report(log, context.out_dir)


def _echo_report(log: Log, run_dir: Path) -> None:
    from pipeline import report, warehouse

    log.event("report_written", f"report: {run_dir / report.HTML_FILE}; query with "
              f"omneo-bulk query --out {run_dir} \"SELECT * FROM summary\"",
              html=str(run_dir / report.HTML_FILE), markdown=str(run_dir / report.MARKDOWN_FILE),
              warehouse=str(run_dir / warehouse.FILE))


def _base_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """https://, or plain http only to this machine (a test server): a token never crosses a network in clear."""
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{value!r} is not a URL such as https://api.<tenant>.getomneo.com")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise click.BadParameter(f"{value!r}: use https:// (plain http is allowed only to 127.0.0.1, localhost or [::1])")
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _kinds(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    from pipeline.push.calls import KINDS

    asked = {k.strip() for k in value.split(",") if k.strip()}
    unknown = sorted(asked - set(KINDS))
    if unknown or not asked:
        raise click.BadParameter(f"unknown kind {unknown[0]!r} (kinds: {', '.join(KINDS)})" if unknown else "no kind given")
    return tuple(k for k in KINDS if k in asked)  # always in the contract's order


def _resolutions(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for value in values:
        key, _, decision = value.rpartition("=")
        if not key or decision not in ("sent", "pending"):
            raise click.BadParameter(f"{value!r}: expected KEY=sent (it was applied) or KEY=pending (send it again)")
        found[key] = decision
    return found


@main.command("push")
@click.option("--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
              callback=_load_config, help="TOML file of option defaults (never the token).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A finished run folder whose payloads to send.")
@click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
              help="State folder (journal, history) [default: the run's own, else .omneo-bulk/ beside it].")
@click.option("--base-url", callback=_base_url, help="Omneo's API, e.g. https://api.<tenant>.getomneo.com.")
@click.option("--kinds", default="benefits,claim_redeem,redemptions,returns", show_default=True, callback=_kinds,
              help="Payload kinds to send, comma-separated; sent in that order, each finished before the next.")
@click.option("--rate", type=click.FloatRange(min=0.01), default=10.0, show_default=True,
              help="Calls per second, at most (lookups included).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True, help="Calls in flight at once.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds to wait for one answer; past it the call's outcome is unknown.")
@click.option("--patience", type=click.FloatRange(min=0), default=900.0, show_default=True,
              help="Seconds one call is retried while Omneo is unreachable or answers 429.")
@click.option("--queue-wait", type=click.FloatRange(min=0), default=120.0, show_default=True,
              help="Seconds after a batch of unknown outcome before its benefits are looked up (Omneo queues them).")
@click.option("--max-calls", type=click.IntRange(min=1), help="Send at most this many requests, then stop (exit 4).")
@click.option("--dry-run", is_flag=True, help="Check every line against the journal; say what would happen. No network.")
@click.option("--force", is_flag=True, help="Send a night far above the recent runs' median anyway.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the API token, readable only by you [default: $OMNEO_TOKEN].")
@click.option("--guard-factor", type=click.FloatRange(min=1), default=3.0, show_default=True,
              help="Refuse a night above this many times the recent median of benefits.")
@click.option("--guard-runs", type=click.IntRange(min=1), default=7, show_default=True,
              help="Recent runs the median is taken over.")
@click.option("--guard-min-runs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Runs needed in the history before the guard applies.")
@click.option("--lookup-benefits", default="/api/v3/profiles/{profile_id}/benefits", show_default=True,
              help="Where a benefit's external_id is looked up.")
@click.option("--lookup-redemptions", default="/api/v3/profiles/{profile_id}/benefits/{benefit_id}/redemptions",
              show_default=True, help="Where a redemption's external_id is looked up.")
@click.option("--lookup-claim-redeem", default="/api/v3/profiles/{profile_id}/redemptions", show_default=True,
              help="Where a claim-redeem's external_id is looked up.")
@click.option("--resolve", multiple=True, callback=_resolutions, metavar="KEY=sent|pending",
              help="Settle a call of unknown outcome by hand (a return checked in Omneo). Repeatable.")
@reports_errors
def push_command(log: Log, out_dir: Path, state_dir: Path | None, base_url: str | None, dry_run: bool,
                 token_file: Path | None, **options) -> None:
    """Send a finished run's payloads to Omneo, each call exactly once; rerun to resume.

    The token comes from OMNEO_TOKEN or --token-file, never from an option.
    Exit status: 0 all sent; 3 some rejected; 4 incomplete (rerun to resume); 1 auth or config fault.

    \b
    Example (with OMNEO_TOKEN exported):
      omneo-bulk push --out runs/sample --base-url https://api.acme.getomneo.com --rate 5
      omneo-bulk push --out runs/sample --dry-run
    """
    from pipeline import push, runfolder
    from pipeline.context import RunContext

    if base_url is None and not dry_run:
        raise click.UsageError("--base-url is required (only --dry-run goes without it)")
    token = None if dry_run else push.read_token(token_file)
    log.hide(token)
    manifest = runfolder.read_manifest(out_dir)
    if manifest is None:
        raise PushError(f"{out_dir}: no manifest.json here, so no finished run to push; is it a run folder?")
    settings = push.Options(
        state_dir=push.state_folder(out_dir, manifest, state_dir), base_url=base_url, dry_run=dry_run,
        kinds=options["kinds"], rate=options["rate"], concurrency=options["concurrency"],
        timeout=options["timeout"], patience=options["patience"], max_calls=options["max_calls"],
        queue_wait=options["queue_wait"], force=options["force"], guard_factor=options["guard_factor"],
        guard_runs=options["guard_runs"], guard_minimum=options["guard_min_runs"], resolve=options["resolve"],
        lookups={"benefits": options["lookup_benefits"], "redemptions": options["lookup_redemptions"],
                 "claim_redeem": options["lookup_claim_redeem"]},
    )
    context = RunContext(out_dir=out_dir, keeps_run=True, progress=log.progress())
    try:
        result = push.run(context, settings, token, log.progress())
    finally:
        context.close()
    _echo_push(log, result, dry_run)
    if result.exit_status:
        sys.exit(result.exit_status)


def _echo_push(log: Log, result, dry_run: bool) -> None:
    if result.guard:
        log.event("guard", f"guard: {result.guard}", guard=result.guard)
    if dry_run:
        for kind, verdicts in result.plan.items():
            log.event("dry_run", f"{kind:<13} " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())),
                      kind=kind, verdicts=dict(verdicts))
        log.event("dry_run_checked", f"{result.calls} calls checked; nothing was sent", calls=result.calls)
        return
    for kind, states in result.by_kind.items():
        log.event("pushed", f"{kind:<13} " + ", ".join(f"{n} {s}" for s, n in states.items() if n), kind=kind, **states)
    if result.rejected_benefits:
        log.event("rejected_benefits", f"{result.rejected_benefits} benefits rejected by Omneo: the next run may "
                  "issue them again", benefits=result.rejected_benefits)
    if result.stopped:
        log.event("push_stopped", f"push stopped early: {result.stopped}; rerun to resume", reason=result.stopped)
    for key in result.review:
        log.event("needs_review", f"return {key} has an unknown outcome and is never resent: check it in Omneo, "
                  f"then push --resolve {key}=sent (or =pending to send it)", key=key)
    log.event("push_finished", f"push: {result.posts} calls sent and {result.lookups} lookups in {result.seconds:.1f} s; "
              f"exit {result.exit_status}", requests=result.posts, lookups=result.lookups, seconds=result.seconds,
              exit_status=result.exit_status, **result.counts)


@main.command("report")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A finished run folder (one with manifest.json).")
@reports_errors
def report_command(log: Log, out_dir: Path) -> None:
    """Rebuild warehouse.duckdb, report.html and report.md of a finished run.

    \b
    Example:
      omneo-bulk report --out runs/sample
    """
    from pipeline import report

    report.rebuild(out_dir)
    _echo_report(log, out_dir)


@main.command("query")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The run folder whose warehouse.duckdb to query.")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="table for people, csv or json (an array of objects) for programs.")
@click.argument("sql")
@reports_errors
def query_command(log: Log, out_dir: Path, output_format: str, sql: str) -> None:
    """Run SQL, read-only, against a run's warehouse: every output is a view.

    \b
    Example:
      omneo-bulk query --out runs/sample "SELECT category, count(*) FROM exceptions GROUP BY ALL"
      omneo-bulk query --out runs/sample --format csv "SELECT * FROM plan WHERE decision = 'issue'"
    """
    from pipeline import warehouse

    con = warehouse.connect(out_dir)
    try:
        warehouse.write_result(con, sql, output_format, sys.stdout)
    finally:
        con.close()


@main.command("generate")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the exports, campaigns.toml and truth/ into (created if missing).")
@click.option("--profiles", type=click.IntRange(min=100), required=True, help="How many customer profiles.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same files.")
@click.option("--format", "file_format", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True,
              help="File format of the exports.")
@click.option("--as-of", help="The night the data leads up to [default: 2026-11-22T09:00:00+11:00].")
@click.option("--memory-limit", help="DuckDB memory limit, e.g. 4GB [default: a sixth of RAM].")
@click.option("--threads", type=click.IntRange(min=1), help="DuckDB threads [default: all cores].")
@reports_errors
def generate_command(log: Log, out_dir: Path, profiles: int, seed: int, file_format: str, as_of: str | None,
                     memory_limit: str | None, threads: int | None) -> None:
    """Write realistic synthetic exports with planted anomalies listed in truth/.

    \b
    Example:
      omneo-bulk generate --out data/demo --profiles 20000 --seed 7
      omneo-bulk run --input data/demo --campaigns data/demo/campaigns.toml \\
          --out runs/demo --as-of 2026-11-22T09:00:00+11:00
    """
    from pipeline import generate
    from pipeline.context import parse_as_of

    result = generate.generate(
        out_dir, profiles=profiles, seed=seed, file_format=file_format,
        as_of=parse_as_of(as_of or generate.DEFAULT_AS_OF), memory_limit=memory_limit, threads=threads,
    )
    for dataset, rows in result.rows.items():
        log.event("dataset_generated", f"{dataset:<20} {rows:>10} rows", dataset=dataset, rows=rows)
    log.event("truth_written", f"{sum(result.anomalies.values())} planted anomalies and "
              f"{sum(result.invalid.values())} invalid rows listed in {out_dir / 'truth'}",
              anomalies=result.anomalies, invalid=result.invalid, path=str(out_dir / "truth"))


if __name__ == "__main__":  # pragma: no cover
    main()
