"""The command line itself: help that shows working examples, version, usage errors, config.

Precedence of a setting: command line > OMNEO_BULK_<COMMAND>_<OPTION> > --config file > default.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import click
import pytest

from conftest import invoke, read_manifest, write_csv, write_file
from pipeline.cli import main

COMMANDS = sorted(main.commands)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def half_rejected(input_dir):
    """An input folder where 1 of 2 rows is rejected: 50%, above the 5% default limit."""
    write_csv(input_dir, "profiles.csv", [["id", "timezone"], ["p1", "UTC"], ["p2", "Mars/Olympus"]])
    return input_dir


def write_config(tmp_path, text):
    return write_file(tmp_path, "omneo.toml", text)


def examples(help_text):
    """The `omneo-bulk …` command lines of a help text, backslash continuations joined."""
    lines, current = [], ""
    for raw in help_text.splitlines():
        line = raw.strip()
        if current:
            current += " " + line
        elif line.startswith("omneo-bulk "):
            current = line
        else:
            continue
        if current.endswith("\\"):
            current = current[:-1].rstrip()
        else:
            lines.append(current)
            current = ""
    return lines


# Help and version ----------------------------------------------------------------------


def test_help_lists_validate_and_run():
    result = invoke(["--help"])

    assert result.exit_code == 0
    listed = result.output.split("Commands:")[1].split()
    assert "validate" in listed
    assert "run" in listed


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_has_an_example(command):
    result = invoke([command, "--help"] if command else ["--help"])

    assert result.exit_code == 0
    assert "Example" in result.output
    assert examples(result.output), result.output


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_examples_use_real_commands_and_options(command, tmp_path, monkeypatch):
    # Parse each example as the shell would; an unknown command or option is a UsageError.
    # The examples name folders that exist after `make run` (runs/sample) or `generate`
    # (data/demo); parse them in a scratch folder where those exist, not in whatever the
    # working directory happens to hold.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample_data").symlink_to(REPO / "sample_data")
    for folder in ("runs/sample", "data/demo"):
        (tmp_path / folder).mkdir(parents=True)
    result = invoke([command, "--help"] if command else ["--help"])
    for line in examples(result.output):
        name, *args = shlex.split(line)
        assert name == "omneo-bulk"
        with click.Context(main, info_name="omneo-bulk") as parent:
            subcommand = main.get_command(parent, args[0])
            assert subcommand is not None, line
            subcommand.make_context(args[0], args[1:], parent=parent)


def test_version_prints_the_installed_version():
    result = invoke(["--version"])

    assert result.exit_code == 0
    assert version("omneo-bulk") in result.output


# Usage errors exit 2 ---------------------------------------------------------------------


def test_unknown_option_exits_2(input_dir, run_dir):
    result = invoke(["validate", "--input", input_dir, "--out", run_dir, "--no-such-option"])

    assert result.exit_code == 2
    assert "--no-such-option" in result.output


def test_missing_required_option_exits_2(input_dir):
    result = invoke(["validate", "--input", input_dir])

    assert result.exit_code == 2
    assert "--out" in result.output


def test_unknown_command_exits_2():
    result = invoke(["valdiate"])

    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--max-reject-ratio", "lots"),
        ("--max-reject-ratio", "1.5"),
        ("--naive-timezone", "Mars/Olympus"),
        ("--as-of", "next tuesday"),
        ("--threads", "0"),
    ],
)
def test_bad_option_value_exits_2_without_traceback(input_dir, run_dir, option, value):
    result = invoke(["validate", "--input", input_dir, "--out", run_dir, option, value])

    assert result.exit_code == 2, result.output
    assert option in result.output or value in result.output
    assert "Traceback" not in result.output
    assert not (run_dir / "manifest.json").exists()


@pytest.mark.parametrize(("option", "value"), [("--spark-master", "local[2]"), ("--shards", "4")])
def test_a_spark_option_without_the_spark_engine_exits_2(input_dir, run_dir, option, value):
    """Silently ignored, `--shards 8` would let a user believe the run was sharded."""
    result = invoke(["validate", "--input", input_dir, "--out", run_dir, option, value])

    assert result.exit_code == 2, result.output
    assert f"error: {option} is for --engine spark; --engine duckdb runs on DuckDB alone" in result.output
    assert not run_dir.exists()


# Config file and environment ---------------------------------------------------------------


def test_default_reject_ratio_stops_a_half_rejected_run(half_rejected, run_dir):
    # The baseline the config tests below change.
    result = invoke(["validate", "--input", half_rejected, "--out", run_dir])

    assert result.exit_code == 1
    assert "max-reject-ratio" in result.stderr


def test_config_file_supplies_option_defaults(tmp_path, half_rejected, run_dir):
    config = write_config(tmp_path, "max_reject_ratio = 1.0\n")

    result = invoke(["validate", "--config", config, "--input", half_rejected, "--out", run_dir])

    assert result.exit_code == 0, result.output
    assert read_manifest(run_dir)["inputs"][0]["rejected"] == 1


def test_config_command_table_and_dashed_keys(tmp_path, half_rejected, run_dir):
    config = write_config(tmp_path, "[validate]\nmax-reject-ratio = 1.0\n")

    result = invoke(["validate", "--input", half_rejected, "--out", run_dir, "--config", config])

    assert result.exit_code == 0, result.output


def test_config_table_of_another_command_does_not_apply(tmp_path, half_rejected, run_dir):
    config = write_config(tmp_path, "[issue]\nmax_reject_ratio = 1.0\n")

    result = invoke(["validate", "--input", half_rejected, "--out", run_dir, "--config", config])

    assert result.exit_code == 1


def test_command_line_overrides_config(tmp_path, half_rejected, run_dir):
    config = write_config(tmp_path, "max_reject_ratio = 1.0\n")

    result = invoke(["validate", "--config", config, "--input", half_rejected, "--out", run_dir,
                     "--max-reject-ratio", "0.1"])

    assert result.exit_code == 1


def test_environment_overrides_config(tmp_path, half_rejected, run_dir):
    config = write_config(tmp_path, "max_reject_ratio = 1.0\n")

    result = invoke(["validate", "--config", config, "--input", half_rejected, "--out", run_dir],
                    env={"OMNEO_BULK_VALIDATE_MAX_REJECT_RATIO": "0.1"})

    assert result.exit_code == 1


def test_environment_supplies_option(half_rejected, run_dir):
    result = invoke(["validate", "--input", half_rejected, "--out", run_dir],
                    env={"OMNEO_BULK_VALIDATE_MAX_REJECT_RATIO": "1"})

    assert result.exit_code == 0, result.output


def test_command_line_overrides_environment(half_rejected, run_dir):
    result = invoke(["validate", "--input", half_rejected, "--out", run_dir, "--max-reject-ratio", "0.1"],
                    env={"OMNEO_BULK_VALIDATE_MAX_REJECT_RATIO": "1"})

    assert result.exit_code == 1


def test_unknown_config_key_exits_2_naming_it(tmp_path, half_rejected, run_dir):
    config = write_config(tmp_path, "max_reject_ratio = 1.0\nmax_rejected_ratoi = 0.5\n")

    result = invoke(["validate", "--config", config, "--input", half_rejected, "--out", run_dir])

    assert result.exit_code == 2
    assert "max_rejected_ratoi" in result.output
    assert not (run_dir / "manifest.json").exists()


def test_config_that_is_not_toml_exits_2(tmp_path, half_rejected, run_dir):
    config = write_config(tmp_path, "max_reject_ratio = = 1\n")

    result = invoke(["validate", "--config", config, "--input", half_rejected, "--out", run_dir])

    assert result.exit_code == 2
    assert "omneo.toml" in result.output


def test_missing_config_file_exits_2(tmp_path, half_rejected, run_dir):
    result = invoke(["validate", "--config", tmp_path / "absent.toml", "--input", half_rejected, "--out", run_dir])

    assert result.exit_code == 2
    assert "absent.toml" in result.output


def test_config_supplies_input_and_out_by_their_option_names(tmp_path, half_rejected, run_dir):
    config = write_config(
        tmp_path, f"input = {str(half_rejected)!r}\nout = {str(run_dir)!r}\nmax_reject_ratio = 1.0\n"
    )

    result = invoke(["validate", "--config", config])

    assert result.exit_code == 0, result.output
    assert (run_dir / "manifest.json").exists()



def test_duckdb_never_draws_its_own_progress_bar():
    # Run from a notebook or `python -c` (no __main__.__file__), DuckDB turns on its own bar,
    # drawn on stdout for every query over 2 s: at 10M profiles it broke --quiet and the
    # json lines. A subprocess, because under pytest DuckDB leaves the bar off anyway.
    probe = subprocess.run(
        [sys.executable, "-c",
         "from pipeline import db; print(db.scalar(db.connect(), \"SELECT current_setting('enable_progress_bar')\"))"],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip() == "False"


HEAVY = ("pandera", "polars", "pandas")
IMPORTED = """
import contextlib, io, sys
from pipeline.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(" ".join(sorted({m.split(".")[0] for m in sys.modules} & {%s})))
""" % ", ".join(repr(m) for m in HEAVY)


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["push", "--help"], ["validate", "--bogus"],
                                  ["query", "--out", ".", "SELECT 1"]], ids=" ".join)
def test_commands_that_never_validate_do_not_import_pandera_polars_or_pandas(args, tmp_path):
    # pandera alone costs over a second to import: --help, a usage error and a query answer at once.
    found = subprocess.run([sys.executable, "-c", IMPORTED, *args], capture_output=True, text=True, cwd=tmp_path)

    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == []


# Running out of memory ---------------------------------------------------------------------


SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.mark.parametrize("inputs", ["sample exports", "no exports"])
def test_a_memory_limit_too_small_is_named_not_blamed_on_an_input_file(inputs, input_dir, run_dir):
    # 5MB is below what DuckDB needs: it runs out of memory reading the sample's exports (where
    # the reader once said "redemptions.json: cannot be read"), or later with none to read
    # (where it was an "internal error").
    if inputs == "sample exports":
        for export in SAMPLE.iterdir():
            if export.is_file():
                (input_dir / export.name).write_bytes(export.read_bytes())
    result = invoke(["validate", "--input", input_dir, "--out", run_dir, "--memory-limit", "5MB"])

    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error: DuckDB ran out of memory under --memory-limit 5MB"), lines
    assert "raise --memory-limit" in result.output
    assert "cannot be read" not in result.output
    assert "internal error" not in result.output
    assert not (run_dir / "validated").exists()


def test_the_memory_check_follows_both_links_of_an_error_chain_and_ends_on_a_loop():
    import duckdb

    from pipeline.cli import _found_under

    memory = duckdb.OutOfMemoryException("Out of Memory Error: failed to allocate")
    try:
        try:
            raise memory
        except duckdb.OutOfMemoryException:
            # A domain error raised from another error while handling DuckDB's: the memory
            # fault is only in __context__, behind a __cause__.
            raise RuntimeError("a file cannot be read") from KeyError("x")
    except RuntimeError as caught:
        found = _found_under(caught, duckdb.OutOfMemoryException)
    assert found is memory

    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first  # a loop no raise makes, but a chain may hold
    assert _found_under(first, duckdb.OutOfMemoryException) is None
