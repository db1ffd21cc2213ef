"""The fake Omneo the push tests run against (tests/fake_omneo.py), checked over real loopback HTTP.

Every test asserts what a client sees (status, JSON, a reset, a timeout) and then what the fake
says it applied, since the push tests will trust both.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import socket
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple
from urllib.parse import urlencode

import pytest

import fake_omneo
from fake_omneo import FAULT_NAMES, FakeOmneo, FakeOmneoError, Faults, Request

TOKEN = "tok-3f1c9d7e-for-tests-only"
FORBIDDEN = "tok-read-only-for-tests"
BATCH = "/api/v3/benefits/batch.json"
MELB = "Australia/Melbourne"


class Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: Any


def call(
    omneo: FakeOmneo,
    method: str,
    path: str,
    body: object = None,
    *,
    token: str | None = TOKEN,
    key: str | None = None,
    timeout: float = 5.0,
    content_type: str = "application/json",
) -> Reply:
    """One request on a fresh connection, as push would send it; bytes bodies go as they are."""
    headers = {"User-Agent": "omneo-bulk/test", "Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if key is not None:
        headers["Idempotency-Key"] = key
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode("utf-8")
    connection = http.client.HTTPConnection("127.0.0.1", omneo.port, timeout=timeout)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    return Reply(response.status, response.headers, json.loads(raw) if raw else None)


def external_id(n: int) -> str:
    return f"bulk:birthday-2026-11:2026:{n}"


def benefit(n: int, profile: str = "p-1", **changes: object) -> dict[str, object]:
    item = {
        "benefit_definition_id": 95,
        "profile_id": profile,
        "issued_at": "2026-11-22 09:00:00",
        "timezone": MELB,
        "external_id": external_id(n),
    }
    return item | changes


def post_batch(omneo: FakeOmneo, *items: dict[str, object], **options: Any) -> Reply:
    return call(omneo, "POST", BATCH, {"benefits": list(items)}, **options)


def lookup(omneo: FakeOmneo, profile: str, wanted: str) -> list[dict[str, object]]:
    reply = call(omneo, "GET", f"/api/v3/profiles/{profile}/benefits?" + urlencode({"filter[external_id]": wanted}))
    assert reply.status == 200, reply
    return reply.body["data"]


@pytest.fixture
def omneo():
    with FakeOmneo(TOKEN, forbidden_token=FORBIDDEN, bad_profiles={"p-gone"}) as fake:
        yield fake


# --- the server and its guard ----------------------------------------------------------------------


def test_it_listens_on_an_ephemeral_loopback_port(omneo):
    assert omneo.port > 0
    assert omneo.base_url == f"http://127.0.0.1:{omneo.port}"
    request = urllib.request.Request(
        omneo.base_url + "/api/v3/profiles/p-1/benefits", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    # No proxy handler: an HTTP_PROXY in the environment must not carry loopback traffic away.
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(request, timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"data": []}


def test_no_token_or_a_wrong_one_is_401_and_the_forbidden_one_is_403(omneo):
    for token in (None, "tok-wrong"):
        reply = post_batch(omneo, benefit(1), token=token)
        assert (reply.status, reply.body) == (401, {"message": "Unauthenticated."})
    reply = post_batch(omneo, benefit(1), token=FORBIDDEN)
    assert (reply.status, reply.body) == (403, {"message": "This action is unauthorized."})
    assert omneo.applied("benefits") == Counter()
    assert [r.had_authorization for r in omneo.requests()] == [False, True, True]


def _strings_in(value: object, seen: set[int]) -> list[str]:
    """Every str and bytes reachable from the fake's own state (not its sockets and threads)."""
    if id(value) in seen:
        return []
    seen.add(id(value))
    if isinstance(value, str | bytes):
        return [value if isinstance(value, str) else value.decode("latin-1")]
    if isinstance(value, dict):
        return [s for pair in value.items() for part in pair for s in _strings_in(part, seen)]
    if isinstance(value, list | tuple | set | frozenset) or type(value).__name__ == "deque":
        return [s for part in value for s in _strings_in(part, seen)]
    if type(value).__module__ == fake_omneo.__name__ and hasattr(value, "__dict__"):
        return _strings_in(vars(value), seen)
    return []


def test_the_token_is_never_recorded(omneo):
    post_batch(omneo, benefit(1), key="benefits-3f1c")
    lookup(omneo, "p-1", external_id(1))
    first = omneo.requests()[0]
    assert (first.idempotency_key, first.user_agent) == ("benefits-3f1c", "omneo-bulk/test")
    assert first.had_authorization
    state = {name: value for name, value in vars(omneo).items() if name not in ("_server", "_thread", "_connections")}
    kept = _strings_in(state, set()) + [repr(omneo), repr(omneo.requests())]
    assert any("benefits-3f1c" in text for text in kept)  # the walk does reach the records
    assert not [text for text in kept if TOKEN in text]


# --- endpoints ---------------------------------------------------------------------------------------


def test_a_batch_is_applied_and_found_by_its_external_id(omneo):
    reply = post_batch(omneo, benefit(1), benefit(2), benefit(3, profile="p-2"))
    assert reply.status == 200
    assert reply.body["message"] == "Queued for processing."
    assert isinstance(reply.body["batch_id"], int)

    [found] = lookup(omneo, "p-1", external_id(1))
    assert isinstance(found["id"], int)
    assert {name: found[name] for name in benefit(1)} == benefit(1)
    assert lookup(omneo, "p-2", external_id(1)) == []  # another profile's benefit
    assert lookup(omneo, "p-1", "bulk:never-sent") == []
    assert lookup(omneo, "p-1", "") == []  # a blank filter matches nothing, not everything
    every = call(omneo, "GET", "/api/v3/profiles/p-1/benefits").body["data"]
    assert sorted(b["external_id"] for b in every) == [external_id(1), external_id(2)]
    assert omneo.applied("benefits") == Counter({external_id(1): 1, external_id(2): 1, external_id(3): 1})

    # Omneo does not deduplicate: the same batch again is applied again, which push must prevent.
    assert post_batch(omneo, benefit(1)).status == 200
    assert omneo.applied("benefits")[external_id(1)] == 2
    assert len(lookup(omneo, "p-1", external_id(1))) == 2


def test_a_bad_profile_refuses_the_whole_batch(omneo):
    reply = post_batch(omneo, benefit(1), benefit(2, profile="p-gone"), benefit(3))
    assert reply.status == 422
    assert reply.body == {
        "message": "The selected benefits.1.profile id is invalid.",
        "errors": {"benefits.1.profile_id": ["The selected benefits.1.profile id is invalid."]},
    }
    assert omneo.applied("benefits") == Counter()
    assert lookup(omneo, "p-1", external_id(1)) == []


def test_missing_and_mistyped_fields_are_named_by_index(omneo):
    missing = benefit(1)
    del missing["external_id"]
    mistyped = benefit(2, benefit_definition_id="95", timezone="Mars/Olympus_Mons")
    reply = post_batch(omneo, missing, mistyped)
    assert reply.status == 422
    assert reply.body["errors"] == {
        "benefits.0.external_id": ["The benefits.0.external id field is required."],
        "benefits.1.benefit_definition_id": ["The benefits.1.benefit definition id field must be an integer."],
        "benefits.1.timezone": ["The benefits.1.timezone field must be a valid timezone."],
    }
    assert reply.body["message"] == "The benefits.0.external id field is required. (and 2 more errors)"
    assert omneo.applied("benefits") == Counter()


def test_a_batch_holds_1_to_500_benefits(omneo):
    empty = post_batch(omneo)
    assert (empty.status, list(empty.body["errors"])) == (422, ["benefits"])
    too_many = post_batch(omneo, *(benefit(n) for n in range(501)))
    assert too_many.status == 422
    assert too_many.body["errors"] == {"benefits": ["The benefits field must not have more than 500 items."]}
    assert omneo.applied("benefits") == Counter()
    assert post_batch(omneo, *(benefit(n) for n in range(500))).status == 200
    assert len(omneo.applied("benefits")) == 500


def test_a_single_benefit_is_201_with_its_id(omneo):
    reply = call(omneo, "POST", "/api/v3/benefits", benefit(1))
    assert reply.status == 201
    assert reply.body["data"]["external_id"] == external_id(1)
    assert [b["id"] for b in lookup(omneo, "p-1", external_id(1))] == [reply.body["data"]["id"]]
    refused = call(omneo, "POST", "/api/v3/benefits", benefit(2, profile="p-gone"))
    assert (refused.status, list(refused.body["errors"])) == (422, ["profile_id"])
    assert omneo.applied("benefits") == Counter({external_id(1): 1})


def test_redemptions_and_claim_redeems_are_stored_and_found(omneo):
    redeemed = {"issued_at": "2026-11-21 18:30:00", "timezone": MELB, "external_id": "pos:T1"}
    claimed = {"definition": "free-coffee", "timezone": MELB, "external_id": "pos:T2", "meta": {"total": 4.5}}
    assert call(omneo, "POST", "/api/v3/profiles/p-1/benefits/77/redemptions", redeemed).status == 201
    assert call(omneo, "POST", "/api/v3/profiles/p-1/benefits/claim-redeem", claimed).status == 201

    def found(path: str) -> list[str]:
        reply = call(omneo, "GET", path)
        assert reply.status == 200
        return [r["external_id"] for r in reply.body["data"]]

    assert found("/api/v3/profiles/p-1/redemptions?filter[external_id]=pos:T2") == ["pos:T2"]
    assert found("/api/v3/profiles/p-1/redemptions") == ["pos:T1", "pos:T2"]
    assert found("/api/v3/profiles/p-1/benefits/77/redemptions?filter[external_id]=pos:T1") == ["pos:T1"]
    assert found("/api/v3/profiles/p-1/benefits/77/redemptions?filter[external_id]=pos:T2") == []
    assert found("/api/v3/profiles/p-2/redemptions") == []
    assert omneo.applied("redemptions") == Counter({"pos:T1": 1})
    assert omneo.applied("claim_redeem") == Counter({"pos:T2": 1})

    refused = call(omneo, "POST", "/api/v3/profiles/p-gone/benefits/77/redemptions", redeemed)
    assert (refused.status, list(refused.body["errors"])) == (422, ["profile_id"])


def test_every_return_is_counted_as_applied(omneo):
    path = "/api/v3/redemptions/9001/benefit/return"
    first, second = call(omneo, "POST", path, {"count": 1}), call(omneo, "POST", path, {"count": 2})
    assert (first.status, second.status) == (200, 200)
    assert second.body["data"] == {"redemption_id": "9001", "count": 2, "returned": 3}
    refused = call(omneo, "POST", path, {"count": 0})
    assert (refused.status, refused.body["errors"]) == (422, {"count": ["The count field must be at least 1."]})
    assert omneo.returns() == Counter({"9001": 2})


def test_unknown_paths_wrong_methods_and_bad_bodies_are_refused(omneo):
    assert call(omneo, "GET", "/api/v3/nowhere").status == 404
    wrong_method = call(omneo, "GET", BATCH)
    assert wrong_method.status == 405
    assert "Supported methods: POST" in wrong_method.body["message"]
    assert call(omneo, "POST", BATCH, b'{"benefits": [').status == 400
    assert call(omneo, "POST", BATCH, b"[]").status == 400
    assert call(omneo, "POST", BATCH, {"benefits": [benefit(1)]}, content_type="text/plain").status == 415
    assert [r.status for r in omneo.requests()] == [404, 405, 400, 400, 415]
    assert omneo.applied("benefits") == Counter()


# --- faults ------------------------------------------------------------------------------------------


def test_unavailable_is_503_with_nothing_applied():
    with FakeOmneo(TOKEN, faults=Faults(unavailable=1.0)) as omneo:
        reply = post_batch(omneo, benefit(1))
        assert (reply.status, reply.body) == (503, {"message": "Service Unavailable"})
        assert omneo.applied("benefits") == Counter()
        assert lookup(omneo, "p-1", external_id(1)) == []
        assert omneo.requests()[0].fault == "unavailable"


def test_apply_then_500_applies_and_answers_500():
    with FakeOmneo(TOKEN, faults=Faults(apply_then_500=1.0)) as omneo:
        assert post_batch(omneo, benefit(1)).status == 500
        assert omneo.applied("benefits") == Counter({external_id(1): 1})
        assert len(lookup(omneo, "p-1", external_id(1))) == 1
        assert (omneo.requests()[0].fault, omneo.requests()[0].applied) == ("apply_then_500", True)


def test_apply_then_reset_applies_and_resets_the_connection():
    with FakeOmneo(TOKEN, faults=Faults(apply_then_reset=1.0)) as omneo:
        # A client may see this as ConnectionResetError or RemoteDisconnected (a subclass); here
        # it must be a true RST, not the FIN of an ordinary close.
        with pytest.raises(ConnectionResetError) as reset:
            post_batch(omneo, benefit(1))
        assert not isinstance(reset.value, http.client.RemoteDisconnected)
        assert omneo.applied("benefits") == Counter({external_id(1): 1})
        first = omneo.requests()[0]
        assert (first.status, first.fault, first.applied) == (None, "apply_then_reset", True)


def test_apply_then_stall_applies_and_outlasts_the_client_timeout():
    omneo = FakeOmneo(TOKEN, faults=Faults(apply_then_stall=1.0), stall_seconds=5.0).start()
    try:
        sent = time.monotonic()
        with pytest.raises(TimeoutError):
            post_batch(omneo, benefit(1), timeout=0.5)
        assert time.monotonic() - sent < 1.5
        assert omneo.applied("benefits") == Counter({external_id(1): 1})
        assert omneo.requests()[0].fault == "apply_then_stall"
    finally:
        stopping = time.monotonic()
        omneo.stop()
    assert time.monotonic() - stopping < 1.0  # stop() cuts the 5 s stall short


def test_a_stall_ends_with_the_answer_for_a_patient_client():
    with FakeOmneo(TOKEN, faults=Faults(apply_then_stall=1.0), stall_seconds=0.3) as omneo:
        sent = time.monotonic()
        assert post_batch(omneo, benefit(1), timeout=3.0).status == 200
        assert time.monotonic() - sent >= 0.3


def test_lookups_draw_faults_only_when_switched_on():
    with FakeOmneo(TOKEN, faults=Faults(unavailable=1.0)) as omneo:
        assert call(omneo, "GET", "/api/v3/profiles/p-1/benefits").status == 200
        omneo.faults = Faults(unavailable=1.0, lookups_fail=True)
        assert call(omneo, "GET", "/api/v3/profiles/p-1/benefits").status == 503


def test_skip_first_and_kinds_keep_requests_fault_free():
    with FakeOmneo(TOKEN, faults=Faults(unavailable=1.0, skip_first=2)) as omneo:
        assert [post_batch(omneo, benefit(n)).status for n in range(3)] == [200, 200, 503]
        omneo.reset()
        omneo.faults = Faults(unavailable=1.0, kinds=frozenset({"returns"}))
        assert post_batch(omneo, benefit(9)).status == 200
        assert call(omneo, "POST", "/api/v3/redemptions/1/benefit/return", {"count": 1}).status == 503


def test_queued_faults_hit_the_next_requests_that_can_fault_in_order():
    with FakeOmneo(TOKEN) as omneo:
        omneo.queue_faults("apply_then_500", "rate_limited", "unavailable")
        assert call(omneo, "GET", "/api/v3/profiles/p-1/benefits").status == 200  # lookups do not fault
        assert [post_batch(omneo, benefit(n)).status for n in range(4)] == [500, 429, 503, 200]
        assert omneo.applied("benefits") == Counter({external_id(0): 1, external_id(3): 1})


def test_faults_are_reproducible_from_the_seed_and_a_retry_draws_afresh():
    def statuses(seed: int, same_call: bool = False) -> list[int]:
        with FakeOmneo(TOKEN, faults=Faults(unavailable=0.3, apply_then_500=0.3), seed=seed) as omneo:
            return [post_batch(omneo, benefit(n), key=f"k{0 if same_call else n}").status for n in range(20)]

    night = statuses(7)
    assert night == statuses(7)
    assert night != statuses(8)
    assert {200, 500, 503} <= set(night)
    assert len(set(statuses(7, same_call=True))) > 1  # retries of one call meet different faults


def test_concurrent_answers_match_what_was_applied_and_repeat_with_the_seed():
    faults = Faults(unavailable=0.2, apply_then_500=0.2, apply_then_reset=0.2)

    def night() -> tuple[dict[int, int | str], Counter[str], list[object]]:
        with FakeOmneo(TOKEN, faults=faults, seed=3) as omneo:

            def send(n: int) -> int | str:
                try:
                    return post_batch(omneo, benefit(n), key=f"k{n}").status
                except ConnectionResetError:
                    return "reset"

            with ThreadPoolExecutor(8) as pool:
                outcomes = dict(zip(range(80), pool.map(send, range(80))))
            ids = [b["id"] for b in call(omneo, "GET", "/api/v3/profiles/p-1/benefits").body["data"]]
            return outcomes, omneo.applied("benefits"), ids

    outcomes, applied, ids = night()
    assert {200, 500, 503, "reset"} <= set(outcomes.values())
    assert set(applied) == {external_id(n) for n, outcome in outcomes.items() if outcome != 503}
    assert set(applied.values()) == {1}
    assert len(ids) == len(set(ids)) == len(applied)
    assert night()[0] == outcomes  # whatever order the eight workers arrived in


def test_everything_turns_every_fault_on_at_a_moderate_rate():
    everything = Faults.everything()
    assert everything.lookups_fail
    assert all(0.05 <= getattr(everything, name) <= 0.15 for name in FAULT_NAMES)
    assert {everything.pick(i / 1000) for i in range(1000)} == {*FAULT_NAMES, None}
    with pytest.raises(ValueError):
        Faults(unavailable=0.6, apply_then_500=0.6)


# --- rate limit --------------------------------------------------------------------------------------


def test_requests_over_the_rate_get_429_and_apply_nothing():
    with FakeOmneo(TOKEN, rate=2) as omneo:
        assert [post_batch(omneo, benefit(n)).status for n in range(6)] == [200, 200, 429, 429, 429, 429]
        assert omneo.applied("benefits") == Counter({external_id(0): 1, external_id(1): 1})
        assert [r.fault for r in omneo.requests()].count("rate_limited") == 4


def test_429_cycles_through_four_retry_after_forms():
    lookup_path = "/api/v3/profiles/p-1/benefits"
    with FakeOmneo(TOKEN, rate=1) as omneo:
        replies = [call(omneo, "GET", lookup_path) for _ in range(5)]
        assert [r.status for r in replies] == [200, 429, 429, 429, 429]
        seconds, date, zero, absent = (r.headers.get("Retry-After") for r in replies[1:])
        assert (seconds, zero, absent) == ("1", "0", None)
        ahead = email.utils.parsedate_to_datetime(date).timestamp() - time.time()
        assert 0 < ahead <= 2.0
        assert all(r.body == {"message": "Too Many Attempts."} for r in replies[1:])

        time.sleep(1.05)
        assert call(omneo, "GET", lookup_path).status == 200
        checks = omneo.retry_after_honoured()
        assert [c.asked_wait for c in checks[:1] + checks[2:]] == [1.0, 0.0, None]
        assert 1.0 <= checks[1].asked_wait <= 2.0
        assert checks[0].actual_gap < 1.0  # asked again at once: not honoured, and it shows
        assert checks[3].actual_gap >= 1.0


def test_a_request_in_flight_when_a_429_is_answered_is_not_its_next(monkeypatch):
    lookup_path = "/api/v3/profiles/p-1/benefits"
    with FakeOmneo(TOKEN, rate=1) as omneo:
        record_answer = omneo._answered

        def hold_429s(ticket: object, status: int | None) -> None:
            if status == 429:
                time.sleep(0.3)  # the other worker's request arrives before this answer goes out
            record_answer(ticket, status)

        monkeypatch.setattr(omneo, "_answered", hold_429s)
        assert call(omneo, "GET", lookup_path).status == 200
        worker = threading.Thread(target=call, args=(omneo, "GET", lookup_path))
        worker.start()
        time.sleep(0.1)
        assert call(omneo, "GET", lookup_path).status == 429
        worker.join()
        time.sleep(0.1)
        call(omneo, "GET", lookup_path)
        workers_429 = omneo.retry_after_honoured()[0]
        assert workers_429.actual_gap > 0.05  # the next request after the answer, not the one before it


def test_max_calls_in_window_counts_arrivals_in_half_open_windows(omneo):
    for _ in range(3):
        call(omneo, "GET", "/api/v3/profiles/p-1/benefits")
    post_batch(omneo, benefit(1))
    time.sleep(0.3)
    call(omneo, "GET", "/api/v3/profiles/p-1/benefits")
    assert omneo.max_calls_in_window(1.0) == 5
    assert omneo.max_calls_in_window(0.25) == 4
    assert omneo.max_calls_in_window(1.0, only_posts=True) == 1

    # [first, last) leaves the last arrival out; a hair wider takes all five.
    first, *_, last = (r.arrived_at for r in omneo.requests())
    assert omneo.max_calls_in_window(last - first) == 4
    assert omneo.max_calls_in_window((last - first) * 1.001) == 5


# --- lookups lag behind a queued batch ---------------------------------------------------------------


def test_queue_delay_hides_a_batch_from_lookups_for_a_while():
    with FakeOmneo(TOKEN, queue_delay=0.3) as omneo:
        assert post_batch(omneo, benefit(1)).status == 200
        assert omneo.applied("benefits") == Counter({external_id(1): 1})
        assert lookup(omneo, "p-1", external_id(1)) == []
        time.sleep(0.35)
        assert len(lookup(omneo, "p-1", external_id(1))) == 1


# --- lifecycle ---------------------------------------------------------------------------------------


def test_stop_frees_the_port_and_every_thread():
    threads_before = threading.active_count()
    omneo = FakeOmneo(TOKEN).start()
    port = omneo.port
    kept_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    kept_alive.request("GET", "/api/v3/profiles/p-1/benefits", headers={"Authorization": f"Bearer {TOKEN}"})
    assert kept_alive.getresponse().read()  # HTTP/1.1: the connection, and its thread, stay open
    assert threading.active_count() >= threads_before + 2

    stopping = time.monotonic()
    omneo.stop()
    assert time.monotonic() - stopping < 1.0
    assert threading.active_count() == threads_before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with socket.socket() as rebind:  # a listening socket still open would make this bind fail
        rebind.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        rebind.bind(("127.0.0.1", port))
    with pytest.raises(RuntimeError):
        omneo.base_url
    kept_alive.close()


def test_reset_forgets_requests_and_state(omneo):
    post_batch(omneo, benefit(1))
    omneo.reset()
    assert (omneo.requests(), omneo.applied("benefits")) == ([], Counter())
    assert lookup(omneo, "p-1", external_id(1)) == []
    assert isinstance(omneo.requests()[0], Request)


def test_an_answer_in_flight_across_a_reset_stays_out_of_the_new_log():
    with FakeOmneo(TOKEN, faults=Faults(apply_then_stall=1.0), stall_seconds=0.4) as omneo:
        stalled = threading.Thread(target=post_batch, args=(omneo, benefit(1)), kwargs={"timeout": 3.0})
        stalled.start()
        time.sleep(0.1)
        omneo.reset()
        assert call(omneo, "GET", "/api/v3/nowhere").status == 404
        stalled.join()
        assert [(r.path, r.status) for r in omneo.requests()] == [("/api/v3/nowhere", 404)]
        assert omneo.applied("benefits") == Counter()


def test_a_failure_inside_the_fake_fails_stop(monkeypatch):
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug in the fake")

    monkeypatch.setattr(fake_omneo._Ledger, "add_batch", broken)
    omneo = FakeOmneo(TOKEN).start()
    assert post_batch(omneo, benefit(1)).status == 500
    with pytest.raises(FakeOmneoError, match="a bug in the fake"):
        omneo.stop()
