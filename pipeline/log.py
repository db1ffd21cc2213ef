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


class Silent:
    """Progress that shows nothing: the default for a library call, a pipe or --quiet."""

    @contextmanager
    def stage(self, name: str, total: int) -> Iterator[Advance]:
        yield lambda label: None


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


class Log:
    """Result lines and errors in the chosen format; picks the progress display to match."""

    def __init__(self, log_format: str = "text", quiet: bool = False) -> None:
        self.json = log_format == "json"
        self.quiet = quiet

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
            click.echo(self._json("info", event, message, fields))
        else:
            click.echo(message)

    def error(self, message: str, hint: str | None = None, *, event: str = "error") -> None:
        """An error, always shown (even with --quiet), on stderr."""
        if self.json:
            fields = {"hint": hint} if hint else {}
            click.echo(self._json("error", event, message, fields), err=True)
            return
        click.echo(f"{'internal error' if event == 'internal_error' else 'error'}: {message}", err=True)
        if hint:
            click.echo(f"hint: {hint}", err=True)

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
