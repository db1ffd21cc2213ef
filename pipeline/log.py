"""What a command tells the person or the scheduler that runs it: progress, results, errors.

Three ways to speak, chosen once per command:

- on a terminal, rich progress bars (on stderr) while stages run, then plain result lines;
- off a terminal (cron, CI, a pipe), no progress at all, only the result lines;
- `--log-format json`: every line, on stdout or stderr, is one JSON object, for schedulers;
- `--quiet`: nothing but errors.

Stages never print: they call `context.progress.stage(...)`, which is silent by default.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TextIO

import click

Advance = Callable[[str], None]


Tick = Callable[[str], None]


class Silent:
    """Progress that shows nothing: the default for a library call, a pipe or --quiet."""

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator[Advance]:
        yield lambda label: None

    @contextmanager
    def counter(self, name: str, total: int) -> Iterator[Tick]:
        """Progress over `total` items (API calls), each `tick(outcome)` one done."""
        yield lambda outcome: None


class Bars(Silent):
    """rich progress bars on stderr, one per stage, each step named as it starts."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from rich.console import Console

        self.console = Console(file=stream or sys.stderr)

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator[Advance]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=False) as bars:
            task = bars.add_task(name, total=total)
            started = [False]

            def advance(label: str) -> None:
                # A step is announced as it starts; the bar moves when the next one starts.
                if started[0]:
                    bars.advance(task)
                started[0] = True
                bars.update(task, description=f"{name}: {label}")

            yield advance
            bars.update(task, completed=total, description=name)

    @contextmanager
    def counter(self, name: str, total: int) -> Iterator[Tick]:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                   TextColumn("{task.speed:.1f}/s" if total else ""), TimeElapsedColumn(), TextColumn("ETA"),
                   TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=False) as bars:
            task = bars.add_task(name, total=total)
            yield lambda outcome: bars.advance(task)


class JsonEvents(Silent):
    """One JSON object per step on stdout, so a scheduler sees where a long run is."""

    def __init__(self, log: Log) -> None:
        self.log = log

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator[Advance]:
        started = time.perf_counter()
        step = [0]
        self.log.event("stage_started", f"{name} started", stage=name, steps=total)

        def advance(label: str) -> None:
            step[0] += 1
            self.log.event("stage_step", f"{name}: {label}", stage=name, step=step[0], steps=total, label=label)

        yield advance
        self.log.event("stage_finished", f"{name} finished", stage=name,
                       seconds=round(time.perf_counter() - started, 3))

    @contextmanager
    def counter(self, name: str, total: int, every: float = 2.0) -> Iterator[Tick]:
        """A `progress` event at most every `every` seconds: done, total, rate, ETA, outcomes."""
        started = last = time.perf_counter()
        done, outcomes = [0], {}

        def emit(final: bool = False) -> None:
            elapsed = time.perf_counter() - started
            rate = done[0] / elapsed if elapsed > 0 else 0.0
            eta = (total - done[0]) / rate if rate and total >= done[0] else None
            self.log.event("progress", f"{name}: {done[0]}/{total}", stage=name, done=done[0], total=total,
                           rate=round(rate, 2), eta_seconds=None if eta is None else round(eta, 1),
                           outcomes=dict(outcomes), final=final)

        def tick(outcome: str) -> None:
            nonlocal last
            done[0] += 1
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if time.perf_counter() - last >= every:
                last = time.perf_counter()
                emit()

        yield tick
        emit(final=True)


class Log:
    """Result lines and errors in the chosen format; picks the progress display to match."""

    def __init__(self, log_format: str = "text", quiet: bool = False) -> None:
        self.json = log_format == "json"
        self.quiet = quiet
        self._secrets: list[str] = []

    def hide(self, secret: str) -> None:
        """Never print `secret` (the API token): every line is masked, whatever put it there."""
        if secret:
            self._secrets.append(secret)

    def _masked(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def progress(self) -> Silent:
        if self.quiet:
            return Silent()
        if self.json:
            return JsonEvents(self)
        return Bars() if sys.stderr.isatty() else Silent()

    def event(self, event: str, message: str, **fields: object) -> None:
        """A result or a step: `message` as a line of text, or a JSON object with `fields`."""
        if self.quiet:
            return
        if self.json:
            click.echo(self._masked(self._json("info", event, message, fields)))
        else:
            click.echo(self._masked(message))

    def passed_on(self, line: str) -> None:
        """A line another program wrote (Spark's JVM), on stderr: as it is, or as a JSON object."""
        if self.json:
            click.echo(self._masked(self._json("warning", "spark_output", line, {})), err=True)
        else:
            click.echo(self._masked(line), err=True)

    def error(self, message: str, hint: str | None = None, *, event: str = "error") -> None:
        """An error, always shown (even with --quiet), on stderr."""
        if self.json:
            fields = {"hint": hint} if hint else {}
            click.echo(self._masked(self._json("error", event, message, fields)), err=True)
            return
        click.echo(self._masked(f"{'internal error' if event == 'internal_error' else 'error'}: {message}"), err=True)
        if hint:
            click.echo(self._masked(f"hint: {hint}"), err=True)

    @staticmethod
    def _json(level: str, event: str, message: str, fields: dict) -> str:
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "level": level,
            "event": event,
            "message": message,
            **fields,
        }
        return json.dumps(record, default=str, ensure_ascii=False)
