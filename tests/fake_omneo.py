"""A fake Omneo API for the push tests: a real HTTP server on 127.0.0.1 that keeps state and injects faults.

Built on `http.server`, not an ASGI app, because two faults need the socket itself: a reset after
applying (SO_LINGER on, 0 seconds, then close: the client gets an RST) and a stall; ASGI servers hide both.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import itertools
import json
import math
import random
import re
import socket
import socketserver
import struct
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOOPBACK = "127.0.0.1"
BATCH_LIMIT = 500  # Omneo's most benefits per batch call
MAX_BODY_BYTES = 16 * 1024 * 1024
JOIN_SECONDS = 5.0  # how long stop() waits for each connection's thread

# Random faults, in the order their probabilities are laid along [0, 1).
FAULT_NAMES = ("unavailable", "apply_then_500", "apply_then_reset", "apply_then_stall")
RATE_LIMITED = "rate_limited"
WRITE_KINDS = ("benefits", "redemptions", "claim_redeem", "returns")
APPLIED_KINDS = ("benefits", "redemptions", "claim_redeem")
RETRY_AFTER_FORMS = ("seconds", "date", "zero", "absent")


class FakeOmneoError(AssertionError):
    """The fake itself failed while serving; a test must not pass on top of that."""


@dataclass(frozen=True)
class Faults:
    """Per-request probabilities of each random fault; at most one hits a request."""

    unavailable: float = 0.0  # 503 before anything is applied
    apply_then_500: float = 0.0  # applied, then a 500
    apply_then_reset: float = 0.0  # applied, then the connection is reset without an answer
    apply_then_stall: float = 0.0  # applied, then nothing for stall_seconds
    lookups_fail: bool = False  # GETs draw the same faults (a failed lookup changes nothing)
    skip_first: int = 0  # the first N requests the server receives draw no fault
    kinds: frozenset[str] = frozenset(WRITE_KINDS)  # the POST kinds that draw faults

    def __post_init__(self) -> None:
        for name in FAULT_NAMES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Faults.{name} is a probability, between 0 and 1")
        if sum(getattr(self, name) for name in FAULT_NAMES) > 1.0 + 1e-9:
            raise ValueError("Faults: the probabilities add up to more than 1")
        unknown = set(self.kinds) - set(WRITE_KINDS)
        if unknown:
            raise ValueError(f"Faults.kinds: unknown kinds {sorted(unknown)}; known: {WRITE_KINDS}")
        object.__setattr__(self, "kinds", frozenset(self.kinds))

    @classmethod
    def everything(cls) -> Faults:
        """Every fault on at a moderate rate, lookups included: a bad night."""
        return cls(
            unavailable=0.1, apply_then_500=0.1, apply_then_reset=0.1, apply_then_stall=0.1, lookups_fail=True
        )

    def pick(self, draw: float) -> str | None:
        """The fault whose slice of [0, 1) a uniform draw lands in, or None."""
        edge = 0.0
        for name in FAULT_NAMES:
            edge += getattr(self, name)
            if draw < edge:
                return name
        return None


@dataclass(frozen=True)
class Request:
    """One request as the server saw it. The Authorization header's value is never kept."""

    arrived_at: float  # time.monotonic() once the request (headers and body) was read
    method: str
    path: str
    query: str  # the raw query string, as sent
    kind: str | None  # benefits, redemptions, claim_redeem, returns or lookup; None when unrouted
    idempotency_key: str | None
    user_agent: str | None
    had_authorization: bool
    status: int | None = None  # None while in flight, or when the connection was reset unanswered
    fault: str | None = None  # a FAULT_NAMES entry or "rate_limited"
    applied: bool = False  # a write was applied (or a lookup read) before the answer
    answered_at: float | None = None  # when the answer was sent or the connection reset
    retry_after: str | None = None  # the Retry-After header of a 429, when it had one
    asked_wait: float | None = None  # seconds a 429's Retry-After asked for; None when absent


class RetryAfterCheck(NamedTuple):
    """A 429's asked wait (None: no Retry-After) and the gap until the next request (None: none came)."""

    asked_wait: float | None
    actual_gap: float | None


@dataclass(frozen=True)
class _Answer:
    """What to send back, and whether to reset or stall instead of (or before) sending it."""

    status: int
    payload: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    applied: bool = False
    then: str | None = None  # "reset" or "stall"
    close: bool = False


_Ticket = tuple[list[Request], int]  # a request's record: the log it went into, and where


def _message(status: int, message: str) -> _Answer:
    return _Answer(status, {"message": message})


# --- routes -----------------------------------------------------------------------------------

_PROFILE = r"(?P<profile_id>[^/]+)"
_BENEFIT = r"(?P<benefit_id>[^/]+)"


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    kind: str
    handler: str  # a FakeOmneo method name, looked up per request


def _route(method: str, pattern: str, kind: str, handler: str) -> _Route:
    return _Route(method, re.compile(pattern), kind, handler)


_ROUTES = (
    _route("POST", r"/api/v3/benefits/batch\.json", "benefits", "_post_batch"),
    _route("POST", r"/api/v3/benefits", "benefits", "_post_benefit"),
    _route("GET", rf"/api/v3/profiles/{_PROFILE}/benefits", "lookup", "_get_benefits"),
    _route("POST", rf"/api/v3/profiles/{_PROFILE}/benefits/claim-redeem", "claim_redeem", "_post_claim_redeem"),
    _route("POST", rf"/api/v3/profiles/{_PROFILE}/benefits/{_BENEFIT}/redemptions", "redemptions", "_post_redemption"),
    _route(
        "GET", rf"/api/v3/profiles/{_PROFILE}/benefits/{_BENEFIT}/redemptions", "lookup", "_get_benefit_redemptions"
    ),
    _route("GET", rf"/api/v3/profiles/{_PROFILE}/redemptions", "lookup", "_get_redemptions"),
    _route("POST", r"/api/v3/redemptions/(?P<redemption_id>[^/]+)/benefit/return", "returns", "_post_return"),
)


def _match(method: str, path: str) -> tuple[_Route | None, dict[str, str], list[str]]:
    """The route and its decoded path parameters, or None and the methods the path does allow."""
    allowed = []
    for route in _ROUTES:
        found = route.pattern.fullmatch(path)
        if found is None:
            continue
        if route.method == method:
            return route, {name: unquote(value) for name, value in found.groupdict().items()}, []
        allowed.append(route.method)
    return None, {}, allowed


def _not_routed(method: str, path: str, allowed: list[str]) -> _Answer:
    """Laravel's wording for an unknown route (404) and for a known one with the wrong method (405)."""
    route = path.lstrip("/")
    if allowed:
        supported = ", ".join(sorted(set(allowed)))
        return _message(405, f"The {method} method is not supported for route {route}. Supported methods: {supported}.")
    return _message(404, f"The route {route} could not be found.")


# --- validation, in Laravel's shape: {"message": first (and N more errors), "errors": {key: [msgs]}} ---

_BENEFIT_RULES = {
    "benefit_definition_id": "integer",
    "profile_id": "profile",
    "issued_at": "date",
    "timezone": "timezone",
    "external_id": "string",
}
_REDEMPTION_RULES = {"issued_at": "date", "timezone": "timezone", "external_id": "string"}
_CLAIM_REDEEM_RULES = {"definition": "string", "timezone": "timezone", "external_id": "string"}

Errors = dict[str, list[str]]


def _display(key: str) -> str:
    # Laravel names an attribute in a message with its underscores as spaces.
    return key.replace("_", " ")


def _is_date(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_timezone(value: str) -> bool:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _rule_message(value: object, rule: str, bad_profiles: frozenset[str]) -> str | None:
    """The message template a value fails its rule with, or None. Types are strict JSON types."""
    if value is None or value == "":
        return "The {attr} field is required."
    if rule == "integer":
        is_integer = isinstance(value, int) and not isinstance(value, bool)
        return None if is_integer else "The {attr} field must be an integer."
    if rule == "array":
        return None if isinstance(value, dict | list) else "The {attr} field must be an array."
    if not isinstance(value, str):
        return "The {attr} field must be a string."
    if rule == "date" and not _is_date(value):
        return "The {attr} field must be a valid date."
    if rule == "timezone" and not _is_timezone(value):
        return "The {attr} field must be a valid timezone."
    if rule == "profile" and value in bad_profiles:
        return "The selected {attr} is invalid."
    return None


def _field_errors(
    body: Mapping[str, object], rules: Mapping[str, str], prefix: str = "", bad_profiles: frozenset[str] = frozenset()
) -> Errors:
    errors: Errors = {}
    for name, rule in rules.items():
        template = _rule_message(body.get(name), rule, bad_profiles)
        if template is not None:
            errors[prefix + name] = [template.format(attr=_display(prefix + name))]
    return errors


def _unknown_profile(key: str) -> Errors:
    return {key: [f"The selected {_display(key)} is invalid."]}


def benefit_errors(item: object, bad_profiles: frozenset[str], prefix: str = "") -> Errors:
    """Why one benefit is refused, keyed `<prefix><field>`; empty when it is valid."""
    if not isinstance(item, dict):
        key = prefix.rstrip(".") or "body"
        return {key: [f"The {_display(key)} field must be an array."]}
    return _field_errors(item, _BENEFIT_RULES, prefix, bad_profiles)


def batch_errors(body: Mapping[str, object], bad_profiles: frozenset[str]) -> Errors:
    """Why a batch is refused; one bad item refuses the whole batch, as Laravel validates first."""
    items = body.get("benefits")
    if items is None or items == []:
        return {"benefits": ["The benefits field is required."]}
    if not isinstance(items, list):
        return {"benefits": ["The benefits field must be an array."]}
    if len(items) > BATCH_LIMIT:
        return {"benefits": [f"The benefits field must not have more than {BATCH_LIMIT} items."]}
    errors: Errors = {}
    for index, item in enumerate(items):
        errors.update(benefit_errors(item, bad_profiles, prefix=f"benefits.{index}."))
    return errors


def redemption_errors(profile_id: str, body: Mapping[str, object], bad_profiles: frozenset[str]) -> Errors:
    errors = _unknown_profile("profile_id") if profile_id in bad_profiles else {}
    return errors | _field_errors(body, _REDEMPTION_RULES)


def claim_redeem_errors(profile_id: str, body: Mapping[str, object], bad_profiles: frozenset[str]) -> Errors:
    errors = _unknown_profile("profile_id") if profile_id in bad_profiles else {}
    errors |= _field_errors(body, _CLAIM_REDEEM_RULES)
    if body.get("meta") is not None:  # meta is optional, but an object when given
        errors |= _field_errors(body, {"meta": "array"})
    return errors


def return_errors(body: Mapping[str, object]) -> Errors:
    errors = _field_errors(body, {"count": "integer"})
    if not errors and body["count"] < 1:
        errors["count"] = ["The count field must be at least 1."]
    return errors


def _unprocessable(errors: Errors) -> _Answer:
    messages = [message for listed in errors.values() for message in listed]
    more = len(messages) - 1
    summary = messages[0] if more == 0 else f"{messages[0]} (and {more} more error{'s' if more > 1 else ''})"
    return _Answer(422, {"message": summary, "errors": errors})


def _json_body(content_type: str, raw: bytes) -> tuple[dict[str, Any] | None, _Answer | None]:
    """The request's JSON object, or the 415/400 answer that refuses it."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        return None, _message(415, "The request body must be sent as Content-Type: application/json.")
    try:
        body = json.loads(raw)
    except ValueError:
        return None, _message(400, "The request body is not valid JSON.")
    if not isinstance(body, dict):
        return None, _message(400, "The request body must be a JSON object.")
    return body, None


# --- state ---------------------------------------------------------------------------------------


class _Ledger:
    """What Omneo holds: stored benefits and redemptions, and how often each was applied."""

    def __init__(self) -> None:
        self.benefits: list[tuple[float, dict[str, Any]]] = []  # (visible to lookups from, benefit)
        self.redemptions: list[dict[str, Any]] = []  # redemptions and claim-redeems alike
        self.applied: dict[str, Counter[str]] = {kind: Counter() for kind in APPLIED_KINDS}
        self.returns: Counter[str] = Counter()  # applications per redemption id
        self.returned: Counter[str] = Counter()  # units returned per redemption id
        self._ids = itertools.count(1)
        self._batch_ids = itertools.count(1)

    def add_batch(self, items: Iterable[Mapping[str, Any]], visible_at: float) -> int:
        batch_id = next(self._batch_ids)
        for item in items:
            self.add_benefit(item, visible_at, batch_id=batch_id)
        return batch_id

    def add_benefit(self, item: Mapping[str, Any], visible_at: float, batch_id: int | None = None) -> dict[str, Any]:
        benefit = {"id": next(self._ids), **{name: item[name] for name in _BENEFIT_RULES}}
        if batch_id is not None:
            benefit["batch_id"] = batch_id
        self.benefits.append((visible_at, benefit))
        self.applied["benefits"][benefit["external_id"]] += 1
        return dict(benefit)

    def benefits_of(self, profile_id: str, external_id: str | None, now: float) -> list[dict[str, Any]]:
        return [
            dict(benefit)
            for visible_at, benefit in self.benefits
            if visible_at <= now
            and benefit["profile_id"] == profile_id
            and external_id in (None, benefit["external_id"])
        ]

    def add_redemption(self, kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
        redemption = {"id": next(self._ids), "type": kind, **record}
        self.redemptions.append(redemption)
        self.applied[kind][redemption["external_id"]] += 1
        return dict(redemption)

    def redemptions_of(
        self, profile_id: str, external_id: str | None, benefit_id: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            dict(redemption)
            for redemption in self.redemptions
            if redemption["profile_id"] == profile_id
            and external_id in (None, redemption["external_id"])
            and benefit_id in (None, redemption["benefit_id"])
        ]

    def add_return(self, redemption_id: str, count: int) -> dict[str, Any]:
        self.returns[redemption_id] += 1
        self.returned[redemption_id] += count
        return {"redemption_id": redemption_id, "count": count, "returned": self.returned[redemption_id]}


class _RateLimit:
    """At most floor(rate) admitted requests in any half-open one-second window of arrivals."""

    def __init__(self, rate: float) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1 call per second (the window is one second)")
        self.cap = math.floor(rate)
        self.admitted: deque[float] = deque()

    def admit(self, now: float) -> bool:
        # Arrivals at or before now - 1 are outside every window that holds now.
        while self.admitted and self.admitted[0] <= now - 1.0:
            self.admitted.popleft()
        if len(self.admitted) >= self.cap:
            return False
        self.admitted.append(now)
        return True


def _retry_after(form: str) -> tuple[str | None, float | None]:
    """A Retry-After header of one form, and the wait it asks for in seconds (None: no header)."""
    if form == "seconds":
        return "1", 1.0
    if form == "zero":
        return "0", 0.0
    if form == "absent":
        return None, None
    # An HTTP date has whole seconds; rounding up keeps the asked wait at 1 s or a little more.
    wall = time.time()
    until = math.ceil(wall + 1.0)
    return email.utils.format_datetime(datetime.fromtimestamp(until, UTC), usegmt=True), until - wall


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


# --- the server ----------------------------------------------------------------------------------


class FakeOmneo:
    """Omneo's v3 API on 127.0.0.1:<ephemeral port>, with its state and seeded faults, for tests.

    Every random draw is seeded by (seed, the call, its attempt number), so a test sees the same
    faults whatever order concurrent workers send in; a retry of a call draws afresh.
    """

    def __init__(
        self,
        token: str,
        *,
        forbidden_token: str | None = None,
        rate: float | None = None,
        faults: Faults | None = None,
        seed: int = 0,
        bad_profiles: Iterable[str] = frozenset(),
        stall_seconds: float = 10.0,
        queue_delay: float = 0.0,
        retry_after_forms: tuple[str, ...] = RETRY_AFTER_FORMS,
    ) -> None:
        if not token:
            raise ValueError("FakeOmneo needs a token")
        self._token_digest = _digest(token)
        self._forbidden_digest = _digest(forbidden_token) if forbidden_token else None
        if set(retry_after_forms) - set(RETRY_AFTER_FORMS) or not retry_after_forms:
            raise ValueError(f"retry_after_forms: a sequence drawn from {RETRY_AFTER_FORMS}")
        self.rate = rate
        self.retry_after_forms = tuple(retry_after_forms)
        self.faults = faults or Faults()  # may be replaced between requests
        self.seed = seed
        self.bad_profiles = frozenset(bad_profiles)
        self.stall_seconds = stall_seconds
        self.queue_delay = queue_delay  # seconds a batch's benefits stay invisible to lookups
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._bugs: list[str] = []
        self._clear()

    def __repr__(self) -> str:
        where = self.base_url if self._server else "stopped"
        return f"FakeOmneo({where}, rate={self.rate}, faults={self.faults}, seed={self.seed})"

    # lifecycle

    def __enter__(self) -> FakeOmneo:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> FakeOmneo:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = self._server = _Server(self)
        # A short poll keeps stop() quick: shutdown() waits for the loop to notice.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-omneo:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalls, drop open connections, join every thread, close the socket."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # A keep-alive connection blocks its handler thread in a read until it is shut down.
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()  # closes the listening socket and joins the handler threads
        thread.join()
        self._server = self._thread = None
        if self._bugs:
            raise FakeOmneoError("the fake Omneo failed while serving:\n" + "\n".join(self._bugs))

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOmneo is not running; call start() or use it in a with block")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # inspection, for tests

    def reset(self) -> None:
        """Forget every request, stored object, count, queued fault and rate window."""
        with self._lock:
            self._clear()

    def applied(self, kind: str) -> Counter[str]:
        """How many times each external_id of a kind (benefits, redemptions, claim_redeem) was applied."""
        if kind not in APPLIED_KINDS:
            raise ValueError(f"applied(): kind is one of {APPLIED_KINDS}; returns() counts returns")
        with self._lock:
            return Counter(self._ledger.applied[kind])

    def returns(self) -> Counter[str]:
        """How many return calls were applied per redemption id (as it appears in the path)."""
        with self._lock:
            return Counter(self._ledger.returns)

    def requests(self) -> list[Request]:
        """Every request so far, in order of arrival."""
        with self._lock:
            return list(self._log)

    def max_calls_in_window(self, seconds: float = 1.0, only_posts: bool = False) -> int:
        """The most arrivals in any half-open window [t, t + seconds)."""
        with self._lock:
            times = sorted(r.arrived_at for r in self._log if not only_posts or r.method == "POST")
        most, start = 0, 0
        for end, arrived in enumerate(times):
            while times[start] <= arrived - seconds:
                start += 1
            most = max(most, end - start + 1)
        return most

    def retry_after_honoured(self) -> list[RetryAfterCheck]:
        """For each 429: the wait it asked for and the time from its answer to the next arrival.

        The fake serves one client per test, so "the next arrival" is that client's next request
        of any kind; with concurrent workers, every worker must pause for it.
        """
        with self._lock:
            log = list(self._log)
        checks = []
        for index, request in enumerate(log):
            if request.status != 429 or request.answered_at is None:
                continue
            later = (r.arrived_at for r in log[index + 1 :] if r.arrived_at >= request.answered_at)
            next_arrival = next(later, None)
            gap = None if next_arrival is None else next_arrival - request.answered_at
            checks.append(RetryAfterCheck(request.asked_wait, gap))
        return checks

    def queue_faults(self, *names: str) -> None:
        """Give the next requests that can draw a fault these faults, in order, before any draw.

        A name is a FAULT_NAMES entry or "rate_limited" (a 429 with the next Retry-After form).
        """
        unknown = set(names) - {*FAULT_NAMES, RATE_LIMITED}
        if unknown:
            raise ValueError(f"queue_faults: unknown faults {sorted(unknown)}")
        with self._lock:
            self._queued.extend(names)

    # one exchange

    def _clear(self) -> None:
        self._log: list[Request] = []
        self._ledger = _Ledger()
        self._attempts: Counter[str] = Counter()
        self._queued: deque[str] = deque()
        self._limit = _RateLimit(self.rate) if self.rate is not None else None
        self._refusals = 0  # 429s so far, which picks the next Retry-After form

    def _exchange(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes | None
    ) -> tuple[_Ticket, _Answer]:
        """Record a request and decide its answer; called by the handler thread of its connection."""
        split = urlsplit(target)
        route, params, allowed = _match(method, split.path)
        with self._lock:
            index = len(self._log)
            self._log.append(
                Request(
                    arrived_at=time.monotonic(),  # taken under the lock, so the log is in arrival order
                    method=method,
                    path=split.path,
                    query=split.query,
                    kind=route.kind if route else None,
                    idempotency_key=headers.get("Idempotency-Key"),
                    user_agent=headers.get("User-Agent"),
                    had_authorization="Authorization" in headers,
                )
            )
            ticket = (self._log, index)
            refusal, fault = self._admit(index, method, split, route, allowed, headers, raw)
        if refusal is not None:
            return ticket, refusal
        assert route is not None and raw is not None
        body: dict[str, Any] = {}
        if method == "POST":
            parsed, refusal = _json_body(headers.get("Content-Type", ""), raw)
            if refusal is not None:
                return ticket, refusal
            body = parsed or {}
        answer = getattr(self, route.handler)(params, split.query, body)
        if fault is not None and answer.applied:
            self._note(ticket, applied=True, fault=fault)
            return ticket, _after_applying(fault, answer)
        self._note(ticket, applied=answer.applied)
        return ticket, answer

    def _admit(
        self,
        index: int,
        method: str,
        split: SplitResult,
        route: _Route | None,
        allowed: list[str],
        headers: Mapping[str, str],
        raw: bytes | None,
    ) -> tuple[_Answer | None, str | None]:
        """Under the lock: a refusal (400, 404, 405, 401, 403, 429, 503) or the fault to apply after."""
        if raw is None:  # the rest of the stream cannot be trusted either, so the connection closes
            return replace(_message(400, "A request body needs a valid Content-Length."), close=True), None
        if route is None:
            return _not_routed(method, split.path, allowed), None
        refusal = self._authorise(headers.get("Authorization"))
        if refusal is not None:
            return refusal, None
        can_fault = self.faults.lookups_fail if route.method == "GET" else route.kind in self.faults.kinds
        queued = self._queued[0] if can_fault and self._queued else None
        if queued == RATE_LIMITED:
            self._queued.popleft()
            return self._too_many(index), None
        if self._limit is not None and not self._limit.admit(self._log[index].arrived_at):
            return self._too_many(index), None  # a queued fault waits for a request that gets in
        if queued is not None:
            fault: str | None = self._queued.popleft()
        elif can_fault and index >= self.faults.skip_first:
            fault = self._draw(method, split.path, split.query, headers.get("Idempotency-Key"), raw)
        else:
            fault = None
        if fault == "unavailable":
            self._log[index] = replace(self._log[index], fault=fault)
            return _message(503, "Service Unavailable"), None
        return None, fault

    def _authorise(self, authorization: str | None) -> _Answer | None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and given.strip():
            digest = _digest(given.strip())
            if hmac.compare_digest(digest, self._token_digest):
                return None
            if self._forbidden_digest is not None and hmac.compare_digest(digest, self._forbidden_digest):
                return _message(403, "This action is unauthorized.")
        return _message(401, "Unauthenticated.")

    def _too_many(self, index: int) -> _Answer:
        header, wait = _retry_after(self.retry_after_forms[self._refusals % len(self.retry_after_forms)])
        self._refusals += 1
        self._log[index] = replace(self._log[index], fault=RATE_LIMITED, retry_after=header, asked_wait=wait)
        return _Answer(429, {"message": "Too Many Attempts."}, headers={"Retry-After": header} if header else {})

    def _draw(self, method: str, path: str, query: str, idempotency_key: str | None, raw: bytes) -> str | None:
        # A call is known by its key (or its body); seeding per attempt keeps draws independent of
        # the order concurrent requests arrive in.
        call = f"{method} {path}?{query} {idempotency_key or hashlib.sha256(raw).hexdigest()}"
        attempt = self._attempts[call]
        self._attempts[call] += 1
        return self.faults.pick(random.Random(f"{self.seed}|{call}|{attempt}").random())

    def _note(self, ticket: _Ticket, **changes: Any) -> None:
        # The ticket names the log the request went into, so a reset() meanwhile cannot make a
        # late answer overwrite someone else's record.
        log, index = ticket
        with self._lock:
            log[index] = replace(log[index], **changes)

    def _answered(self, ticket: _Ticket, status: int | None) -> None:
        # Called before the bytes go out, so a client that inspects the fake right after its
        # answer sees the answer recorded.
        self._note(ticket, status=status, answered_at=time.monotonic())

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            stopping = self._stopping.is_set()
        if stopping:  # accepted as stop() began, after it shut the open connections down
            connection.shutdown(socket.SHUT_RDWR)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _bug(self, report: str) -> None:
        with self._lock:
            self._bugs.append(report)

    # endpoints: each validates outside the lock and applies under it

    def _post_batch(self, params: dict[str, str], query: str, body: dict[str, Any]) -> _Answer:
        errors = batch_errors(body, self.bad_profiles)
        if errors:
            return _unprocessable(errors)
        with self._lock:
            batch_id = self._ledger.add_batch(body["benefits"], visible_at=time.monotonic() + self.queue_delay)
        return _Answer(200, {"message": "Queued for processing.", "batch_id": batch_id}, applied=True)

    def _post_benefit(self, params: dict[str, str], query: str, body: dict[str, Any]) -> _Answer:
        errors = benefit_errors(body, self.bad_profiles)
        if errors:
            return _unprocessable(errors)
        with self._lock:
            benefit = self._ledger.add_benefit(body, visible_at=time.monotonic())
        return _Answer(201, {"data": benefit}, applied=True)

    def _post_redemption(self, params: dict[str, str], query: str, body: dict[str, Any]) -> _Answer:
        errors = redemption_errors(params["profile_id"], body, self.bad_profiles)
        if errors:
            return _unprocessable(errors)
        record = {**params, **{name: body[name] for name in _REDEMPTION_RULES}}
        with self._lock:
            redemption = self._ledger.add_redemption("redemptions", record)
        return _Answer(201, {"data": redemption}, applied=True)

    def _post_claim_redeem(self, params: dict[str, str], query: str, body: dict[str, Any]) -> _Answer:
        errors = claim_redeem_errors(params["profile_id"], body, self.bad_profiles)
        if errors:
            return _unprocessable(errors)
        record = {**params, "benefit_id": None, **{name: body[name] for name in _CLAIM_REDEEM_RULES}}
        record["meta"] = body.get("meta") or {}
        with self._lock:
            redemption = self._ledger.add_redemption("claim_redeem", record)
        return _Answer(201, {"data": redemption}, applied=True)

    def _post_return(self, params: dict[str, str], query: str, body: dict[str, Any]) -> _Answer:
        errors = return_errors(body)
        if errors:
            return _unprocessable(errors)
        with self._lock:
            returned = self._ledger.add_return(params["redemption_id"], body["count"])
        return _Answer(200, {"data": returned}, applied=True)

    def _get_benefits(self, params: dict[str, str], query: str, body: dict[str, Any]) -> _Answer:
        with self._lock:
            found = self._ledger.benefits_of(params["profile_id"], _external_id_filter(query), time.monotonic())
        return _Answer(200, {"data": found}, applied=True)

    def _get_benefit_redemptions(self, params: dict[str, str], query: str, body: dict[str, Any]) -> _Answer:
        with self._lock:
            found = self._ledger.redemptions_of(params["profile_id"], _external_id_filter(query), params["benefit_id"])
        return _Answer(200, {"data": found}, applied=True)

    def _get_redemptions(self, params: dict[str, str], query: str, body: dict[str, Any]) -> _Answer:
        with self._lock:
            found = self._ledger.redemptions_of(params["profile_id"], _external_id_filter(query))
        return _Answer(200, {"data": found}, applied=True)


def _external_id_filter(query: str) -> str | None:
    # Blank values are kept: `filter[external_id]=` must match nothing, not everything.
    values = parse_qs(query, keep_blank_values=True).get("filter[external_id]")
    return values[0] if values else None


def _after_applying(fault: str, answer: _Answer) -> _Answer:
    """The answer once a post-apply fault has hit an applied request."""
    if fault == "apply_then_500":
        return _message(500, "Server Error")
    if fault == "apply_then_reset":
        return replace(answer, then="reset")
    if fault == "apply_then_stall":
        return replace(answer, then="stall", close=True)
    raise ValueError(f"not a fault that follows applying: {fault}")


class _Server(ThreadingHTTPServer):
    request_queue_size = 64

    def __init__(self, fake: FakeOmneo) -> None:
        self.fake = fake
        self.connection_threads: list[threading.Thread] = []
        super().__init__((LOOPBACK, 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # One daemon thread per connection, so a forgotten stop() cannot hang the interpreter,
        # yet tracked (socketserver tracks only non-daemon ones), so server_close() can join it.
        self.connection_threads = [t for t in self.connection_threads if t.is_alive()]
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="fake-omneo-connection",
            daemon=True,
        )
        self.connection_threads.append(thread)
        thread.start()

    def server_close(self) -> None:
        super().server_close()
        for thread in self.connection_threads:
            thread.join(timeout=JOIN_SECONDS)
        if any(thread.is_alive() for thread in self.connection_threads):
            self.fake._bug(f"a connection thread still ran {JOIN_SECONDS} s after stop()")

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks getfqdn() for a name, a DNS lookup that might leave loopback.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a pooled client uses it
    # Headers and body leave in separate writes: with Nagle's algorithm on, each answer
    # then waits out the client's delayed ACK (40 ms on Linux) and the fake crawls.
    disable_nagle_algorithm = True
    server_version = "FakeOmneo/1"
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.server.fake._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._closed(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        pass  # every request is in FakeOmneo.requests(); stderr stays for real failures

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        fake = self.server.fake
        try:
            raw = self._read_body()
        except OSError:  # the client left mid-body, or stop() shut the connection
            self.close_connection = True
            return
        try:
            ticket, answer = fake._exchange(self.command, self.path, self.headers, raw)
        except Exception:
            fake._bug(traceback.format_exc())
            self._send(replace(_message(500, "FakeOmneo failed; stop() raises with the traceback."), close=True))
            return
        if answer.then == "stall":
            fake._stopping.wait(fake.stall_seconds)  # stop() cuts a stall short
        if answer.then == "reset":
            fake._answered(ticket, None)
            self._reset()
            return
        fake._answered(ticket, answer.status)
        self._send(answer)

    def _read_body(self) -> bytes | None:
        """The request body by Content-Length; None when that cannot be trusted (chunked, bad, huge)."""
        if self.headers.get("Transfer-Encoding"):
            return None
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return None
        return self.rfile.read(int(length))

    def _send(self, answer: _Answer) -> None:
        data = json.dumps(answer.payload).encode("utf-8")
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client left (after a stall it has timed out)

    def _reset(self) -> None:
        # Linger on with a zero timeout makes close() send an RST instead of a FIN. The read
        # file holds a reference to the socket, so it is closed first for close() to act now.
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
