"""`omneo-bulk push`: deliver a finished run's payload files to Omneo, each call exactly once.

Reads the calls the run's manifest lists, journals them in the state folder, settles what
a killed or failed push left unknown, sends the rest under the rate, feeds the benefits
Omneo refused back to the issuance state, then commits push/results.parquet and rebuilds
the report. See docs/push.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import __version__, history, report, state
from pipeline.context import RunContext
from pipeline.errors import GuardRefused, PushError
from pipeline.log import Silent
from pipeline.push import calls as payload
from pipeline.push.journal import FILE as JOURNAL_FILE
from pipeline.push.journal import STATES, Journal
from pipeline.push.sender import Sender, Settings

RESULTS = "push/results.parquet"
TOKEN = re.compile(r"[\x21-\x7e]+")  # what a Bearer token in an HTTP header may be
JOURNAL = Path("push") / JOURNAL_FILE  # inside the state folder

# Exit statuses (docs/push.md): every call sent; some rejected; some not done yet.
DONE, SOME_REJECTED, INCOMPLETE = 0, 3, 4


@dataclass(frozen=True)
class Options:
    """What `push` was asked to do."""

    state_dir: Path
    base_url: str | None
    kinds: tuple[str, ...] = payload.KINDS
    rate: float = 10.0
    concurrency: int = 4
    timeout: float = 30.0
    patience: float = 900.0
    queue_wait: float = 120.0
    dry_run: bool = False
    max_calls: int | None = None
    force: bool = False
    guard_factor: float = 3.0
    guard_runs: int = 7
    guard_minimum: int = 3
    lookups: dict[str, str] = field(default_factory=lambda: dict(payload.LOOKUPS))
    resolve: dict[str, str] = field(default_factory=dict)  # key -> sent | pending, an operator's word


@dataclass
class PushResult:
    """What the push found and did; `exit_status` is the command's."""

    calls: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # state -> calls of the run, after this push
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    posts: int = 0
    lookups: int = 0
    rejected_benefits: int = 0
    review: list[str] = field(default_factory=list)  # returns of unknown outcome: keys for a person
    stopped: str | None = None  # why the push stopped taking calls before the end (--patience)
    plan: dict[str, Counter] = field(default_factory=dict)  # --dry-run: kind -> what would happen
    guard: str | None = None
    seconds: float = 0.0

    @property
    def exit_status(self) -> int:
        if any(self.counts.get(s, 0) for s in ("pending", "in_flight", "ambiguous")):
            return INCOMPLETE
        return SOME_REJECTED if self.counts.get("rejected", 0) else DONE


def read_token(token_file: Path | None) -> str:
    """The API token: `--token-file` (readable by its owner only) or OMNEO_TOKEN. Never an option."""
    if token_file is not None:
        try:
            info = token_file.stat()
            if info.st_uid != os.getuid() or info.st_mode & 0o077:
                raise PushError(f"--token-file {token_file}: others may read it; make it yours alone "
                                f"(chmod 600 {token_file})")
            token = token_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise PushError(f"--token-file {token_file}: no such file") from None
        except (OSError, UnicodeDecodeError) as error:
            raise PushError(f"--token-file {token_file}: cannot be read ({type(error).__name__})") from None
        if not token:
            raise PushError(f"--token-file {token_file}: empty")
    else:
        token = os.environ.get("OMNEO_TOKEN", "").strip()
        if not token:
            raise PushError("no API token: set OMNEO_TOKEN, or pass --token-file FILE (readable only by you)")
    where = f"--token-file {token_file}" if token_file is not None else "OMNEO_TOKEN"
    if not TOKEN.fullmatch(token):
        # Never echoed: a header can carry only visible ASCII, and the token is a secret.
        raise PushError(f"the token in {where} holds a space, a line break or a character that is not ASCII, "
                        "which an HTTP header cannot carry; check it (it is not shown)")
    return token


def state_folder(run_dir: Path, manifest: dict, given: Path | None) -> Path:
    """The state folder to push with: --state, else the one the run issued with, else the default.

    The run records its state folder as an absolute path and relative to itself, so a
    project moved as a whole still finds it. A recorded folder that is gone is a fault:
    a push with an empty journal would send every call again.
    """
    if given is not None:
        return given
    issued = next((s for s in manifest.get("stages", []) if s.get("stage") == "issue"), {})
    recorded, relative = issued.get("state"), issued.get("state_relative")
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    if relative and (run_dir / relative).is_dir():
        return (run_dir / relative).resolve()
    if recorded:
        raise PushError(f"the state folder run {manifest['run_id']} issued with ({recorded}) is not there; "
                        "pass --state with its place (it holds the journal of what was already sent)")
    return run_dir.resolve().parent / ".omneo-bulk"


def run(context: RunContext, options: Options, token: str | None, progress: Silent | None = None) -> PushResult:
    """Push the run folder of `context` (not yet opened; keeps_run). Raises PushError, AuthError.

    Holds the state folder first, then the run folder (docs/runs.md), for the whole push.
    """
    if options.dry_run:
        context.open()
        return _plan(context, options)
    with state.locked(options.state_dir):
        context.open()
        return _push(context, options, token, progress or Silent())


def _calls(context: RunContext, options: Options) -> tuple[list[payload.Call], PushResult]:
    """The run's calls of the asked kinds, its files checked whole; the guard's verdict."""
    if context.status != "complete":
        raise PushError(f"{context.out_dir}: run {context.run_id} did not finish ({context.status}); "
                        "rerun it into the same --out first, then push")
    for path, output in context.outputs.items():
        kind = path.split("/")[1] if path.startswith("payloads/") else None
        if kind in options.kinds and _sha256(context.out_dir / path) != output["sha256"]:
            raise PushError(f"{context.out_dir / path}: changed since the run wrote it (its sha256 is not the "
                            "manifest's); payloads are never edited by hand: rerun the run. Nothing was sent")
    calls = payload.read(context.out_dir, list(context.outputs), context.run_id, options.kinds)
    result = PushResult(calls=len(calls))
    tonight = sum(c.benefits for c in calls)
    result.guard = history.guard(options.state_dir, context.run_id, tonight, factor=options.guard_factor,
                                 runs=options.guard_runs, minimum=options.guard_minimum)
    return calls, result


def _push(context: RunContext, options: Options, token: str, progress: Silent) -> PushResult:
    started = time.perf_counter()
    calls, result = _calls(context, options)
    if result.guard and not options.force:
        raise GuardRefused(result.guard)
    journal_path = options.state_dir / JOURNAL
    pushed = context.stages.get("push")
    if pushed and not journal_path.exists():
        raise PushError(_unknown_to(context, pushed, journal_path))
    journal = Journal(journal_path, secrets=(token,))
    try:
        if pushed and not journal.knows(context.run_id):
            raise PushError(_unknown_to(context, pushed, journal_path))
        journal.register(context.run_id, (c.record() for c in calls))
        for key, decision in options.resolve.items():
            journal.resolve(key, decision)
        settings = Settings(
            base_url=options.base_url, token=token, user_agent=f"omneo-bulk/{__version__}", rate=options.rate,
            concurrency=options.concurrency, timeout=options.timeout, patience=options.patience,
            max_calls=options.max_calls, lookups=options.lookups, queue_wait=options.queue_wait,
        )
        to_do = sum(1 for e in journal.entries(context.run_id, ("pending", "in_flight", "ambiguous"))
                    if e.kind in options.kinds)
        with progress.counter("push", to_do) as tick:
            sender = Sender(settings, journal, payload.Bodies(context.out_dir), lambda entry, outcome: tick(outcome))
            try:
                asyncio.run(sender.run(context.run_id, options.kinds))
            finally:
                result.posts, result.lookups, result.stopped = sender.posts, sender.lookups, sender.given_up
                _finish(context, options, journal, result, started)
    finally:
        journal.close()
    return result


def _unknown_to(context: RunContext, pushed: dict, journal: Path) -> str:
    return (f"run {context.run_id} was pushed before with the journal in {pushed.get('state', 'another state folder')}, "
            f"and {journal} knows nothing of it: pass --state with that folder (moved? restore it); with an empty "
            "journal every call would be sent again")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _finish(context: RunContext, options: Options, journal: Journal, result: PushResult, started: float) -> None:
    """Whatever happened: tell the state what Omneo refused, commit the results, rebuild the report."""
    rejected = journal.rejected_benefits(context.run_id)
    result.rejected_benefits = len(rejected)
    if rejected:
        state.forget(context.con, options.state_dir, context.run_id, sorted(rejected))
    entries = journal.entries(context.run_id)
    # The exit status speaks for the kinds this push was asked to send; the results list all.
    result.counts = dict.fromkeys(STATES, 0)
    for entry in entries:
        result.by_kind.setdefault(entry.kind, dict.fromkeys(STATES, 0))[entry.state] += 1
        if entry.kind in options.kinds:
            result.counts[entry.state] += 1
    result.review = [e.key for e in entries if e.kind == "returns" and e.state in ("ambiguous", "in_flight")]
    result.seconds = round(time.perf_counter() - started, 3)
    _write_results(context, entries)
    record = {
        "seconds": result.seconds,
        "base_url": options.base_url,
        "kinds": list(options.kinds),
        "calls": len(entries),
        "states": result.counts,
        "by_kind": result.by_kind,
        "requests_sent": result.posts,
        "lookups": result.lookups,
        "rejected_benefits": result.rejected_benefits,
        "returns_for_review": result.review,
        "stopped": result.stopped,
        "state": str(options.state_dir.resolve()),
        "exit_status": result.exit_status,
    }
    context.commit("push", record, replaces=("push/",))
    context.close_connection()
    report.run(context)


def _write_results(context: RunContext, entries: list) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {
        "kind": pa.string(), "file": pa.string(), "line": pa.int64(), "key": pa.string(), "state": pa.string(),
        "status": pa.int64(), "attempts": pa.int64(), "latency_ms": pa.float64(), "error": pa.string(),
        "response_id": pa.string(), "parent": pa.string(), "updated_at": pa.string(),
    }
    rows = [{"kind": e.kind, "file": e.file, "line": e.line, "key": e.key, "state": e.state,
             "status": e.http_status, "attempts": e.attempts, "latency_ms": e.latency_ms, "error": e.error,
             "response_id": e.response_id, "parent": e.parent, "updated_at": e.updated_at} for e in entries]
    table = pa.Table.from_pylist(rows, schema=pa.schema(columns))
    pq.write_table(table, context.staged_path(RESULTS), compression="zstd")
    context.stage_output(RESULTS, len(rows))


def _plan(context: RunContext, options: Options) -> PushResult:
    """--dry-run: what a push would do, from the journal alone; nothing is written, nothing sent."""
    calls, result = _calls(context, options)
    known = Journal.read_only_states(options.state_dir / JOURNAL)
    for call in calls:
        entry = known.get(call.key)
        if entry is None:
            verdict = "send"
        elif entry[1] != call.body_sha256:
            raise PushError(f"{call.file} line {call.line}: idempotency key {call.key} was journaled with another "
                            "body; the same key must be the same call")
        elif entry[0] in ("sent", "rejected"):
            verdict = f"skip ({entry[0]})"
        elif entry[0] in ("ambiguous", "in_flight"):
            verdict = "review (unknown outcome, never resent)" if call.kind == "returns" else "resolve by lookup"
        else:
            verdict = "send"
        result.plan.setdefault(call.kind, Counter())[verdict] += 1
    return result
