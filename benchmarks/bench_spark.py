"""Benchmark: `omneo-bulk run --engine spark` on `local[2]` with 1, 2 and 8 shards, beside the
default engine, on the same generated exports, rounds interleaved so the ratios are measured
together.

Times the whole command (a Spark session is started and stopped by each), and samples the
resident memory of the whole process tree (the Python driver, Spark's JVM and its Python
workers) every 0.2 s, since the JVM is not a child the kernel's peak-RSS count would reach.
Checks that each Spark run wrote the default engine's payload, plan and reconciliation
bytes. Both engines are timed from the install that holds the spark extra (`.venv`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import OMNEO_BULK, installation, machine, update_section  # noqa: E402
from bench_run import AS_OF, DATA, generate  # noqa: E402

SAME_BYTES = ("issuance/", "payloads/", "reconciliation/")


def tree_rss_kib(root: int) -> int:
    """Resident memory of `root` and every process below it, from /proc."""
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def timed_tree(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds, the sampled peak MiB of the process tree, and the result."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kib(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return seconds, peak / 1024, subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def run_once(folder: Path, label: str, engine: list[str]) -> dict:
    out, state = DATA / f"spark-{label}-out", DATA / f"spark-{label}-state"
    for path in (out, state):
        shutil.rmtree(path, ignore_errors=True)
    command = [OMNEO_BULK, "run", "--input", str(folder), "--campaigns", str(folder / "campaigns.toml"),
               "--state", str(state), "--out", str(out), "--as-of", AS_OF, "--max-reject-ratio", "1", "-q", *engine]
    seconds, peak_mib, result = timed_tree(command)
    if result.returncode != 0:
        raise SystemExit(f"{label} failed:\n{result.stderr}")
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "seconds": round(seconds, 1),
        "peak_mib": round(peak_mib),
        "stages": {s["stage"]: s["seconds"] for s in manifest["stages"]},
        "rows_read": manifest["stages"][0]["rows_read"],
        "digests": {o["path"]: o["sha256"] for o in manifest["outputs"] if o["path"].startswith(SAME_BYTES)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 8])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7, help="The exports bench_limit.py times too.")
    args = parser.parse_args()

    folder, _ = generate(args.profiles, "parquet", args.seed)
    configurations = {"duckdb": []} | {
        f"spark, {n} shard{'s' if n > 1 else ''}": ["--engine", "spark", "--spark-master", args.master, "--shards", str(n)]
        for n in args.shards
    }
    rounds = []
    for number in range(args.repeat):
        found = {}
        for label, engine in configurations.items():
            found[label] = run_once(folder, label.replace(", ", "-").replace(" ", "-"), engine)
            print(f"round {number + 1} {label}: {found[label]['seconds']} s, {found[label]['peak_mib']} MiB", flush=True)
        rounds.append(found)
    for found in rounds:
        for label, record in found.items():
            if record["digests"] != found["duckdb"]["digests"]:
                raise SystemExit(f"{label}: payload, plan or reconciliation bytes differ from the default engine's")
    body = _section(args, rounds, configurations)
    update_section(f"Spark engine ({args.profiles:,} profiles, {args.master})", body)
    print(body)


def _section(args, rounds: list[dict], configurations: dict) -> str:
    lines = [
        f"`omneo-bulk run` on `generate --profiles {args.profiles:,} --seed {args.seed} --format parquet` data "
        f"({rounds[0]['duckdb']['rows_read']:,} input rows), each engine in a process of its own, "
        f"{args.repeat} rounds interleaved (every configuration once per round); the median round shown.",
        "`--engine spark` runs on Spark: validate (a task per input file, keys and references in Spark SQL), "
        "issue's profile context, rules and skip reasons (a shard per task, sales routed by sale, then everything "
        "by profile), and reconcile's pairing (by benefit); each campaign's cap, the plan, the payloads, the rest "
        "of reconcile and the report run on the driver's DuckDB. "
        "Peak memory: the whole process tree (driver, JVM, Python workers), sampled every 0.2 s.",
        "Every Spark run wrote the default engine's payload, plan and reconciliation files byte for byte.",
        "",
        "| engine | wall | × duckdb (same round) | validate | issue | reconcile | report | peak memory |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in configurations:
        seconds = [r[label]["seconds"] for r in rounds]
        ratios = [r[label]["seconds"] / r["duckdb"]["seconds"] for r in rounds]
        median = sorted(rounds, key=lambda r: r[label]["seconds"])[len(rounds) // 2][label]
        stages = " | ".join(f"{median['stages'][s]:.1f} s" for s in ("validate", "issue", "reconcile", "report"))
        lines.append(
            f"| {label} | {statistics.median(seconds):.1f} s ({', '.join(f'{s:.1f}' for s in seconds)}) "
            f"| {statistics.median(ratios):.2f} | {stages} | {median['peak_mib'] / 1024:.2f} GiB |"
        )
    lines += ["", f"Machine: {machine()}; timed: {installation()}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
