"""Benchmark: the full `omneo-bulk run` beside DuckDB's bare scan-and-write of the same bytes.

The bare job is the practical limit of this hardware for the run's I/O: one DuckDB process
(same threads and memory limit) that reads every input file completely, then writes every
file the run wrote (each validated dataset, rejects, plan, ledger, matches, exceptions,
every payload part) with the same format and codec, from tables holding those bytes'
rows, and nothing else: no casts, checks, joins or JSON. It holds one dataset at a time:
loading every output before the clock started made it spill at 10M profiles under the
run's 4 GB limit, which made the limit slower than the hardware. Both are timed in child
processes, alternating, in this one invocation; the figure that counts is their ratio
(this machine's speed drifts 20-70% between days).

Run: python benchmarks/bench_limit.py --profiles 1000000 [--repeat 3] [--memory-limit 4GB]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import OMNEO_BULK, installation, machine, timed, update_section  # noqa: E402
from bench_run import AS_OF, DATA, generate  # noqa: E402

# What the run writes that the bare job does not: its own records of the run.
OWN = {"manifest.json", "report.html", "report.md", "warehouse.duckdb"}

BARE = r'''
import json, sys, time, duckdb
from pathlib import Path
inputs, run, target, memory = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
con = duckdb.connect()
con.execute("SET memory_limit = ?", [memory])
con.execute("SET preserve_insertion_order = true")
con.execute("SET enable_progress_bar = false")
outputs = [o for o in json.loads((run / "manifest.json").read_text())["outputs"]
           if o["path"] not in ("report.html", "report.md", "warehouse.duckdb")]
# One dataset in memory at a time, so the bare job never spills what the run would not:
# each input is read whole into a table (timed) and dropped; each output's rows are loaded
# first (not timed), then written (timed) and dropped.
read = written = 0.0
for path in inputs:
    reader = "read_parquet(?)" if path.endswith(".parquet") else "read_csv(?, all_varchar = true)"
    started = time.perf_counter()
    con.execute(f"CREATE TABLE dataset AS SELECT * FROM {reader}", [path])
    read += time.perf_counter() - started
    con.execute("DROP TABLE dataset")
for o in outputs:
    path = str(run / o["path"])
    if path.endswith(".parquet"):
        con.execute("CREATE TABLE output AS SELECT * FROM read_parquet(?)", [path])
    else:
        con.execute("CREATE TABLE output AS SELECT line FROM read_csv(?, columns = {'line': 'VARCHAR'}, "
                    "header = false, delim = chr(31), quote = '', escape = '', auto_detect = false)", [path])
    final = target / o["path"]
    final.parent.mkdir(parents=True, exist_ok=True)
    options = ("FORMAT parquet, COMPRESSION zstd" if o["path"].endswith(".parquet")
               else "FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER chr(31)")
    started = time.perf_counter()
    con.execute(f"COPY output TO '{final}' ({options})")
    written += time.perf_counter() - started
    con.execute("DROP TABLE output")
print(json.dumps({"read": read, "total": read + written}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-limit", default=None)
    args = parser.parse_args()

    folder, _ = generate(args.profiles, "parquet", args.seed)
    out, state, bare = DATA / f"limit-{args.profiles}-run", DATA / f"limit-{args.profiles}-state", DATA / f"limit-{args.profiles}-bare"
    inputs = sorted(str(p) for p in folder.rglob("*") if p.suffix in (".parquet", ".csv") and "truth" not in p.parts)
    pairs = []
    for _ in range(args.repeat):
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        command = [OMNEO_BULK, "run", "--input", str(folder), "--campaigns", str(folder / "campaigns.toml"),
                   "--out", str(out), "--state", str(state), "--as-of", AS_OF, "--max-reject-ratio", "1", "-q"]
        if args.memory_limit:
            command += ["--memory-limit", args.memory_limit]
        run_seconds, run_mib, result = timed(command)
        if result.returncode != 0:
            raise SystemExit(f"run failed:\n{result.stderr}")
        shutil.rmtree(bare, ignore_errors=True)
        limit = args.memory_limit or _default_limit()
        bare_seconds, bare_mib, result = timed([sys.executable, "-c", BARE, json.dumps(inputs), str(out), str(bare), limit])
        if result.returncode != 0:
            raise SystemExit(f"bare job failed:\n{result.stderr}")
        inner = json.loads(result.stdout.strip().splitlines()[-1])
        pairs.append({"run": run_seconds, "run_mib": run_mib, "bare": inner["total"], "bare_read": inner["read"],
                      "bare_mib": bare_mib, "ratio": run_seconds / inner["total"]})
        print(f"run {run_seconds:.1f} s ({run_mib:.0f} MiB), bare {inner['total']:.1f} s "
              f"(read {inner['read']:.1f} s), ratio {run_seconds / inner['total']:.2f}", flush=True)
    written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.name not in OWN)
    title = f"Limit: the run beside DuckDB's bare scan-and-write ({args.profiles:,} profiles" + (
        f", --memory-limit {args.memory_limit})" if args.memory_limit else ")")
    update_section(title, _section(args, pairs, len(inputs), written))
    print(_section(args, pairs, len(inputs), written))


def _default_limit() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pipeline.db import default_memory_limit

    return default_memory_limit()


def _section(args, pairs: list[dict], files: int, written: int) -> str:
    ratios = [p["ratio"] for p in pairs]
    rows = "\n".join(f"| {p['run']:.1f} s | {p['run_mib']:,.0f} MiB | {p['bare']:.1f} s (read {p['bare_read']:.1f} s) "
                     f"| {p['ratio']:.2f} |" for p in pairs)
    return f"""
The whole `omneo-bulk run` on `generate --profiles {args.profiles:,} --seed {args.seed} --format parquet` data
beside the bare job: DuckDB alone reading the same {files} input files and writing the same
{written / 2**20:,.0f} MiB of outputs (every validated dataset, rejects, plan, ledger, matches, exceptions and
payload part, same formats), with no checks, joins or JSON. Pairs measured alternately in one
invocation; goal: ratio at most 2.

| run | run peak RSS | bare | ratio |
|---:|---:|---:|---:|
{rows}

**Median ratio {statistics.median(ratios):.2f}** (min {min(ratios):.2f}, max {max(ratios):.2f}).
Machine: {machine()}; timed: {installation()}. Command: `python benchmarks/bench_limit.py --profiles {args.profiles} --repeat {args.repeat}`{
f" --memory-limit {args.memory_limit}" if args.memory_limit else ""}.
"""


if __name__ == "__main__":
    main()
