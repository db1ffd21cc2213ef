"""The run folder and the state around a kill: locks, damaged files, which rerun is the same run.

The kills themselves are in test_crash_safety.py; these are the faults a user meets around
them, each as one clear line. Fixtures are tiny exports built in tmp_path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from fake_omneo import FakeOmneo
from nights import TOKEN
from pipeline.cli import main
from test_issuance import ONE_CAMPAIGN, definition, issue, plan, profile, scenario, write_rows


def hold_folder(folder: Path) -> subprocess.Popen:
    """Another process holding the run folder, as a command still writing it would."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from pipeline.runfolder import RunFolder\n"
         f"folder = RunFolder.open(Path({str(folder)!r}))\nprint('held', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith(("error:", "internal error:"))]


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def state_files(state: Path) -> list[str]:
    return sorted(p.name for p in (state / "issued").glob("*")) if (state / "issued").exists() else []


def test_a_second_command_into_the_same_folder_stops_at_once(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN)
    assert issue(tmp_path).exit_code == 0
    before = (tmp_path / "run" / "manifest.json").read_bytes()
    holder = hold_folder(tmp_path / "run")
    try:
        # Another state folder: the state lock cannot catch it, the folder's must.
        result = issue(tmp_path, "run", state="other-state")
        assert result.exit_code == 1
        [line] = error_lines(result)
        assert line == (f"error: run folder {tmp_path / 'run'} is in use by another omneo-bulk command; two "
                        "commands writing one folder would mix their outputs: wait for it to finish, or give "
                        "this one its own --out")
        assert (tmp_path / "run" / "manifest.json").read_bytes() == before
        assert state_files(tmp_path / "other-state") == []
    finally:
        holder.communicate("")
    # Released, the folder takes a command again: here the first one's rerun. (The other
    # state's new run would now meet the next guard: the calls in the folder are undelivered.)
    assert issue(tmp_path).exit_code == 0


def test_an_unreadable_state_file_is_one_line_naming_it(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN)
    damaged = tmp_path / "state" / "issued" / "20261121T000000Z-abcdef.parquet"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"PAR1 not really parquet")

    result = issue(tmp_path)

    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith(f"error: {damaged}: issuance state file cannot be read (")
    assert "Restore it from a backup" in line
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "issuance").exists()


def test_an_unreadable_pending_state_file_is_one_line_naming_it(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN)
    damaged = tmp_path / "state" / "issued" / "20261121T000000Z-abcdef.pending.parquet"
    damaged.parent.mkdir(parents=True)
    damaged.write_text("", encoding="utf-8")

    result = issue(tmp_path)

    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith(f"error: {damaged}: issuance state file cannot be read (")


def test_a_damaged_manifest_stops_any_command_into_the_folder(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN)
    assert issue(tmp_path).exit_code == 0
    (tmp_path / "run" / "manifest.json").write_text('{"run_id": "x", "outp', encoding="utf-8")

    result = issue(tmp_path)

    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith(f"error: {tmp_path / 'run' / 'manifest.json'}: the manifest cannot be read (")
    assert line.endswith("move the run folder aside and rerun into a new --out")


def test_the_state_of_earlier_versions_still_counts(tmp_path):
    scenario(tmp_path, [profile("p1"), profile("p2")], [definition()], ONE_CAMPAIGN)
    (tmp_path / "state").mkdir()
    # The one-file layout of earlier versions: p1's benefit was emitted by such a run.
    pl.DataFrame({
        "external_id": ["bulk:bday:2026:p1"], "profile_id": ["p1"], "definition_id": [95],
        "issued_at_utc": ["2026-11-21 22:00:00+00:00"], "expires_at_utc": ["2026-12-22 12:59:59+00:00"],
        "max_redemptions": [1], "campaign_id": ["bday"], "run_id": ["old"],
    }).with_columns(pl.col("issued_at_utc", "expires_at_utc").str.to_datetime(time_zone="UTC")).write_parquet(
        tmp_path / "state" / "issued.parquet")

    assert issue(tmp_path).exit_code == 0

    decided = dict(plan(tmp_path).select("profile_id", "reason").iter_rows())
    assert decided == {"p1": "already_issued_this_cycle", "p2": None}


def test_a_resumed_run_must_keep_its_state_folder(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN)
    assert issue(tmp_path).exit_code == 0
    record = manifest(tmp_path / "run")
    record["status"] = "running"  # as a run killed before it marked itself complete leaves it
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(record), encoding="utf-8")

    result = issue(tmp_path, "run", state="elsewhere")

    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line == (f"error: {tmp_path / 'run'} holds run {record['run_id']}, unfinished, which issued with --state "
                    f"{(tmp_path / 'state').resolve()}; rerun it with that --state, or give this run a new --out")
    assert not (tmp_path / "elsewhere" / "issued").exists()


def test_retrying_a_finished_run_rewrites_the_same_run(tmp_path):
    scenario(tmp_path, [profile("p1"), profile("p2")], [definition()], ONE_CAMPAIGN)
    assert issue(tmp_path).exit_code == 0
    first = manifest(tmp_path / "run")
    payload = (tmp_path / "run" / "payloads" / "benefits" / "part-00000.ndjson").read_bytes()

    assert issue(tmp_path).exit_code == 0  # the scheduler's retry: same command, same files

    again = manifest(tmp_path / "run")
    assert again["run_id"] == first["run_id"] and again["status"] == "complete"
    assert (tmp_path / "run" / "payloads" / "benefits" / "part-00000.ndjson").read_bytes() == payload
    assert state_files(tmp_path / "state") == [f"{first['run_id']}.parquet"]


def test_a_new_night_into_the_same_folder_is_a_new_run(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN)
    assert issue(tmp_path).exit_code == 0
    first = manifest(tmp_path / "run")
    with FakeOmneo(TOKEN) as omneo:  # last night's calls were delivered: the folder may be reused
        pushed = CliRunner().invoke(main, ["push", "--out", str(tmp_path / "run"), "--base-url", omneo.base_url],
                                    env={"OMNEO_TOKEN": TOKEN})
        assert pushed.exit_code == 0, pushed.output
    write_rows(tmp_path / "input" / "profiles.csv", [profile("p1"), profile("p2")])  # tonight's export

    assert issue(tmp_path).exit_code == 0

    again = manifest(tmp_path / "run")
    assert again["run_id"] != first["run_id"]
    assert dict(plan(tmp_path).select("profile_id", "reason").iter_rows()) == {
        "p1": "already_issued_this_cycle", "p2": None}
    assert state_files(tmp_path / "state") == sorted([f"{first['run_id']}.parquet", f"{again['run_id']}.parquet"])


def test_a_run_stopped_by_too_many_rejects_is_resumed_by_the_fixed_rerun(tmp_path):
    scenario(tmp_path, [profile("p1"), profile("p2", timezone="Mars/Base")], [definition()], ONE_CAMPAIGN)
    stopped = issue(tmp_path, "run", "--max-reject-ratio", "0.1")
    assert stopped.exit_code == 1
    first = manifest(tmp_path / "run")
    assert first["status"] == "failed"

    fixed = issue(tmp_path, "run", "--max-reject-ratio", "0.6")

    assert fixed.exit_code == 0
    assert manifest(tmp_path / "run")["run_id"] == first["run_id"]
    assert manifest(tmp_path / "run")["status"] == "complete"


def test_the_clock_of_a_resumed_run_is_kept_unless_given(tmp_path):
    scenario(tmp_path, [profile("p1")], [definition()], ONE_CAMPAIGN)
    assert issue(tmp_path).exit_code == 0
    record = manifest(tmp_path / "run")
    record["status"] = "running"  # killed before it marked itself complete
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(record), encoding="utf-8")

    rerun = CliRunner().invoke(main, [
        "issue", "--input", str(tmp_path / "input"), "--campaigns", str(tmp_path / "campaigns.toml"),
        "--out", str(tmp_path / "run"), "--state", str(tmp_path / "state")])  # no --as-of

    assert rerun.exit_code == 0, rerun.output
    assert manifest(tmp_path / "run")["as_of"] == record["as_of"] == "2026-11-21T22:00:00+00:00"


def test_folders_named_like_glob_patterns_read_their_own_files(tmp_path):
    # DuckDB expands [1] in a path as a pattern: runs/night-[1] would read runs/night-1's files.
    scenario(tmp_path, [profile("p1"), profile("p2")], [definition()], ONE_CAMPAIGN)
    assert issue(tmp_path, "night-1", state="state-1").exit_code == 0
    write_rows(tmp_path / "input" / "profiles.csv", [profile("p3")])

    result = issue(tmp_path, "night-[1]", state="state-[1]")

    assert result.exit_code == 0, result.output
    # polars globs too: read the plan back by its own name.
    assert pl.read_parquet(tmp_path / "night-[1]" / "issuance" / "plan.parquet", glob=False)["profile_id"].to_list() == ["p3"]
    assert plan(tmp_path, "night-1")["profile_id"].to_list() == ["p1", "p2"]


def _stage(folder, relative: str, text: str) -> str:
    path = folder.staged(relative)
    path.write_text(text)
    return relative


def _commit(folder, moves: list[str], removes: list[str]) -> None:
    folder.commit({"run_id": "r", "as_of": "2026-11-22T00:00:00+00:00", "outputs": [{"path": p} for p in moves],
                   "stages": []}, moves, removes)


def test_a_file_gives_way_to_a_folder_of_parts_of_its_name_and_back(tmp_path):
    """The default engine writes validated/x.parquet as a file, the Spark engine as a folder of
    parts: a run of either into a folder the other wrote replaces it in one commit."""
    from pipeline.runfolder import RunFolder

    run = tmp_path / "run"
    parts = [f"validated/x.parquet/part-{n}.parquet" for n in (0, 1)]
    for moves, removes, text in ((["validated/x.parquet"], [], "one file"), (parts, ["validated/x.parquet"], "part"),
                                 (["validated/x.parquet"], parts, "one file again")):
        folder = RunFolder.open(run)  # each engine's command opens the folder anew
        try:
            _commit(folder, [_stage(folder, relative, text) for relative in moves], removes)
        finally:
            folder.close()
        assert manifest(run)["outputs"] == [{"path": relative} for relative in moves]
        for relative in moves:
            assert (run / relative).read_text() == text
    assert sorted(p.name for p in (run / "validated").iterdir()) == ["x.parquet"]


def test_a_commit_killed_between_removing_the_file_and_moving_its_parts_is_finished_by_the_next_command(tmp_path):
    from pipeline.runfolder import JOURNAL, RunFolder

    run = tmp_path / "run"
    folder = RunFolder.open(run)
    _commit(folder, [_stage(folder, "validated/x.parquet", "one file")], [])
    part = _stage(folder, "validated/x.parquet/part-0.parquet", "part 0")
    journal = {"moves": [part], "removes": ["validated/x.parquet"],
               "manifest": {"run_id": "r", "as_of": "2026-11-22T00:00:00+00:00", "outputs": [{"path": part}], "stages": []}}
    # As a kill leaves it: the journal written, the file removed, the part not yet moved.
    (run / JOURNAL).write_text(json.dumps(journal))
    (run / "validated" / "x.parquet").unlink()
    folder.close()

    RunFolder.open(run).close()
    assert (run / "validated" / "x.parquet" / "part-0.parquet").read_text() == "part 0"
    assert manifest(run)["outputs"] == [{"path": part}]
    assert not (run / JOURNAL).exists()


def test_files_no_run_listed_in_the_way_of_a_file_stop_the_commit_before_anything_moves(tmp_path):
    from pipeline.errors import RunFolderError
    from pipeline.runfolder import RunFolder

    run = tmp_path / "run"
    folder = RunFolder.open(run)
    _commit(folder, [_stage(folder, "validated/x.parquet/part-0.parquet", "part 0")], [])
    folder.close()
    (run / "validated" / "x.parquet" / "mine.parquet").write_text("a user's file")
    folder = RunFolder.open(run)
    try:
        before = (run / "manifest.json").read_bytes()
        staged = _stage(folder, "validated/x.parquet", "one file")
        try:
            _commit(folder, [staged], ["validated/x.parquet/part-0.parquet"])
        except RunFolderError as error:
            assert str(error).startswith(f"{run / 'validated' / 'x.parquet'}: a folder of files no run listed")
        else:
            raise AssertionError("the commit went ahead over a user's file")
        assert (run / "manifest.json").read_bytes() == before
        assert (run / "validated" / "x.parquet" / "mine.parquet").read_text() == "a user's file"
        assert (run / "validated" / "x.parquet" / "part-0.parquet").read_text() == "part 0"
    finally:
        folder.close()
