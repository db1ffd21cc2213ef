"""What a run folder refuses, so that nothing is lost: a folder that is not a run's, a path
DuckDB cannot use, another command into an unfinished run, a new run over undelivered
calls; and what a new run leaves of an earlier one (its push, its report).

Real processes on the sample exports (tests/nights.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fake_omneo import FakeOmneo
from nights import AS_OF, NEXT_NIGHT, SAMPLE, TOKEN, cli, emitted, make_run, payload_ids, push
from nights import copy, sample  # noqa: F401 (fixtures)


@pytest.mark.parametrize("name", ["night [1]", "night*"])
def test_a_run_folder_named_with_glob_characters_completes(tmp_path, name):
    # DuckDB reads [ and * in a path as a pattern: the warehouse's views name the files with
    # them escaped, and the query sandbox allows the folder under both spellings.
    made = cli("run", "--input", str(SAMPLE), "--campaigns", str(SAMPLE / "campaigns.toml"),
               "--out", str(tmp_path / name), "--state", str(tmp_path / "state"), "--as-of", AS_OF,
               "--max-reject-ratio", "1", "-q")
    assert made.returncode == 0, made.stderr
    assert json.loads((tmp_path / name / "manifest.json").read_text(encoding="utf-8"))["status"] == "complete"
    query = cli("query", "--out", str(tmp_path / name), "--format", "json", "SELECT count(*) AS n FROM plan")
    assert query.returncode == 0, query.stderr
    assert json.loads(query.stdout)[0]["n"] > 0


def test_a_run_folder_whose_path_holds_a_question_mark_is_refused_before_anything(tmp_path):
    # DuckDB takes '?' in a database file name for the start of its options: the warehouse
    # could never be written, after issue had already committed. Refused up front instead.
    made = cli("run", "--input", str(SAMPLE), "--campaigns", str(SAMPLE / "campaigns.toml"),
               "--out", str(tmp_path / "night?"), "--state", str(tmp_path / "state"), "--as-of", AS_OF,
               "--max-reject-ratio", "1", "-q")

    assert made.returncode == 1
    assert made.stderr.startswith(f"error: {tmp_path / 'night?'}: a run folder's path may not hold '?'")
    assert not (tmp_path / "night?").exists() and not (tmp_path / "state" / "issued").exists()


def test_push_dry_run_into_a_folder_that_is_not_a_run_deletes_nothing(tmp_path):
    # `push --out` the home folder by a slip: leftovers were cleared before push found there
    # was no manifest, deleting the home's .tmp and .staging folders and every file named
    # like .<name>.tmp-<digits> anywhere below. --dry-run "writes nothing" (push.md).
    home = tmp_path / "home"
    (home / ".tmp").mkdir(parents=True)
    (home / ".tmp" / "notes.txt").write_text("mine", encoding="utf-8")
    (home / "work" / "deep").mkdir(parents=True)
    (home / "work" / "deep" / ".draft.txt.tmp-7").write_text("mine", encoding="utf-8")

    result = cli("push", "--out", str(home), "--dry-run", token=None)

    assert result.returncode == 1
    assert (home / ".tmp" / "notes.txt").exists()
    assert (home / "work" / "deep" / ".draft.txt.tmp-7").exists()


def test_validate_into_an_existing_folder_keeps_files_it_did_not_write(tmp_path):
    # A folder with no manifest is taken as a run folder: its .tmp/ is removed and every
    # file under validated/ that tonight does not write is "replaced" (removed).
    out = tmp_path / "reports"
    (out / ".tmp").mkdir(parents=True)
    (out / ".tmp" / "keep.txt").write_text("mine", encoding="utf-8")
    (out / "validated").mkdir()
    (out / "validated" / "mine.txt").write_text("mine", encoding="utf-8")

    result = cli("validate", "--input", str(SAMPLE), "--out", str(out), "--max-reject-ratio", "1", "-q")

    assert result.returncode in (0, 1, 2)
    assert (out / ".tmp" / "keep.txt").exists() and (out / "validated" / "mine.txt").exists()


def test_a_folder_holding_only_what_a_killed_spark_command_left_is_taken_up(tmp_path):
    # `--engine spark` killed before its first commit leaves its scratch, .tmp/spark-<pid>/,
    # beside DuckDB's: the rerun must take the folder, not call it a folder of no run.
    out = tmp_path / "night"
    (out / ".tmp" / "spark-4242" / "scratch" / "typed").mkdir(parents=True)
    (out / ".tmp" / "spark-4242" / "scratch" / "typed" / "0.parquet").write_bytes(b"typed rows")
    (out / ".tmp" / "duckdb").mkdir()

    result = cli("validate", "--input", str(SAMPLE), "--out", str(out), "--max-reject-ratio", "1", "-q")

    assert result.returncode == 0, result.stderr
    assert (out / "manifest.json").exists() and not (out / ".tmp").exists()


def test_a_new_run_into_a_pushed_folder_does_not_show_the_old_push(sample, copy):
    # A new run (another --as-of) into a folder that was pushed keeps push/results.parquet
    # and stages.push of the earlier run in its manifest (no stage replaces "push/"), so
    # tonight's report says "Push to Omneo: ... sent" and push_results lists last night's
    # calls, though tonight's payloads were never pushed.
    run, state = copy(sample)
    with FakeOmneo(TOKEN) as omneo:
        assert push(run, state, omneo.base_url).returncode == 0
    make_run(run, state, as_of=NEXT_NIGHT)

    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    stale = [s for s in manifest["stages"] if s.get("run_id") != manifest["run_id"]]
    assert stale == [], f"stages of an earlier run: {[s['stage'] for s in stale]}"
    assert not any(o["path"].startswith("push/") for o in manifest["outputs"])


def test_another_command_into_a_killed_run_folder_is_refused_and_the_run_finishes(tmp_path):
    # `run` killed during reconcile (issue committed, state emitted). A `validate` into the
    # folder would take that run up and mark it complete, and the scheduler's retry of the
    # `run` would then be a new run replacing its payloads: 62 benefits emitted and in no
    # folder. So an unfinished run is finished only by its own command.
    out, state = tmp_path / "run", tmp_path / "state"
    command = ["run", "--input", str(SAMPLE), "--campaigns", str(SAMPLE / "campaigns.toml"), "--out", str(out),
               "--state", str(state), "--as-of", AS_OF, "--max-reject-ratio", "1", "-q"]
    assert cli(*command, OMNEO_BULK_TEST_KILL_AT="reconcile_staged").returncode == -9

    other = cli("validate", "--input", str(SAMPLE), "--out", str(out), "--max-reject-ratio", "1", "-q")

    assert other.returncode == 1
    assert "unfinished (running); rerun that command to finish it" in other.stderr
    assert cli(*command).returncode == 0
    assert emitted(state) == set(payload_ids(out)), "benefits the state calls emitted are in no run folder"


@pytest.mark.parametrize("tonights_state", ["state", "another-state"])
def test_a_new_run_over_benefit_calls_never_delivered_is_refused(tmp_path, tonights_state):
    # Last night's folder, never pushed: a new night into it would replace calls the state
    # calls emitted, so they could never be delivered nor issued again. Whatever state the
    # new night issues with: the one that calls them emitted is last night's.
    out, state = tmp_path / "run", tmp_path / "state"
    make_run(out, state)
    before = (out / "manifest.json").read_bytes()

    tonight = cli("run", "--input", str(SAMPLE), "--campaigns", str(SAMPLE / "campaigns.toml"), "--out", str(out),
                  "--state", str(tmp_path / tonights_state), "--as-of", NEXT_NIGHT, "--max-reject-ratio", "1", "-q")

    assert tonight.returncode == 1, tonight.stderr
    assert f"never delivered, which the state {state} calls emitted" in tonight.stderr
    assert f"omneo-bulk push --out {out}" in tonight.stderr
    assert (out / "manifest.json").read_bytes() == before


def test_a_manifest_without_as_of_is_one_line_naming_it(sample, copy):
    # _read_json checks run_id, outputs, stages only; RunContext.open then reads
    # previous["as_of"]: "internal error: KeyError: 'as_of'".
    run, _ = copy(sample)
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    del manifest["as_of"]
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    result = cli("push", "--out", str(run), "--dry-run", token=None)

    assert result.returncode == 1
    assert "internal error" not in result.stderr and "manifest.json" in result.stderr, result.stderr
