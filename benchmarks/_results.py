"""Shared helpers for the benchmark scripts: machine facts, timing a command, RESULTS.md.

Each script owns one `## ` section of RESULTS.md and replaces only that section.
"""

from __future__ import annotations

import os
import platform
import re

import subprocess
import sys
import time
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")

# The command every benchmark times. `make bench` points it at .venv-bench, the package as a
# user installs it (`pip install omneo-bulk`, no extras): the test venv also holds the spark
# extra, and with pandas and PySpark present, pandera's import loads pandas and probes
# pyspark.pandas, 0.65 s more for every command (measured: a run on sample_data/ 1.90 s against
# 1.25 s, on 1M profiles 8.92 s against 8.37 s).
OMNEO_BULK = os.environ.get("OMNEO_BULK") or str(Path(sys.executable).with_name("omneo-bulk"))


def installation() -> str:
    """Which install of omneo-bulk was timed: the default one, or one that also holds pandas."""
    probe = subprocess.run([str(Path(OMNEO_BULK).with_name("python")), "-c", "import pandas"],
                           capture_output=True)
    extras = "with pandas installed (the spark extra)" if probe.returncode == 0 else "the default install, no extras"
    return f"`{Path(OMNEO_BULK).parent.parent.name}/bin/omneo-bulk`, {extras}"


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import duckdb
    import polars

    return (
        f"{os.cpu_count()} cores, {memory:.0f} GiB RAM, {platform.machine()}, Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, polars {polars.__version__}; measured {date.today().isoformat()}"
    )


def timed(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run a command; return wall seconds, the peak RSS of the child in MiB, and its result.

    Each timed command runs in a fresh `python -c` wrapper so RUSAGE_CHILDREN is its own.
    """
    wrapper = (
        "import resource, subprocess, sys, json;"
        "r = subprocess.run(sys.argv[1:]);"
        "print(json.dumps({'rc': r.returncode, 'maxrss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}), file=sys.stderr);"
        "sys.exit(r.returncode)"  # a failed command must fail the benchmark, not be timed
    )
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    import json

    stats = json.loads(result.stderr.strip().splitlines()[-1])
    return seconds, stats["maxrss_kib"] / 1024, result


def run_omneo(arguments: list[str], out: Path, memory_limit: str | None = None) -> tuple[float, float, dict]:
    """Run `omneo-bulk ARGUMENTS --out OUT` afresh; return wall seconds, peak MiB and manifest."""
    import json
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    command = [OMNEO_BULK, *arguments, "--out", str(out)]
    if memory_limit:
        command += ["--memory-limit", memory_limit]
    seconds, peak_mib, result = timed(command)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(arguments[:1])} failed:\n{result.stdout}\n{result.stderr}")
    return seconds, peak_mib, json.loads((out / "manifest.json").read_text())


def update_section(title: str, body: str) -> None:
    """Replace (or append) the `## title` section of RESULTS.md with `body`."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")


