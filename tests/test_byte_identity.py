"""Outputs stay byte-identical while the pipeline is made faster.

Generated exports (fixed seed) run through `omneo-bulk run` twice, once with the default
payload options and once with small batches, single calls and short files; the sha256 of
every output must equal the one recorded in tests/data/golden/ by the code before the
performance work (the commit is named in the file). Only the run's own records
(manifest.json, the report, the warehouse) carry times and ids and are left out.

When a change is meant to alter outputs (or DuckDB's Parquet writer changes), record anew:
    python tests/test_byte_identity.py --record
and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "data" / "golden" / "outputs.json"
OMNEO_BULK = str(Path(sys.executable).with_name("omneo-bulk"))
AS_OF = "2026-11-22T09:00:00+11:00"
OWN_BYTES = {"manifest.json", "report.html", "report.md", "warehouse.duckdb"}
VARIANTS = {
    "default": [],
    "small-batches": ["--batch-size", "7", "--lines-per-file", "5", "--single"],
}


def environment() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("OMNEO_BULK")}


def outputs_of(root: Path, variant: str) -> dict[str, str]:
    """sha256 of every output of one run over the generated exports, by path."""
    exports = root / "exports"
    if not exports.exists():
        made = subprocess.run([OMNEO_BULK, "generate", "--out", str(exports), "--profiles", "20000", "--seed", "42",
                               "--format", "parquet", "-q"], capture_output=True, text=True, env=environment())
        assert made.returncode == 0, made.stderr
    out = root / variant
    result = subprocess.run([OMNEO_BULK, "run", "--input", str(exports), "--campaigns", str(exports / "campaigns.toml"),
                             "--out", str(out), "--state", str(root / f"{variant}-state"), "--as-of", AS_OF,
                             "--max-reject-ratio", "1", "-q", *VARIANTS[variant]],
                            capture_output=True, text=True, env=environment())
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {o["path"]: hashlib.sha256((out / o["path"]).read_bytes()).hexdigest()
            for o in manifest["outputs"] if o["path"] not in OWN_BYTES}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("identity")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_output_is_byte_identical_to_the_recorded_one(root, variant):
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))["variants"][variant]

    found = outputs_of(root, variant)

    assert sorted(found) == sorted(golden)
    different = sorted(path for path in golden if found[path] != golden[path])
    assert different == [], f"outputs changed: {different}"


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        if subprocess.run(["git", "status", "--porcelain", "pipeline"], capture_output=True, text=True).stdout.strip():
            commit += " with uncommitted changes to pipeline/ (the commit that records this file)"
        record = {"recorded_by": commit, "variants": {v: outputs_of(Path(scratch), v) for v in VARIANTS}}
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"recorded {sum(len(v) for v in record['variants'].values())} outputs in {GOLDEN}")
