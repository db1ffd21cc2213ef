"""`omneo-bulk push` against a fake Omneo: a real HTTP server on 127.0.0.1 that keeps state,
counts every application and injects every fault (tests/fake_omneo.py).

Every test pushes a real finished run (the sample, or generated exports) and asserts what
the server counted, the exit status, the lines printed and the files written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from fake_omneo import FakeOmneo, Faults
from nights import AS_OF, OMNEO_BULK, SAMPLE, TOKEN, copy, environment, make_run, sample  # noqa: F401 (fixtures)
from pipeline import __version__
from pipeline.cli import main


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("generated")
    made = subprocess.run([OMNEO_BULK, "generate", "--out", str(root / "exports"), "--profiles", "20000",
                           "--seed", "3", "-q"], env=environment(), capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    make_run(root / "run", root / "state", exports=root / "exports")
    return root / "run", root / "state"


def quick(extra: tuple[str, ...]) -> list[str]:
    """The fake applies a batch at once (no queue_delay): no need to wait before a lookup."""
    return [*extra] if "--queue-wait" in extra else [*extra, "--queue-wait", "0"]


def push(run: Path, state: Path, omneo: FakeOmneo | None, *extra: str, token: str | None = TOKEN):
    """`omneo-bulk push` in this process, as a user would type it."""
    args = ["push", "--out", str(run), "--state", str(state), *quick(extra)]
    if omneo is not None:
        args += ["--base-url", omneo.base_url]
    env = {"OMNEO_TOKEN": token} if token else {"OMNEO_TOKEN": None}
    return CliRunner().invoke(main, args, env=env)


def push_process(run: Path, state: Path, omneo: FakeOmneo, *extra: str, kill_at: str | None = None):
    env = environment(OMNEO_TOKEN=TOKEN, **({"OMNEO_BULK_TEST_KILL_AT": kill_at} if kill_at else {}))
    return [OMNEO_BULK, "push", "--out", str(run), "--state", str(state), "--base-url", omneo.base_url,
            *quick(extra)], env


def calls_in(run: Path, kind: str) -> list[dict]:
    found = []
    for file in sorted((run / "payloads" / kind).glob("*.ndjson")):
        found += [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()]
    return found


def expected(run: Path) -> dict[str, list[str]]:
    """The external_ids the run's payloads create, per kind (each must be applied once)."""
    benefits = [b["external_id"] for c in calls_in(run, "benefits") for b in c["body"].get("benefits", [c["body"]])]
    return {
        "benefits": benefits,
        "redemptions": [c["body"]["external_id"] for c in calls_in(run, "redemptions")],
        "claim_redeem": [c["body"]["external_id"] for c in calls_in(run, "claim_redeem")],
    }


def assert_applied_exactly_once(run: Path, omneo: FakeOmneo, kinds=("benefits", "redemptions", "claim_redeem")) -> None:
    for kind in kinds:
        wanted = expected(run)[kind]
        applied = omneo.applied(kind)
        assert sorted(applied) == sorted(wanted), f"{kind}: applied {len(applied)} of {len(wanted)}"
        twice = {k: n for k, n in applied.items() if n != 1}
        assert twice == {}, f"{kind} applied more than once: {twice}"


def results(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "push" / "results.parquet")


def until_settled(run: Path, state: Path, omneo: FakeOmneo, *extra: str, tries: int = 8):
    """Push again while it says incomplete for anything but a return waiting for review."""
    for _ in range(tries):
        result = push(run, state, omneo, *extra)
        waiting = results(run).filter(pl.col("state") != "sent")
        if result.exit_code != 4 or waiting.filter(pl.col("kind") != "returns").height == 0:
            return result
    return result


# 1. Every fault at once: exactly once, returns never twice, never above the rate -------------


# Every fault on, lookups included; at 20k profiles at half the odds each, so that the
# lookups of a few hundred batches of unknown outcome fit in the test's time.
HALF = Faults(unavailable=0.05, apply_then_500=0.05, apply_then_reset=0.05, apply_then_stall=0.05, lookups_fail=True)


@pytest.mark.parametrize("made, faults, server_rate, rate", [("sample", Faults.everything(), 15, 30),
                                                             ("generated_run", HALF, 150, 200)])
def test_every_fault_on_still_applies_each_call_exactly_once(request, copy, made, faults, server_rate, rate):
    # Omneo allows fewer calls a second than --rate asks: 429s come, the push slows down.
    run, state = copy(request.getfixturevalue(made))
    with FakeOmneo(TOKEN, rate=server_rate, faults=faults, seed=11, stall_seconds=1.0) as omneo:
        # Each fault at least once, whatever the draws; random ones follow.
        omneo.queue_faults("unavailable", "apply_then_500", "apply_then_reset", "apply_then_stall")
        result = until_settled(run, state, omneo, "--rate", str(rate), "--concurrency", "8", "--timeout", "0.4")

        assert result.exit_code in (0, 4), result.output
        assert_applied_exactly_once(run, omneo)
        # A return of unknown outcome is never sent again: at most one application each.
        returns = omneo.returns()
        assert all(n == 1 for n in returns.values()), returns
        review = results(run).filter((pl.col("kind") == "returns") & (pl.col("state") != "sent"))
        assert set(review["state"]) <= {"ambiguous"}
        assert result.exit_code == (4 if review.height else 0)
        # The server's own clock: never more than --rate calls in any second.
        assert omneo.max_calls_in_window(1.0) <= rate
        faults = {r.fault for r in omneo.requests()}
        assert {"unavailable", "apply_then_500", "apply_then_reset", "apply_then_stall"} <= faults
        assert any(r.status == 429 for r in omneo.requests())


# 2. Killed at any moment, rerun: still exactly once, and the rerun finishes ----------------


KILL_POINTS = ["push_in_flight@1", "push_in_flight@6", "push_in_flight@15", "push_answered@1", "push_answered@9",
               "push_answered@20"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_push_killed_at_a_named_instant_resumes_exactly_once(generated_run, copy, point):
    run, state = copy(generated_run)
    with FakeOmneo(TOKEN) as omneo:
        command, env = push_process(run, state, omneo, "--rate", "100", "--kinds", "benefits,claim_redeem,redemptions",
                                    kill_at=point)
        killed = subprocess.run(command, env=env, capture_output=True, text=True)
        assert killed.returncode == -signal.SIGKILL, killed.stderr

        command, env = push_process(run, state, omneo, "--rate", "100", "--kinds", "benefits,claim_redeem,redemptions")
        rerun = subprocess.run(command, env=env, capture_output=True, text=True)

        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert_applied_exactly_once(run, omneo)


def test_a_push_killed_after_any_journal_step_of_a_refused_batch_applies_the_rest_once(sample, copy, tmp_path):
    # A 422 for one benefit of a batch: the other benefits go again as a new call. Killed
    # between journaling that new call and marking the refused one, the rerun looked the
    # refused batch up, found nothing, sent it again, and made a second copy of the rest:
    # both were applied. Killed after each journal commit in turn, every good benefit is
    # applied once and the bad one never.
    bad = calls_in(sample[0], "benefits")[0]["body"]["benefits"][3]
    good = sorted(b for b in expected(sample[0])["benefits"] if b != bad["external_id"])
    for step in range(1, 30):
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        shutil.rmtree(tmp_path / "state", ignore_errors=True)
        run, state = copy(sample)
        with FakeOmneo(TOKEN, bad_profiles={bad["profile_id"]}) as omneo:
            command, env = push_process(run, state, omneo, "--kinds", "benefits",
                                        kill_at=f"push_journal_committed@{step}")
            killed = subprocess.run(command, env=env, capture_output=True, text=True)
            for _ in range(3):
                command, env = push_process(run, state, omneo, "--kinds", "benefits")
                rerun = subprocess.run(command, env=env, capture_output=True, text=True)
                if rerun.returncode != 4:
                    break
            assert rerun.returncode == 3, rerun.stdout + rerun.stderr
            applied = omneo.applied("benefits")
            assert sorted(applied) == good, f"killed after journal commit {step}"
            assert set(applied.values()) == {1}, f"killed after journal commit {step}: applied twice"
        if killed.returncode != -signal.SIGKILL:
            break  # the push ended before that many commits: every step was tried
    assert step > 3


def test_a_push_killed_after_a_lookup_decided_resumes_exactly_once(generated_run, copy):
    run, state = copy(generated_run)
    kinds = ("--rate", "100", "--kinds", "benefits,claim_redeem,redemptions")
    with FakeOmneo(TOKEN) as omneo:
        # Answered but not journaled: the rerun must look it up, and is killed right after.
        for point in ("push_answered@3", "push_resolved@1"):
            command, env = push_process(run, state, omneo, *kinds, kill_at=point)
            assert subprocess.run(command, env=env, capture_output=True).returncode == -signal.SIGKILL
        command, env = push_process(run, state, omneo, *kinds)
        rerun = subprocess.run(command, env=env, capture_output=True, text=True)

        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert_applied_exactly_once(run, omneo)
        assert any(r.method == "GET" for r in omneo.requests())


WITHOUT_RETURNS = ("--rate", "40", "--kinds", "benefits,claim_redeem,redemptions")


@pytest.fixture(scope="module")
def push_seconds(generated_run, tmp_path_factory) -> float:
    """How long an undisturbed push of the generated run takes on this machine today."""
    root = tmp_path_factory.mktemp("timed")
    shutil.copytree(generated_run[0], root / "run")
    shutil.copytree(generated_run[1], root / "state")
    with FakeOmneo(TOKEN) as omneo:
        command, env = push_process(root / "run", root / "state", omneo, *WITHOUT_RETURNS)
        started = time.monotonic()
        assert subprocess.run(command, env=env, capture_output=True).returncode == 0
        return time.monotonic() - started


@pytest.mark.parametrize("fraction", [0.15, 0.35, 0.55, 0.75, 0.9])
def test_a_push_killed_at_any_moment_resumes_exactly_once(generated_run, copy, push_seconds, fraction):
    run, state = copy(generated_run)
    with FakeOmneo(TOKEN) as omneo:
        command, env = push_process(run, state, omneo, *WITHOUT_RETURNS)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=push_seconds * fraction)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        process.wait()
        rerun = subprocess.run(command, env=env, capture_output=True, text=True)

        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert_applied_exactly_once(run, omneo)


def test_a_batch_of_unknown_outcome_is_looked_up_only_once_omneo_has_queued_it(sample, copy):
    # Omneo's batch endpoint queues its benefits; a lookup too soon finds nothing yet.
    run, state = copy(sample)
    with FakeOmneo(TOKEN, queue_delay=1.0) as omneo:
        omneo.queue_faults("apply_then_500")
        result = push(run, state, omneo, "--kinds", "benefits", "--queue-wait", "1.5")

        assert result.exit_code == 0, result.output
        assert_applied_exactly_once(run, omneo, kinds=("benefits",))
        lookups = [r for r in omneo.requests() if r.method == "GET"]
        assert lookups and min(r.arrived_at for r in lookups) - omneo.requests()[0].arrived_at >= 1.5


def test_a_return_of_unknown_outcome_is_never_resent(sample, copy):
    run, state = copy(sample)
    with FakeOmneo(TOKEN) as omneo:
        omneo.queue_faults("apply_then_500")  # the first return is applied, then Omneo answers 500
        first = push(run, state, omneo, "--kinds", "returns")
        again = push(run, state, omneo, "--kinds", "returns")

        assert first.exit_code == again.exit_code == 4
        [stuck] = results(run).filter(pl.col("state") == "ambiguous")["key"].to_list()
        assert f"return {stuck} has an unknown outcome and is never resent" in again.output
        assert all(n == 1 for n in omneo.returns().values())
        assert len(omneo.returns()) == len(calls_in(run, "returns"))

        settled = push(run, state, omneo, "--kinds", "returns", "--resolve", f"{stuck}=sent")

        assert settled.exit_code == 0, settled.output
        assert all(n == 1 for n in omneo.returns().values())


# 3. Retry-After, as the server saw it ------------------------------------------------------------


def test_retry_after_is_honoured_in_seconds_as_a_date_and_as_zero(generated_run, copy):
    run, state = copy(generated_run)
    with FakeOmneo(TOKEN, rate=2) as omneo:
        result = push(run, state, omneo, "--rate", "20", "--concurrency", "4", "--kinds", "claim_redeem,redemptions,returns")

        assert result.exit_code == 0, result.output
        asked = [r.retry_after for r in omneo.requests() if r.status == 429]
        assert any(a and a.isdigit() and a != "0" for a in asked), asked  # seconds
        assert any(a and "GMT" in a for a in asked), asked  # an HTTP date
        assert "0" in asked and None in asked  # zero, and none: both mean back off
        for wait, gap in omneo.retry_after_honoured():
            if gap is None:
                continue
            assert gap >= (wait - 0.05 if wait else 0.4), (wait, gap)


# 4. A refused benefit: exit 3, and tomorrow may issue it again ----------------------------------


def test_no_two_requests_leave_closer_than_the_rate_allows_when_the_rate_changes(generated_run, copy):
    # Omneo allows fewer calls a second than --rate: 429s halve the rate, successes raise it.
    # Each change made a fresh limiter, and the next request left at once: two requests a
    # few milliseconds apart, a burst above any rate.
    run, state = copy(generated_run)
    with FakeOmneo(TOKEN, rate=6) as omneo:
        result = push(run, state, omneo, "--rate", "10", "--concurrency", "4",
                      "--kinds", "claim_redeem,redemptions,returns")
        arrivals = sorted(r.arrived_at for r in omneo.requests())

    assert result.exit_code == 0, result.output
    assert any(r.status == 429 for r in omneo.requests())
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert min(gaps) > 0.5 / 10, sorted(gaps)[:5]


def test_a_422_benefit_is_rejected_and_the_next_run_may_issue_it_again(sample, copy, tmp_path):
    run, state = copy(sample)
    batch = calls_in(run, "benefits")[0]["body"]["benefits"]
    bad = batch[3]
    with FakeOmneo(TOKEN, bad_profiles={bad["profile_id"]}) as omneo:
        result = push(run, state, omneo)

        assert result.exit_code == 3, result.output
        assert "1 benefits rejected by Omneo: the next run may issue them again" in result.output
        applied = omneo.applied("benefits")
        assert bad["external_id"] not in applied
        assert sorted(applied) == sorted(b for b in expected(run)["benefits"] if b != bad["external_id"])
        rows = results(run)
        assert rows.filter(pl.col("state") == "rejected")["status"].to_list() == [422]
        assert "benefits.3.profile_id" in rows.filter(pl.col("state") == "rejected")["error"][0]

    tomorrow = CliRunner().invoke(main, [
        "issue", "--input", str(SAMPLE), "--campaigns", str(SAMPLE / "campaigns.toml"), "--out", str(tmp_path / "next"),
        "--state", str(state), "--as-of", AS_OF])
    assert tomorrow.exit_code == 0, tomorrow.output
    plan = pl.read_parquet(tmp_path / "next" / "issuance" / "plan.parquet")
    decided = dict(plan.select("external_id", "decision").iter_rows())
    assert decided[bad["external_id"]] == "issue"
    assert {d for k, d in decided.items() if k != bad["external_id"] and k in set(applied)} == {"skip"}


# 5. The token is nowhere ------------------------------------------------------------------------


def test_the_token_reaches_no_file_and_no_line(sample, copy):
    run, state = copy(sample)
    printed = []
    with FakeOmneo(TOKEN, rate=5, faults=Faults.everything(), seed=2, stall_seconds=1.0) as omneo:
        printed.append(until_settled(run, state, omneo, "--timeout", "0.4", "--log-format", "json").output)
        printed.append(push(run, state, omneo, "--debug").output)
    with FakeOmneo("another-token") as refusing:  # answers 401 to ours
        denied = push(run, state, refusing, "--debug")
        printed.append(denied.output + repr(denied.exception))
        command, env = push_process(run, state, refusing, "--debug")
        printed.append(subprocess.run(command, env=env, capture_output=True, text=True).stderr)

    for text in printed:
        assert TOKEN not in text
    for folder in (run, state):
        for path in folder.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


def test_401_stops_at_once_with_one_line(sample, copy):
    run, state = copy(sample)
    with FakeOmneo("another-token") as omneo:
        result = push(run, state, omneo, "--concurrency", "1")

        assert result.exit_code == 1
        [line] = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert line.startswith("error: Omneo answered 401 Unauthorized to /api/v3/benefits/batch.json: the token")
        assert len(omneo.requests()) == 1
        assert set(results(run)["state"]) == {"pending"}


# 6. The guard ---------------------------------------------------------------------------------------


def test_the_guard_refuses_a_night_five_times_the_median_and_force_sends_it(tmp_path):
    exports, state = tmp_path / "in", tmp_path / "state"
    exports.mkdir()
    (exports / "benefit_definitions.csv").write_text("id,handle,name\n95,gift,Gift\n", encoding="utf-8")

    def night(number: int, profiles: int) -> Path:
        ids = [f"n{number}p{i}" for i in range(profiles)]
        (exports / "profiles.csv").write_text("id\n" + "\n".join(ids) + "\n", encoding="utf-8")
        (tmp_path / "c.toml").write_text(f'[[campaigns]]\nid = "gift-{number}"\ndefinition = "gift"\n', encoding="utf-8")
        out = tmp_path / f"night-{number}"
        result = CliRunner().invoke(main, ["issue", "--input", str(exports), "--campaigns",
                                           str(tmp_path / "c.toml"), "--out", str(out), "--state", str(state),
                                           "--as-of", f"2026-11-2{number}T09:00:00+11:00", "--max-reject-ratio", "1"])
        assert result.exit_code == 0, result.output
        return out

    for number, profiles in ((1, 4), (2, 6), (3, 4)):
        night(number, profiles)
    tonight = night(4, 30)  # 30 against a median of 4: 7.5x

    with FakeOmneo(TOKEN) as omneo:
        refused = push(tonight, state, omneo)
        assert refused.exit_code == 1
        [line] = [line for line in refused.output.splitlines() if line.startswith("error:")]
        assert "would send 30 benefits, more than 3x the median of the last 3 runs (4)" in line
        assert omneo.requests() == []

        forced = push(tonight, state, omneo, "--force")
        assert forced.exit_code == 0, forced.output
        assert len(omneo.applied("benefits")) == 30

    page = (tonight / "report.html").read_text(encoding="utf-8")
    assert "Tonight beside the recent runs" in page and "gift-4" in page


# The rest of the contract -----------------------------------------------------------------------


def test_dry_run_checks_every_line_and_touches_no_network(sample, copy):
    run, state = copy(sample)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with FakeOmneo(TOKEN) as omneo:
        result = push(run, state, None, "--dry-run", token=None)

        assert result.exit_code == 0, result.output
        assert omneo.requests() == []
    assert "benefits      1 send" in result.output
    assert "returns       3 send" in result.output
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert not (state / "push").exists()


def test_dry_run_after_a_push_says_what_is_left(sample, copy):
    run, state = copy(sample)
    with FakeOmneo(TOKEN) as omneo:
        omneo.queue_faults("apply_then_500")
        push(run, state, omneo)
    result = push(run, state, None, "--dry-run", token=None)

    assert result.exit_code == 0, result.output
    assert "benefits      1 resolve by lookup" in result.output or "benefits      1 skip (sent)" in result.output
    assert "skip (sent)" in result.output


def test_requests_carry_the_key_the_agent_and_the_token(sample, copy):
    run, state = copy(sample)
    with FakeOmneo(TOKEN) as omneo:
        assert push(run, state, omneo).exit_code == 0
        posts = [r for r in omneo.requests() if r.method == "POST"]
    keys = {c["idempotency_key"] for kind in ("benefits", "claim_redeem", "redemptions", "returns")
            for c in calls_in(run, kind)}
    assert {r.idempotency_key for r in posts} == keys
    assert {r.user_agent for r in posts} == {f"omneo-bulk/{__version__}"}
    assert all(r.had_authorization for r in posts)
    # Kinds in the contract's order.
    order = [r.kind for r in posts]
    assert order == sorted(order, key=["benefits", "claim_redeem", "redemptions", "returns"].index)


def test_each_kind_is_finished_before_the_next_starts_even_when_calls_are_retried(sample, copy):
    # Half the writes answer 503 and are sent again: with one queue for every kind, the
    # workers took the next kind's calls while a benefit call waited for its retry. (Returns
    # draw no fault: one of unknown outcome waits for review, by design.)
    run, state = copy(sample)
    faults = Faults(unavailable=0.5, kinds={"benefits", "claim_redeem", "redemptions"})
    with FakeOmneo(TOKEN, faults=faults, seed=4) as omneo:
        result = push(run, state, omneo, "--concurrency", "4")
        posts = [r for r in omneo.requests() if r.method == "POST"]

    assert result.exit_code == 0, result.output
    assert any(r.status == 503 for r in posts)
    order = [r.kind for r in posts]
    assert set(order) == {"benefits", "claim_redeem", "redemptions", "returns"}
    assert order == sorted(order, key=["benefits", "claim_redeem", "redemptions", "returns"].index)


def test_a_second_push_sends_nothing(sample, copy):
    run, state = copy(sample)
    with FakeOmneo(TOKEN) as omneo:
        assert push(run, state, omneo).exit_code == 0
        sent = len(omneo.requests())
        again = push(run, state, omneo)

        assert again.exit_code == 0
        assert len(omneo.requests()) == sent


def test_max_calls_stops_and_a_rerun_goes_on(generated_run, copy):
    run, state = copy(generated_run)
    with FakeOmneo(TOKEN) as omneo:
        first = push(run, state, omneo, "--max-calls", "2", "--concurrency", "1")
        assert first.exit_code == 4
        assert len([r for r in omneo.requests() if r.method == "POST"]) == 2

        rest = push(run, state, omneo, "--kinds", "benefits,claim_redeem,redemptions", "--rate", "100")
        assert rest.exit_code == 0, rest.output
        assert_applied_exactly_once(run, omneo)


def test_results_reach_the_manifest_the_warehouse_and_the_report(sample, copy):
    run, state = copy(sample)
    with FakeOmneo(TOKEN) as omneo:
        assert push(run, state, omneo).exit_code == 0

    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    [record] = [s for s in manifest["stages"] if s["stage"] == "push"]
    total = sum(len(calls_in(run, k)) for k in ("benefits", "claim_redeem", "redemptions", "returns"))
    assert record["states"]["sent"] == record["calls"] == total and record["exit_status"] == 0
    assert "push/results.parquet" in {o["path"] for o in manifest["outputs"]}
    assert results(run).columns[:8] == ["kind", "file", "line", "key", "state", "status", "attempts", "latency_ms"]
    with duckdb.connect(str(run / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM push_results WHERE state = 'sent'").fetchone()[0] == total
        assert con.execute("SELECT value FROM summary WHERE area = 'push' AND metric = 'calls_sent'").fetchone()[0] == total
    assert "Push to Omneo" in (run / "report.html").read_text(encoding="utf-8")
    assert "## Push to Omneo" in (run / "report.md").read_text(encoding="utf-8")


def test_a_payload_edited_after_the_run_is_not_sent(sample, copy):
    run, state = copy(sample)
    part = run / "payloads" / "returns" / "part-00000.ndjson"
    part.write_text(part.read_text(encoding="utf-8").replace('"count":1', '"count":2', 1), encoding="utf-8")
    with FakeOmneo(TOKEN) as omneo:
        result = push(run, state, omneo)

        assert result.exit_code == 1
        assert f"error: {part}: changed since the run wrote it" in result.output
        assert omneo.requests() == []


def test_a_changed_body_under_a_journaled_key_stops_before_sending(sample, copy):
    # As if a rerun had written another body under a key already sent: the manifest agrees
    # with the file, the journal does not.
    run, state = copy(sample)
    with FakeOmneo(TOKEN) as omneo:
        assert push(run, state, omneo, "--kinds", "returns").exit_code == 0
        part = run / "payloads" / "returns" / "part-00000.ndjson"
        part.write_text(part.read_text(encoding="utf-8").replace('"count":1', '"count":2', 1), encoding="utf-8")
        manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
        for output in manifest["outputs"]:
            if output["path"] == "payloads/returns/part-00000.ndjson":
                output["sha256"] = hashlib.sha256(part.read_bytes()).hexdigest()
        (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        sent = len(omneo.requests())

        result = push(run, state, omneo, "--kinds", "returns")

        assert result.exit_code == 1
        assert "was journaled with another body" in result.output
        assert len(omneo.requests()) == sent


@pytest.mark.parametrize("url, ok", [("http://api.acme.example.com", False), ("ftp://127.0.0.1", False),
                                     ("https://api.acme.getomneo.com", True), ("http://127.0.0.1:9", True),
                                     ("http://localhost:9", True), ("http://[::1]:9", True)])
def test_base_url_is_https_unless_loopback(sample, copy, url, ok):
    run, state = copy(sample)
    result = CliRunner().invoke(main, ["push", "--out", str(run), "--state", str(state), "--base-url", url,
                                       "--dry-run"])
    assert (result.exit_code == 0) == ok, result.output
    if not ok:
        assert result.exit_code == 2


def test_no_token_is_one_line_and_a_token_file_must_be_private(sample, copy, tmp_path):
    run, state = copy(sample)
    with FakeOmneo(TOKEN) as omneo:
        missing = push(run, state, omneo, token=None)
        assert missing.exit_code == 1
        assert "error: no API token: set OMNEO_TOKEN, or pass --token-file FILE" in missing.output

        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n", encoding="utf-8")
        token_file.chmod(0o644)
        shared = push(run, state, omneo, "--token-file", str(token_file), token=None)
        assert shared.exit_code == 1
        assert "others may read it" in shared.output
        assert omneo.requests() == []

        token_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
        private = push(run, state, omneo, "--token-file", str(token_file), token=None)
        assert private.exit_code == 0, private.output


def test_an_unfinished_run_is_not_pushed(sample, copy):
    run, state = copy(sample)
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    manifest["status"] = "running"
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with FakeOmneo(TOKEN) as omneo:
        result = push(run, state, omneo)

        assert result.exit_code == 1
        assert "did not finish (running); rerun it into the same --out first, then push" in result.output
        assert omneo.requests() == []


def test_the_state_forgets_what_the_benefits_export_confirms(tmp_path):
    # Night 1 issues to p1 and p2; night 2's export shows p1's benefit: the state drops it.
    exports, state = tmp_path / "in", tmp_path / "state"
    exports.mkdir()
    (exports / "profiles.csv").write_text("id\np1\np2\n", encoding="utf-8")
    (exports / "benefit_definitions.csv").write_text("id,handle,name\n95,gift,Gift\n", encoding="utf-8")
    (tmp_path / "c.toml").write_text('[[campaigns]]\nid = "gift"\ndefinition = "gift"\ncycle = "2026"\n', encoding="utf-8")

    def night(name: str):
        return CliRunner().invoke(main, ["issue", "--input", str(exports), "--campaigns", str(tmp_path / "c.toml"),
                                         "--out", str(tmp_path / name), "--state", str(state), "--as-of", AS_OF])

    assert night("night-1").exit_code == 0
    [first] = list((state / "issued").glob("*.parquet"))
    (exports / "benefits.csv").write_text(
        "id,profile_id,benefit_definition_id,issued_at,external_id\n"
        "1,p1,95,2026-11-22 09:00:00,bulk:gift:2026:p1\n", encoding="utf-8")

    second = night("night-2")

    assert second.exit_code == 0, second.output
    assert "1 benefits left the state: Omneo's export shows them now" in second.output
    assert pl.read_parquet(first)["external_id"].to_list() == ["bulk:gift:2026:p2"]
    plan = pl.read_parquet(tmp_path / "night-2" / "issuance" / "plan.parquet")
    assert dict(plan.select("profile_id", "reason").iter_rows()) == {
        "p1": "already_issued_this_cycle", "p2": "already_issued_this_cycle"}
