"""`push` against what can answer at 2 am: an Omneo that refuses, stalls, redirects, answers
pages instead of JSON, echoes headers, asks to wait an hour, or is not there at all; and the
nights around a push: a benefit refused then issued again, a run pushed from a moved project.

Found by an adversarial review of push; each test names the fault it holds push to. Real
processes (tests/nights.py), the fake Omneo (tests/fake_omneo.py) or a scripted server
(tests/scripted_server.py), all on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from fake_omneo import FakeOmneo
from nights import (AS_OF, BIRTHDAY_PROFILE, NEXT_NIGHT, SAMPLE, TOKEN, WELCOME_PROFILE, cli, emitted, make_run,
                    payload_ids, push)
from nights import copy, sample, single  # noqa: F401 (fixtures)
from scripted_server import Scripted, js


@pytest.mark.parametrize("profile", [BIRTHDAY_PROFILE, WELCOME_PROFILE], ids=["same-body", "new-issued-at"])
def test_a_rejected_benefit_issued_again_the_next_night_is_pushed(tmp_path, profile):
    # push.md: "a rejected benefit is forgotten by the state, so tomorrow's run may issue it
    # again". Tomorrow's run does, but the idempotency key of a benefit call hashes only its
    # external_ids (sql/benefit_calls.sql), so with --single the re-issued call has the key
    # of the rejected one. Same body (birthday: fixed issued_at): Journal.register skips it
    # as known, it is never sent, and push exits 0 ("14 sent" of 15 calls) while the state
    # calls it emitted. New body (welcome: issued at --as-of): the whole night's push stops
    # with "journaled with another body" (exit 1). pipeline/push/journal.py register().
    state = tmp_path / "state"
    make_run(tmp_path / "n1", state, "--single")
    with FakeOmneo(TOKEN, bad_profiles={profile}) as omneo:
        first = push(tmp_path / "n1", None, omneo.base_url, "--kinds", "benefits")
        assert first.returncode == 3, first.stdout + first.stderr
        omneo.bad_profiles = frozenset()  # the profile is fixed in Omneo by the next night
        make_run(tmp_path / "n2", state, "--single", as_of=NEXT_NIGHT)
        again = [i for i in payload_ids(tmp_path / "n2") if profile in i]
        assert len(again) == 1  # the next night issues it afresh, as documented

        second = push(tmp_path / "n2", None, omneo.base_url, "--kinds", "benefits")

        assert second.returncode == 0, second.stdout + second.stderr
        assert omneo.applied("benefits")[again[0]] == 1, "re-issued benefit never reached Omneo"


def test_a_project_folder_moved_between_two_pushes_sends_nothing_twice(tmp_path):
    # The nightly layout of docs/push.md (runs/<night>, default state beside it). The issue
    # stage records the state folder as an absolute path, and push (cli.py _state_of) uses
    # it; after the folder moves, that path is gone, Journal() silently creates a new empty
    # journal there, and every call already sent goes again.
    root, moved = tmp_path / "srv", tmp_path / "srv-new"
    root.mkdir()
    made = cli("run", "--input", str(SAMPLE), "--campaigns", str(SAMPLE / "campaigns.toml"), "--out",
               "runs/2026-11-22", "--as-of", AS_OF, "--max-reject-ratio", "1", "--single", "-q", cwd=root)
    assert made.returncode == 0, made.stderr
    with FakeOmneo(TOKEN) as omneo:
        first = cli("push", "--out", "runs/2026-11-22", "--base-url", omneo.base_url, "--max-calls", "20",
                    "--concurrency", "1", "-q", cwd=root)
        assert first.returncode == 4, first.stderr
        shutil.move(root, moved)

        cli("push", "--out", "runs/2026-11-22", "--base-url", omneo.base_url, "--queue-wait", "0", "-q", cwd=moved)

        twice = {k: n for k, n in omneo.applied("benefits").items() if n > 1}
        assert twice == {}, f"{len(twice)} benefits applied twice after the folder moved"


def test_push_with_another_state_does_not_send_a_pushed_run_again(sample, copy, tmp_path):
    # `run` refuses a resumed run with another --state (exit 2), push does not: a fresh
    # journal means every call, returns included, goes again. The manifest records both the
    # state the run issued with and that it was pushed (stages.push). A second push on a
    # shared state is even told to "give this run its own --state" (state.locked()).
    run, state = copy(sample)
    with FakeOmneo(TOKEN) as omneo:
        assert push(run, state, omneo.base_url).returncode == 0

        push(run, tmp_path / "elsewhere", omneo.base_url)

        assert max(omneo.applied("benefits").values()) == 1
        assert max(omneo.returns().values()) == 1, "a return was applied twice"


@pytest.mark.parametrize("lookup", ["html-200", "404", "200-without-data"])
def test_a_lookup_that_answers_nothing_usable_never_leads_to_a_resend(sample, copy, lookup):
    # A redemption's POST got a 500 after Omneo applied it: the outcome is unknown and must
    # be settled by lookup. A lookup answered by a non-JSON 200 (a proxy page), a 200 with no
    # `data` list, or a 404 (the redemptions lookup path is one Omneo does not document,
    # push.md) is read as "not there", and the redemption is POSTed again: applied twice.
    # pipeline/push/sender.py _get_now(): 404 -> False; `data` not a list -> False.
    run, state = copy(sample)

    def answer(request):
        if request["method"] == "POST":
            if len([r for r in server.log if r["method"] == "POST"]) == 1:
                return js(500, {"message": "Server Error"})
            return js(201, {"data": {"id": 9}})
        if lookup == "html-200":
            return 200, None, {"Content-Type": "text/html"}, b"<html>maintenance</html>"
        if lookup == "404":
            return js(404, {"message": "Not Found"})
        return js(200, {"message": "OK"})

    with Scripted(answer) as server:
        push(run, state, server.base_url, "--kinds", "redemptions")

        assert len(server.posts()) == 1, "the redemption was POSTed again on a lookup that proved nothing"


def test_resolve_pending_refuses_a_call_that_was_sent(sample, copy):
    # --resolve is for a call of unknown outcome (push.md). Journal.resolve() accepts any key
    # in any state, so a typo'd or stale KEY=pending on a return that was sent returns it twice.
    run, state = copy(sample)
    key = json.loads((run / "payloads/returns/part-00000.ndjson").read_text().splitlines()[0])["idempotency_key"]
    with FakeOmneo(TOKEN) as omneo:
        assert push(run, state, omneo.base_url).returncode == 0

        push(run, state, omneo.base_url, "--resolve", f"{key}=pending")

        assert max(omneo.returns().values()) == 1, "a sent return was sent again"


def test_max_calls_is_a_budget_whatever_the_concurrency(single, copy):
    # --max-calls 2 with --concurrency 4 made 5 POSTs (5 with 8 workers made 12): every
    # worker checks the budget before it queues at the gate, and `posts` only grows once it
    # is through (sender.py _deliver / _post).
    run, state = copy(single)
    with FakeOmneo(TOKEN) as omneo:
        result = push(run, state, omneo.base_url, "--max-calls", "2", "--concurrency", "4", "--rate", "50")

        assert result.returncode == 4
        assert len([r for r in omneo.requests() if r.method == "POST"]) == 2


def test_a_retry_after_beyond_patience_gives_up_instead_of_waiting(sample, copy):
    # A 429 with Retry-After: 3600 (or an HTTP date next year) and --patience 2: the push
    # sleeps the whole hour (stamina waits the pause it is given, Gate.enter() holds every
    # worker until resume_at), instead of leaving the call pending and exiting 4.
    run, state = copy(sample)
    with Scripted(lambda request: js(429, {"message": "Too Many Attempts."}, {"Retry-After": "3600"})) as server:
        try:
            result = push(run, state, server.base_url, "--kinds", "benefits", "--patience", "2", timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("push still waiting 30 s into a 3600 s Retry-After with --patience 2")
        assert result.returncode == 4


def test_an_unreachable_omneo_ends_the_push_within_its_patience(single, copy):
    # Nothing listens: each of the 62 calls is retried for --patience on its own, one after
    # another per worker, so 62 calls at --patience 1 --concurrency 2 take ~55 s. With the
    # defaults (900 s, 4 workers) a 10,000-call night would run for weeks, holding the state
    # lock so the next night's `run` stops with "state folder in use".
    run, state = copy(single)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = push(run, state, f"http://127.0.0.1:{port}", "--kinds", "benefits", "--patience", "1",
                  "--concurrency", "2", timeout=300)
    assert result.returncode == 4
    assert time.monotonic() - started < 20, f"push took {time.monotonic() - started:.0f} s to give up"


def test_a_redirect_is_not_omneo_rejecting_the_benefits(sample, copy):
    # A 301 (a --base-url that redirects) is classified `rejected` (sender.py _classify: any
    # status that is not 2xx/429/401/403/408/5xx), so push says "62 benefits rejected by
    # Omneo" and the state forgets all 62 (exit 3). Nothing reached Omneo's validation.
    run, state = copy(sample)
    before = emitted(state)
    with Scripted(lambda request: (301, None, {"Location": "https://elsewhere.invalid/"}, b"")) as server:
        result = push(run, state, server.base_url, "--kinds", "benefits")

    assert result.returncode != 3, result.stdout
    assert emitted(state) == before, "the state forgot benefits Omneo never saw"


def test_a_2xx_that_is_not_omneos_json_is_not_sent(sample, copy):
    # A 200 text/html page for every path (a --base-url pointing at a web app or a proxy)
    # records every call `sent` and exits 0: nothing was delivered, and no later push will
    # ever send it (sender.py _classify: 2xx -> sent whatever the body).
    run, state = copy(sample)
    with Scripted(lambda request: (200, None, {"Content-Type": "text/html"}, b"<!doctype html><p>app</p>")) as server:
        result = push(run, state, server.base_url, "--kinds", "benefits")

    assert result.returncode != 0, result.stdout


def test_answers_that_cannot_be_read_leave_no_call_in_flight_and_no_internal_error(sample, copy):
    # A Retry-After of "²" (str.isdigit() says yes, float() says no) and a body marked gzip
    # that is not: both ended the push with "internal error", the call left in flight.
    run, state = copy(sample)
    answers = iter([(201, None, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, b"not gzip"),
                    js(429, {"message": "Too Many Attempts."}, {"Retry-After": "²"})])

    def answer(request):
        if request["method"] == "GET":
            return js(200, {"data": []})
        return next(answers, js(201, {"data": {"id": 1}}))

    with Scripted(answer) as server:
        result = push(run, state, server.base_url, "--kinds", "benefits")

    assert "internal error" not in result.stdout + result.stderr, result.stderr
    assert result.returncode in (0, 4), result.stdout + result.stderr
    with sqlite3.connect(state / "push" / "journal.sqlite") as journal:
        assert journal.execute("SELECT count(*) FROM calls WHERE state = 'in_flight'").fetchone() == (0,)


@pytest.mark.parametrize("status", [404, 405, 413])
def test_a_4xx_web_page_is_not_omneo_rejecting_the_night(sample, copy, status):
    # A --base-url with a wrong path: nginx answers 404 text/html. Every call was marked
    # rejected, the state forgot every benefit, and the right --base-url then sent nothing.
    run, state = copy(sample)
    before = emitted(state)
    page = (status, None, {"Content-Type": "text/html"}, b"<html><body><h1>Not Found</h1>nginx</body></html>")
    with Scripted(lambda request: page) as server:
        result = push(run, state, server.base_url)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "does not look like Omneo's API" in result.stderr
    assert emitted(state) == before, "the state forgot benefits Omneo never saw"
    with FakeOmneo(TOKEN) as omneo:
        again = push(run, state, omneo.base_url)
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(omneo.applied("benefits")) == sum(
            len(json.loads(line)["body"]["benefits"]) for f in sorted((run / "payloads" / "benefits").glob("*.ndjson"))
            for line in f.read_text().splitlines())


def test_an_answer_that_trickles_is_cut_at_the_timeout(sample, copy):
    # httpx's timeout bounds each read: one byte every 0.5 s kept a call, and the push, waiting
    # without end (37 s for a 70-byte answer at --timeout 2). Cut at --timeout, the call is
    # of unknown outcome, and the push gives up within its patience.
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def serve(connection: socket.socket) -> None:
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536) or b"\r\n\r\n"
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += connection.recv(65536) or b"x" * length
            connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 70\r\n\r\n")
            for _ in range(70):
                if stop.wait(0.5):
                    return
                try:
                    connection.sendall(b" ")
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    run, state = copy(sample)
    started = time.monotonic()
    try:
        result = push(run, state, f"http://127.0.0.1:{listener.getsockname()[1]}", "--kinds", "benefits",
                      "--timeout", "1", "--patience", "3", timeout=120)
    finally:
        stop.set()
        listener.close()

    assert result.returncode == 4, result.stdout + result.stderr
    assert time.monotonic() - started < 25, f"push took {time.monotonic() - started:.0f} s"


def files_holding(text: str, *folders: Path) -> list[str]:
    return [str(p) for folder in folders for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_a_two_line_token_file_never_puts_the_token_in_a_file(sample, copy, tmp_path):
    # read_token() strips the ends only; a token with an inner newline makes httpx raise
    # LocalProtocolError("Illegal header value b'Bearer <token>'"), a TransportError, taken
    # for "sent, then cut": the call goes `ambiguous` and the message, token included (as
    # bytes repr, so the mask's str.replace misses it), is written to the journal,
    # push/results.parquet, report.html and report.md. Nothing was sent; it should be one
    # line, exit 1.
    run, state = copy(sample)
    token_file = tmp_path / "token"
    token_file.write_text("first-half-of-secret\nsecond-half-of-secret\n", encoding="utf-8")
    token_file.chmod(0o600)
    with Scripted(lambda request: js(200, {"batch_id": 1})) as server:
        result = push(run, state, server.base_url, "--kinds", "benefits", "--token-file", str(token_file),
                      "--patience", "2", token=None)

    for part in ("first-half-of-secret", "second-half-of-secret"):
        assert files_holding(part, run, state) == [], "the token is written to these files"
        assert part not in result.stdout + result.stderr
    assert result.returncode == 1, result.stdout + result.stderr


def test_a_token_that_is_not_ascii_is_one_clear_line(sample, copy):
    # A token pasted with a non-ASCII character ends in "internal error: UnicodeEncodeError"
    # from httpx building the headers (after the push has already committed results).
    run, state = copy(sample)
    with Scripted(lambda request: js(200, {"batch_id": 1})) as server:
        result = push(run, state, server.base_url, "--kinds", "benefits", token="tok\u00e9n-123")

    assert result.returncode == 1
    assert "internal error" not in result.stderr, result.stderr


def test_debug_never_prints_a_token_the_server_echoes(sample, copy):
    # The AuthError message carries Omneo's reason phrase; masked by Log without --debug,
    # but --debug re-raises it unmasked (cli.py reports_errors) and Python prints it.
    run, state = copy(sample)

    def answer(request):
        return js(401, {"message": "Unauthenticated."}, reason=f"Unauthenticated ({request['headers'].get('Authorization')})")

    with Scripted(answer) as server:
        result = push(run, state, server.base_url, "--kinds", "benefits", "--debug")

    assert result.returncode == 1
    assert TOKEN not in result.stdout + result.stderr


def test_omneos_reasons_for_rejected_benefits_are_masked_too(sample, copy):
    # Journal.settle() masks the token in `error`, and stores each rejected
    # benefit's reason as Omneo sent it: a server that echoes the header puts the token in
    # <state>/push/journal.sqlite (table rejected_benefits).
    run, state = copy(sample)

    def answer(request):
        auth = request["headers"].get("Authorization")
        return js(422, {"message": "The given data was invalid.",
                        "errors": {"benefits.0.profile_id": [f"{auth} may not create this benefit"]}})

    with Scripted(answer) as server:
        push(run, state, server.base_url, "--kinds", "benefits")

    journal = sqlite3.connect(state / "push" / "journal.sqlite")
    try:
        reasons = [r for (r,) in journal.execute("SELECT reason FROM rejected_benefits")]
    finally:
        journal.close()
    assert reasons and not any(TOKEN in r for r in reasons)


def test_tonights_exit_0_means_tonights_calls_were_sent(tmp_path):
    # Corrective calls are keyed by their exception (reconcile.py), so the next night's run
    # on the same exports emits the same keys and bodies. Last night's push stopped early
    # (exit 4) and was not rerun; tonight's push finds those keys journaled under last
    # night's run id, registers nothing, sends none of them, and exits 0 ("benefits 1 sent"):
    # tonight's redemption, claim-redeem and returns never reach Omneo.
    # pipeline/push/journal.py register() and entries(run_id).
    state = tmp_path / "state"
    make_run(tmp_path / "n1", state)
    with FakeOmneo(TOKEN) as omneo:
        stopped = push(tmp_path / "n1", None, omneo.base_url, "--max-calls", "1", "--concurrency", "1")
        assert stopped.returncode == 4
        make_run(tmp_path / "n2", state, as_of=NEXT_NIGHT)

        tonight = push(tmp_path / "n2", None, omneo.base_url)

        if tonight.returncode == 0:
            assert len(omneo.applied("redemptions")) == 1 and len(omneo.applied("claim_redeem")) == 1, \
                "exit 0, yet tonight's redemption and claim-redeem were never sent"
            assert sum(omneo.returns().values()) == 3, "exit 0, yet tonight's returns were never sent"
