"""Benchmark: how fast the command line answers, as a user types it.

Times, each as a whole fresh process (interpreter start included), `omneo-bulk --help`, a
command's `--help`, a usage error (an unknown option), a bad value, and `query` on the
sample run's warehouse. The goal is every one under 0.5 s. The sample run is made first
(not timed) when it is missing.

Run: python benchmarks/bench_startup.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import OMNEO_BULK, installation, machine, update_section  # noqa: E402
from bench_run import AS_OF  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "benchmarks" / "data" / "startup-sample"
GOAL = 0.5


def commands() -> dict[str, tuple[list[str], int]]:
    """What is timed: a label, the arguments, and the exit code the command must give."""
    return {
        "`omneo-bulk --help`": (["--help"], 0),
        "`omneo-bulk run --help`": (["run", "--help"], 0),
        "usage error: `omneo-bulk run --no-such-option`": (["run", "--no-such-option"], 2),
        "bad value: `omneo-bulk issue ... --as-of yesterday`": (
            ["issue", "--input", str(ROOT / "sample_data"), "--out", str(SAMPLE.with_name("startup-never")),
             "--as-of", "yesterday"], 2),
        "`omneo-bulk query` on the sample warehouse": (
            ["query", "--out", str(SAMPLE), "SELECT category, count(*) FROM exceptions GROUP BY ALL"], 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    if not (SAMPLE / "warehouse.duckdb").exists():
        subprocess.run([OMNEO_BULK, "run", "--input", str(ROOT / "sample_data"), "--campaigns",
                        str(ROOT / "sample_data" / "campaigns.toml"), "--out", str(SAMPLE),
                        "--state", str(SAMPLE.with_name("startup-state")), "--as-of", AS_OF, "-q"], check=True)
    rows = []
    for label, (arguments, code) in commands().items():
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = subprocess.run([OMNEO_BULK, *arguments], capture_output=True, text=True)
            seconds.append(time.perf_counter() - started)
            if result.returncode != code:
                raise SystemExit(f"{label} exited {result.returncode}, not {code}:\n{result.stderr}")
        median = statistics.median(seconds)
        rows.append(f"| {label} | {median:.3f} s | {min(seconds):.3f} s | {max(seconds):.3f} s | "
                    f"{'yes' if median < GOAL else '**no**'} |")
        print(rows[-1], flush=True)
    python = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        python.append(time.perf_counter() - started)
    body = f"""
Each command is a fresh process, timed from spawn to exit, {args.repeat} times; the goal is under
{GOAL} s. For scale, a bare `python -c pass` takes {statistics.median(python):.3f} s here. What keeps it
fast: commands import their stages (and pandera, polars, pandas) only when they run, and
`tests/test_cli_basics.py` fails when `--help`, a usage error or `query` imports pandera, polars or
pandas.

| command | median | min | max | under {GOAL} s |
|---|---:|---:|---:|---|
{chr(10).join(rows)}

Machine: {machine()}; timed: {installation()}. Command: `python benchmarks/bench_startup.py --repeat {args.repeat}`.
"""
    update_section("Start-up: the command line answers at once", body)
    print(body)


if __name__ == "__main__":
    main()
