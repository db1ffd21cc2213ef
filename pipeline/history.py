"""The run history in the state folder: each run's headline counts, for the push guard and the report.

`<state>/history/<run_id>.json`, one file per run (benefits issued per campaign, findings per
category), written as the run finishes its last stage and replaced when the run is resumed,
so a killed and rerun night counts once.
"""

from __future__ import annotations

import json
import statistics
from datetime import datetime, timezone
from pathlib import Path

from pipeline.files import write_json_atomic

FOLDER = "history"


def record(state_dir: Path, run_id: str, as_of: datetime, run_dir: Path, stages: dict[str, dict]) -> dict:
    """Write this run's entry from its stage records; return it."""
    issue = stages.get("issue", {})
    reconcile = stages.get("reconcile", {})
    entry = {
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "run_dir": str(run_dir.resolve()),
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "benefits": issue.get("issued", 0),
        "campaigns": {c["campaign_id"]: c["issued"] for c in issue.get("campaigns", [])},
        "findings": {k: v for k, v in reconcile.get("categories", {}).items() if v},
    }
    write_json_atomic(state_dir / FOLDER / f"{run_id}.json", entry)
    return entry


def entries(state_dir: Path) -> list[dict]:
    """Every run's entry, oldest first (by the run's clock, then when it was recorded)."""
    folder = state_dir / FOLDER
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # one damaged entry must not stop a push; the guard counts the others
        if isinstance(entry, dict) and isinstance(entry.get("benefits"), int) and "as_of" in entry:
            found.append(entry)
    return sorted(found, key=lambda e: (e["as_of"], e.get("recorded_at", ""), e.get("run_id", "")))


def before(state_dir: Path, run_id: str, limit: int) -> list[dict]:
    """The `limit` runs recorded before `run_id` (the newest last); all others if it has none."""
    history = entries(state_dir)
    position = next((i for i, e in enumerate(history) if e.get("run_id") == run_id), len(history))
    return history[:position][-limit:]


def guard(state_dir: Path, run_id: str, tonight: int, *, factor: float, runs: int, minimum: int) -> str | None:
    """Why tonight's benefits look like a bad night, or None: more than `factor` x the median of
    the last `runs` runs, when at least `minimum` of them are recorded."""
    recent = before(state_dir, run_id, runs)
    if len(recent) < minimum:
        return None
    median = statistics.median(e["benefits"] for e in recent)
    if tonight <= factor * median:
        return None
    return (f"tonight's run {run_id} would send {tonight} benefits, more than {factor:g}x the median of the last "
            f"{len(recent)} runs ({median:g}); check the campaigns and exports, then push with --force if it is right")
