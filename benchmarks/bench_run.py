"""Benchmark: the whole `omneo-bulk run` on data from `omneo-bulk generate`, at any size.

Generates the exports (Parquet by default) with planted anomalies once per size and seed,
then runs every stage (validate, issue, reconcile, report) in a child process, measuring
wall time, peak RSS and each stage's seconds from the manifest. Figures go to RESULTS.md;
the raw figures go to run_results.json, from which the scaling section is recomputed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import OMNEO_BULK, installation, machine, timed, update_section  # noqa: E402

DATA = Path(__file__).parent / "data"
RAW = Path(__file__).with_name("run_results.json")
AS_OF = "2026-11-22T09:00:00+11:00"
STAGES = ("validate", "issue", "reconcile", "report")


def generate(profiles: int, file_format: str, seed: int) -> tuple[Path, float]:
    folder = DATA / f"run-{profiles}-{file_format}-{seed}"
    if (folder / "truth").is_dir() and (folder / "campaigns.toml").exists():
        return folder, 0.0
    shutil.rmtree(folder, ignore_errors=True)
    command = [OMNEO_BULK, "generate", "--out", str(folder),
               "--profiles", str(profiles), "--seed", str(seed), "--format", file_format, "--as-of", AS_OF]
    seconds, _, result = timed(command)
    if result.returncode != 0:
        raise SystemExit(f"generate failed:\n{result.stdout}\n{result.stderr}")
    return folder, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=10_000_000)
    parser.add_argument("--format", default="parquet", choices=["csv", "parquet"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory-limit", default=None)
    parser.add_argument("--repeat", type=int, default=1,
                        help="Run N times and record the median run (wall times vary ±15%% on a shared VM).")
    args = parser.parse_args()

    folder, generate_seconds = generate(args.profiles, args.format, args.seed)
    runs = sorted((_run_once(args, folder) for _ in range(args.repeat)), key=lambda r: r["seconds"])
    record = {
        **runs[len(runs) // 2],  # the median run, steps and all
        "profiles": args.profiles,
        "format": args.format,
        "memory_limit": args.memory_limit,
        "all_seconds": [r["seconds"] for r in runs],
        "peak_mib": max(r["peak_mib"] for r in runs),  # memory: the worst run, not the median
        "generate_seconds": round(generate_seconds, 1) or None,
        "machine": f"{machine()}; timed: {installation()}",
    }
    raw = json.loads(RAW.read_text()) if RAW.exists() else {}
    raw[_key(args.profiles, args.format, args.memory_limit)] = record
    RAW.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")

    limit = f", --memory-limit {args.memory_limit}" if args.memory_limit else ""
    update_section(f"Run ({args.profiles:,} profiles, {args.format}{limit})", _section(record))
    update_section("Run: scaling", _scaling(raw))
    print(_section(record))


def _run_once(args, folder: Path) -> dict:
    """One `omneo-bulk run` in a child process: wall time, peak RSS, stage and step seconds."""
    out, state = DATA / f"run-{args.profiles}-out", DATA / f"run-{args.profiles}-state"
    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    command = [OMNEO_BULK, "run", "--input", str(folder),
               "--campaigns", str(folder / "campaigns.toml"), "--state", str(state), "--out", str(out),
               "--as-of", AS_OF, "--max-reject-ratio", "1", "--log-format", "json"]
    if args.memory_limit:
        command += ["--memory-limit", args.memory_limit]
    seconds, peak_mib, result = timed(command)
    if result.returncode != 0:
        raise SystemExit(f"run failed:\n{result.stdout}\n{result.stderr}")
    manifest = json.loads((out / "manifest.json").read_text())
    stages = {s["stage"]: s for s in manifest["stages"]}
    rows_read = stages["validate"]["rows_read"]
    return {
        "seconds": round(seconds, 1),
        "peak_mib": round(peak_mib),
        "rows_read": rows_read,
        "rows_per_second": round(rows_read / seconds),
        "stages": {name: stages[name]["seconds"] for name in STAGES if name in stages},
        "steps": _steps(result.stdout),
        "issued": stages["issue"]["issued"],
        "exceptions": stages["reconcile"]["exceptions"],
    }


def _steps(log: str) -> list[list]:
    """[stage, step, seconds] from the run's JSON log: each step lasts until the next event."""
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    steps = []
    for event, following in zip(events, events[1:]):
        if event["event"] == "stage_step":
            took = datetime.fromisoformat(following["time"]) - datetime.fromisoformat(event["time"])
            steps.append([event["stage"], event["label"], round(took.total_seconds(), 1)])
    return steps


def _key(profiles: int, file_format: str, memory_limit: str | None) -> str:
    return f"{profiles}-{file_format}-{memory_limit or 'default'}"


def _section(r: dict) -> str:
    per_stage = " | ".join(f"{r['stages'].get(s, 0):.1f} s" for s in STAGES)
    return f"""
`omneo-bulk run` (validate, issue, reconcile, report) on `omneo-bulk generate --profiles {r['profiles']:,}
--format {r['format']}` data: profiles, ~20 definitions, existing benefits, redemptions with items,
returns and POS transactions, with planted anomalies. Goal at 10M: at most 90 s and 6 GB.

| wall time | peak RSS | rows read | rows/s | validate | issue | reconcile | report | issued | exceptions |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| {r['seconds']:.1f} s{_spread(r)} | {r['peak_mib']:,} MiB | {r['rows_read']:,} | {r['rows_per_second']:,} | {per_stage} | {r['issued']:,} | {r['exceptions']:,} |

Machine: {r['machine']}. Command: `python benchmarks/bench_run.py --profiles {r['profiles']} --format {r['format']}{_repeat(r)}`
{f"--memory-limit {r['memory_limit']}" if r['memory_limit'] else "(DuckDB memory limit: the default)"}.
Generating the data took {r['generate_seconds'] or 'n/a (cached)'} s and is not part of the wall time.

<details><summary>Where the time goes: every step of every stage, from the run's <code>--log-format json</code> events</summary>

| stage | step | seconds |
|---|---|---:|
""" + "\n".join(f"| {stage} | {step} | {took:.1f} |" for stage, step, took in r.get("steps", [])) + """

</details>
"""


def _repeat(r: dict) -> str:
    runs = len(r.get("all_seconds", []))
    return f" --repeat {runs}" if runs > 1 else ""


def _spread(r: dict) -> str:
    """' (median of 3: 110.2, 118.0, 125.3 s)' when the run was repeated; peak RSS is the worst run's."""
    runs = r.get("all_seconds", [])
    if len(runs) < 2:
        return ""
    return f" (median of {len(runs)}: " + ", ".join(f"{s:.1f}" for s in runs) + " s)"


def _scaling(raw: dict) -> str:
    small, large = raw.get(_key(1_000_000, "parquet", None)), raw.get(_key(10_000_000, "parquet", None))
    if not (small and large):
        return "Needs both the 1M and the 10M default runs (`make bench`)."
    ratio = large["seconds"] / small["seconds"]
    return f"""
| profiles | wall time | rows/s | peak RSS |
|---:|---:|---:|---:|
| 1,000,000 | {small['seconds']:.1f} s | {small['rows_per_second']:,} | {small['peak_mib']:,} MiB |
| 10,000,000 | {large['seconds']:.1f} s | {large['rows_per_second']:,} | {large['peak_mib']:,} MiB |

10× the profiles took **{ratio:.1f}×** the time (goal: at most 11×).
"""


if __name__ == "__main__":
    main()
