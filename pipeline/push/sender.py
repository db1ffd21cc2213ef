"""Sending a run's calls to Omneo: paced, retried only where that is safe, every outcome journaled.

A call moves pending → in_flight (durably, before its request leaves) → sent, rejected or
ambiguous. What is retried, and how, is declared once (`_retryable`): a request that never
reached Omneo (refused, DNS, connect timeout) and a 429 are retried with backoff and
jitter; a 5xx, a read timeout or a reset after the request left are *ambiguous* and never
resent blindly: each is resolved by looking its external_ids up first (docs/push.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus

import httpx
import stamina

from pipeline import failpoints
from pipeline.errors import AuthError, PushError
from pipeline.push import calls as payload
from pipeline.push.journal import Entry, Journal

# Retries are reported by this program's own log lines; stamina's warnings would print into them.
stamina.instrumentation.set_on_retry_hooks([])

ROUNDS = 8  # resolve-then-send rounds in one push; each round leaves fewer calls unknown
# Pacing slack: calls leave 2% further apart than 1/rate, so that the few milliseconds a
# request spends on the wire never put rate + 1 of them inside one second at Omneo.
SLACK = 1.02


@dataclass(frozen=True)
class Settings:
    """How to reach Omneo and how hard to push."""

    base_url: str
    token: str = field(repr=False)  # never printed, logged or written
    user_agent: str
    rate: float = 10.0  # calls per second, at most
    concurrency: int = 4
    timeout: float = 30.0  # seconds for one request
    patience: float = 900.0  # seconds one call keeps being retried (refused, 429) before the push gives up on it
    max_calls: int | None = None  # POST requests this push may make
    # Omneo's batch endpoint only queues its benefits: a lookup right after an unknown
    # outcome may miss benefits still in the queue. A batch is looked up only this many
    # seconds after it was sent (docs/push.md).
    queue_wait: float = 120.0
    lookups: dict[str, str] = field(default_factory=lambda: dict(payload.LOOKUPS))


class NotSent(Exception):
    """The request never reached Omneo: retrying cannot apply anything twice."""


class TooManyRequests(Exception):
    """Omneo answered 429; `pause` is how long every worker waits now."""

    def __init__(self, pause: float) -> None:
        super().__init__(f"429 Too Many Requests (waiting {pause:.1f} s)")
        self.pause = pause


class LookupFailed(Exception):
    """A lookup did not answer, or answered something that proves nothing: the call stays ambiguous."""


class GiveUp(Exception):
    """Omneo asks for more patience than --patience allows (unreachable, or a Retry-After
    beyond it): the call stays pending and the push stops taking new ones."""


def _retryable(error: Exception) -> bool | float:
    """The retry policy, in one place: what may be sent again, and after how long.

    GiveUp, AuthError, PushError and every outcome are not retried here."""
    if isinstance(error, TooManyRequests):
        return error.pause  # the gate already holds every worker that long
    return isinstance(error, NotSent)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for: a number of seconds or an HTTP date; None if neither."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is true, and float("²") fails
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    now = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, moment.timestamp() - now)


class Gate:
    """Every request passes here: paced at the current rate, held while Omneo asks us to wait.

    A 429 pauses all workers (for its Retry-After, or a growing backoff when it gives none or
    0) and halves the rate; after a run of successes the rate climbs back to the ceiling.
    """

    def __init__(self, rate: float) -> None:
        self.ceiling = rate
        self.rate = rate
        self.next_at = 0.0  # the earliest moment the next request may leave
        self.resume_at = 0.0
        self.streak = 0  # successes since the last change of rate
        self.throttled = 0  # 429s in a row, for the backoff

    async def enter(self) -> None:
        """Wait for this request's slot: 1/rate after the last one left, and no pause running.

        One slot at a time, never a burst. The slot is taken with no await between the check
        and the claim (asyncio runs one worker at a time), and a change of rate keeps the
        last departure: a fresh limiter for each new rate (aiolimiter, before) let the next
        request leave at once, two in a few milliseconds.
        """
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            start = max(self.next_at, self.resume_at)
            if start <= now:
                self.next_at = now + SLACK / self.rate
                return
            await asyncio.sleep(start - now)

    def too_many(self, asked: float | None) -> float:
        """Omneo answered 429: pause everyone, slow down; return the pause."""
        self.throttled += 1
        pause = asked if asked else min(60.0, 0.5 * 2 ** (self.throttled - 1)) * random.uniform(1.0, 1.5)
        loop = asyncio.get_running_loop()
        self.resume_at = max(self.resume_at, loop.time() + pause)
        self._set_rate(max(self.ceiling / 32, self.rate / 2))
        return pause

    def succeeded(self) -> None:
        self.throttled = 0
        self.streak += 1
        if self.rate < self.ceiling and self.streak >= 10:
            self._set_rate(min(self.ceiling, self.rate * 1.5))

    def _set_rate(self, rate: float) -> None:
        self.rate, self.streak = rate, 0


@dataclass
class Outcome:
    state: str
    http_status: int | None = None
    response_id: str | None = None
    error: str | None = None
    latency_ms: float | None = None
    item_errors: dict[int, str] = field(default_factory=dict)  # batch index -> Omneo's message


Progress = Callable[[Entry, str], None]


class Sender:
    """Delivers one run's journaled calls; safe to stop at any point and start again."""

    def __init__(self, settings: Settings, journal: Journal, bodies: payload.Bodies,
                 progress: Progress = lambda entry, state: None) -> None:
        self.settings = settings
        self.journal = journal
        self.bodies = bodies  # reads a call's body from its payload file when it is sent
        self.progress = progress
        self.gate = Gate(settings.rate)
        self.posts = 0  # POST requests that left, for --max-calls
        self.reserved = 0  # POSTs about to leave or gone: the budget is taken before the gate
        self.lookups = 0  # GET requests made to settle unknown outcomes
        self.run_id = ""
        self.last_answer = time.monotonic()  # Omneo's last answer of any kind, for --patience
        self.given_up: str | None = None  # why the push stopped taking calls, once it has
        self.client: httpx.AsyncClient | None = None
        self.in_flight: asyncio.Semaphore | None = None  # --concurrency requests at once, lookups included

    @property
    def out_of_budget(self) -> bool:
        return self.settings.max_calls is not None and self.reserved >= self.settings.max_calls

    def _patience_left(self) -> float:
        """Seconds left before Omneo has been silent (or made us wait) longer than --patience."""
        return self.settings.patience - (time.monotonic() - self.last_answer)

    async def run(self, run_id: str, kinds: tuple[str, ...] = payload.KINDS) -> None:
        """Resolve what is unknown, send what is pending, of `kinds`; repeat while that makes progress."""
        self.run_id = run_id
        self.journal.interrupted()
        headers = {"Authorization": f"Bearer {self.settings.token}", "User-Agent": self.settings.user_agent,
                   "Accept": "application/json", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=self.settings.concurrency,
                              max_keepalive_connections=self.settings.concurrency)
        async with httpx.AsyncClient(base_url=self.settings.base_url, headers=headers, limits=limits,
                                     timeout=httpx.Timeout(self.settings.timeout), follow_redirects=False,
                                     trust_env=False) as client:
            self.client = client
            self.in_flight = asyncio.Semaphore(self.settings.concurrency)
            # One kind after another, as the contract orders them: every call of a kind has
            # its answer (or is left unknown for a later push) before the next kind's first
            # call. One queue for all kinds let the workers overlap at each boundary, and a
            # call retried in a later round arrived after calls of the kinds behind it.
            for kind in kinds:
                for _ in range(ROUNDS):
                    await self._each(self._entries(kind, "ambiguous"), self._resolve)
                    pending = self._entries(kind, "pending")
                    if not pending or self.out_of_budget or self.given_up:
                        break
                    before = self.journal.counts(run_id)
                    await self._each(pending, self._deliver)
                    if self.journal.counts(run_id) == before:
                        break  # nothing moved (Omneo unreachable): rerun later
                if self.out_of_budget or self.given_up:
                    return

    def _entries(self, kind: str, state: str) -> list[Entry]:
        return [e for e in self.journal.entries(self.run_id, (state,)) if e.kind == kind]

    async def _each(self, entries: list[Entry], work: Callable[[Entry], Awaitable[None]]) -> None:
        queue = deque(entries)

        async def worker() -> None:
            while queue:
                await work(queue.popleft())

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.settings.concurrency, len(queue))):
                    group.create_task(worker())
        except* BaseException as failed:  # one worker's fault, as itself (AuthError above all)
            raise failed.exceptions[0] from None

    # Sending ------------------------------------------------------------------------------

    async def _deliver(self, entry: Entry) -> None:
        if self.out_of_budget or self.given_up:
            return
        body = entry.body if entry.body is not None else self.bodies(entry.file, entry.line, entry.body_sha256)
        try:
            async for attempt in stamina.retry_context(
                on=_retryable, attempts=None, timeout=self.settings.patience, wait_initial=0.5, wait_max=30.0
            ):
                with attempt:
                    outcome = await self._post(entry, body)
                    if outcome is None:
                        return  # the budget ran out while this call waited for the gate
        except (NotSent, TooManyRequests, GiveUp) as error:
            if isinstance(error, GiveUp):
                self.given_up = str(error)
            self.journal.finish(entry.key, "pending", error=f"not sent: {error}; rerun to resume")
            self.progress(entry, "pending")
            return
        except PushError:  # AuthError or a fault of the address: nothing was applied
            self.journal.finish(entry.key, "pending", error="not applied: the push stopped")
            raise
        self._record(entry, body, outcome)

    async def _post(self, entry: Entry, body: str) -> Outcome | None:
        if self.out_of_budget:
            return None
        self.reserved += 1  # taken now: every worker waiting at the gate counts against --max-calls
        async with self.in_flight:
            try:
                await self._enter()
            except BaseException:
                self.reserved -= 1
                raise
            self.journal.start(entry.key)  # durable before the request leaves
            failpoints.reach("push_in_flight")
            started = time.monotonic()
            try:
                return await self._post_now(entry, body, started)
            except NotSent:
                self.reserved -= 1  # it never left: no request was made
                raise

    async def _enter(self) -> None:
        """Through the gate, unless Omneo has been silent for longer than --patience."""
        if self.given_up:
            raise GiveUp(self.given_up)
        if self._patience_left() <= 0:
            raise GiveUp(f"no answer from Omneo for {self.settings.patience:.0f} s (--patience)")
        await self.gate.enter()

    async def _post_now(self, entry: Entry, body: str, started: float) -> Outcome:
        try:
            # httpx's timeout bounds each read, not the answer: a server that trickles a byte
            # a second held one call, and the push with it, for as long as it liked.
            response = await asyncio.wait_for(
                self.client.post(entry.path, content=body.encode("utf-8"), headers={"Idempotency-Key": entry.key}),
                self.settings.timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise NotSent(_describe(error)) from None
        except TimeoutError:
            self.posts += 1
            return Outcome("ambiguous", error=f"no whole answer within --timeout {self.settings.timeout:g} s "
                                              "after the request was sent", latency_ms=_ms(started))
        except httpx.RequestError as error:  # sent, then timed out, reset, cut or undecodable: unknown
            self.posts += 1
            return Outcome("ambiguous", error=f"{_describe(error)} after the request was sent",
                           latency_ms=_ms(started))
        self.posts += 1
        self.last_answer = time.monotonic()
        failpoints.reach("push_answered")
        return self._classify(response, started)

    def _wait(self, response: httpx.Response) -> float:
        """A 429: every worker pauses; beyond --patience the push gives up instead of sleeping."""
        pause = self.gate.too_many(retry_after(response.headers.get("Retry-After")))
        if pause > self._patience_left():
            self.given_up = f"Omneo asks to wait {pause:.0f} s (Retry-After), beyond --patience"
            raise GiveUp(self.given_up)
        return pause

    def _classify(self, response: httpx.Response, started: float) -> Outcome:
        status, latency = response.status_code, _ms(started)
        if status == 429:
            raise TooManyRequests(self._wait(response))
        if status in (401, 403):
            # Our own words only: a reason phrase is the server's, and could echo a header.
            raise AuthError(
                f"Omneo answered {status} {_phrase(status)} to {response.request.url.path}: the token "
                "(OMNEO_TOKEN or --token-file) is missing, wrong or not allowed this call; nothing more was sent"
            )
        if status == 408:
            raise NotSent("408 Request Timeout (Omneo did not read the request)")
        if 300 <= status < 400:
            raise PushError(
                f"{response.request.url.scheme}://{response.request.url.host}{_port(response)} answered {status} "
                f"{_phrase(status)}, a redirect, to {response.request.url.path}: --base-url is not Omneo's API "
                "address itself (a redirect is never followed with the token); nothing was applied"
            )
        document = _json(response)
        if 200 <= status < 300:
            if document is None:
                # Not Omneo's JSON (a proxy or web page answered): whether it was applied is unknown.
                return Outcome("ambiguous", status, error=f"{status} without Omneo's JSON body", latency_ms=latency)
            self.gate.succeeded()
            data = document.get("data") if isinstance(document.get("data"), dict) else {}
            found = document.get("batch_id", data.get("id"))
            return Outcome("sent", status, None if found is None else str(found), latency_ms=latency)
        message = _message(document or {}, status)
        if status >= 500:
            return Outcome("ambiguous", status, error=message, latency_ms=latency)
        if document is None:
            # Omneo refuses in JSON. A 4xx web page (a --base-url with a wrong path, a proxy)
            # is not Omneo judging the call: marked rejected, a whole night's benefits were
            # dropped from the state and no later push could send them.
            raise PushError(
                f"{response.request.url.scheme}://{response.request.url.host}{_port(response)} answered {status} "
                f"{_phrase(status)} to {response.request.url.path} without Omneo's JSON error body: --base-url does "
                "not look like Omneo's API (a web server or proxy answered); nothing was marked rejected"
            )
        return Outcome("rejected", status, error=message, latency_ms=latency,
                       item_errors=_item_errors(document))

    def _record(self, entry: Entry, body: str, outcome: Outcome) -> None:
        rejected = remainder = None
        if outcome.state == "rejected" and entry.kind == "benefits":
            rejected, remainder = self._reject_benefits(entry, json.loads(body), outcome)
        self.journal.settle(entry.key, outcome.state, rejected=rejected, remainder=remainder,
                            http_status=outcome.http_status, response_id=outcome.response_id, error=outcome.error,
                            latency_ms=outcome.latency_ms)
        self.progress(entry, outcome.state)

    def _reject_benefits(self, entry: Entry, body: dict, outcome: Outcome) -> tuple[tuple, tuple | None]:
        """A refused benefits call: the benefits Omneo named are rejected, the rest go again.

        Omneo validates a whole batch and applies none of it when one item is bad; its 422
        names the bad items (`benefits.<i>.<field>`). One bad profile must not hold back 499
        good ones, so those are resent as a new call. With no item named, all are rejected.
        Returns what `Journal.settle` records with the call's outcome: the rejections, and the
        new call of the rest (None when nothing is left).
        """
        items = body["benefits"] if "benefits" in body else [body]
        named = {i: m for i, m in outcome.item_errors.items() if 0 <= i < len(items)} if "benefits" in body else {}
        bad = named or {i: outcome.error or "rejected" for i in range(len(items))}
        rejected = (entry, {items[i]["external_id"]: message for i, message in bad.items()})
        if len(bad) == len(items):
            return rejected, None
        outcome.error = f"{outcome.error}; {len(bad)} of {len(items)} benefits rejected, the rest resent"
        return rejected, self._remainder(entry, body, {items[i]["external_id"] for i in bad})

    def _remainder(self, entry: Entry, body: dict, leave_out: set[str]) -> tuple[Entry, str, str, str, str]:
        """The call of `body` less `leave_out`, keyed after its parent, for `Journal.settle`."""
        rest = payload.body_text(payload.without(body, leave_out))
        key = f"{entry.key}~{self.journal.children(entry.key) + 1}"
        return entry, self.run_id, key, rest, _sha256(rest)

    # Resolving an unknown outcome ----------------------------------------------------------

    async def _resolve(self, entry: Entry) -> None:
        """Look the call's external_ids up: found is sent, absent is sent again, never both."""
        body = json.loads(entry.body if entry.body is not None else self.bodies(entry.file, entry.line, entry.body_sha256))
        targets = payload.targets(entry.kind, entry.path, body, self.settings.lookups)
        if not targets:
            return  # a return cannot be looked up or made idempotent: it waits for a person
        if entry.path.endswith("batch.json"):
            await _until(datetime.fromisoformat(entry.updated_at).timestamp() + self.settings.queue_wait)
        try:
            found = await asyncio.gather(*(self._exists(target) for target in targets))
        except LookupFailed as error:
            unknown = (entry.error or "").split("; lookup failed: ")[0]
            self.journal.finish(entry.key, "ambiguous", error=f"{unknown}; lookup failed: {error}")
            return
        applied = {t.external_id for t, exists in zip(targets, found) if exists}
        failpoints.reach("push_resolved")
        if len(applied) == len(targets):
            self.journal.finish(entry.key, "sent", error=f"found by lookup after: {entry.error}")
            self.progress(entry, "sent")
        elif not applied:
            self.journal.finish(entry.key, "pending", error=f"not applied (lookup), sent again after: {entry.error}")
        else:
            remainder = self._remainder(entry, body, applied)
            self.journal.settle(entry.key, "sent", remainder=remainder,
                                error=f"{len(applied)} of {len(targets)} applied (lookup); "
                                      f"the rest sent again as {remainder[2]}")
            self.progress(entry, "sent")

    async def _exists(self, target: payload.Target) -> bool:
        try:
            # A GET is cheap and changes nothing: retried sooner than a call.
            async for attempt in stamina.retry_context(
                on=_retryable, attempts=None, timeout=self.settings.patience, wait_initial=0.1, wait_max=5.0
            ):
                with attempt:
                    return await self._get(target)
        except (NotSent, TooManyRequests, GiveUp) as error:
            raise LookupFailed(str(error)) from None

    async def _get(self, target: payload.Target) -> bool:
        async with self.in_flight:
            await self._enter()
            return await self._get_now(target)

    async def _get_now(self, target: payload.Target) -> bool:
        self.lookups += 1
        try:
            response = await asyncio.wait_for(
                self.client.get(target.lookup_path, params={"filter[external_id]": target.external_id}),
                self.settings.timeout)
        except TimeoutError:
            raise NotSent(f"no whole answer to a lookup within --timeout {self.settings.timeout:g} s") from None
        except httpx.RequestError as error:  # a GET changes nothing: safe to ask again (a body
            raise NotSent(_describe(error)) from None  # that cannot be decoded included)
        self.last_answer = time.monotonic()
        status = response.status_code
        if status == 429:
            raise TooManyRequests(self._wait(response))
        if status in (401, 403):
            raise AuthError(f"Omneo answered {status} {_phrase(status)} to a lookup: the token is not "
                            "allowed to read; nothing more was sent")
        if status >= 500:  # asked again, with backoff
            raise NotSent(f"{status} {_phrase(status)} from a lookup")
        document = _json(response) if status == 200 else None
        data = document.get("data") if document else None
        if not isinstance(data, list):
            # A 404, a page, a body without `data`: it proves neither that the call was
            # applied nor that it was not, and only the second would allow sending it again.
            raise LookupFailed(f"{status} {_phrase(status)} without a list of data from {target.lookup_path}")
        self.gate.succeeded()
        return any(isinstance(item, dict) and item.get("external_id") == target.external_id for item in data)


async def _until(moment: float) -> None:
    """Sleep until the wall-clock time `moment` (the journal's times are wall-clock)."""
    wait = moment - time.time()
    if wait > 0:
        await asyncio.sleep(wait)


def _json(response: httpx.Response) -> dict | None:
    """The answer's JSON object, or None when it is not one (Omneo always answers an object)."""
    try:
        document = response.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _port(response: httpx.Response) -> str:
    port = response.request.url.port
    return f":{port}" if port else ""


def _message(document: dict, status: int) -> str:
    """Omneo's own words: `message`, then each field's errors (Laravel style)."""
    parts = [f"{status} {document.get('message') or _phrase(status)}"]
    errors = document.get("errors")
    if isinstance(errors, dict):
        parts += [f"{name}: {'; '.join(map(str, messages if isinstance(messages, list) else [messages]))}"
                  for name, messages in errors.items()]
    return " | ".join(parts)[:2000]


def _item_errors(document: dict) -> dict[int, str]:
    """`benefits.<i>.<field>` errors of a batch, by item index."""
    found: dict[int, str] = {}
    errors = document.get("errors")
    if isinstance(errors, dict):
        for name, messages in errors.items():
            parts = str(name).split(".")
            if len(parts) >= 2 and parts[0] == "benefits" and parts[1].isascii() and parts[1].isdigit():
                text = "; ".join(map(str, messages)) if isinstance(messages, list) else str(messages)
                found[int(parts[1])] = (found.get(int(parts[1]), "") + f" {name}: {text}").strip()
    return found


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
