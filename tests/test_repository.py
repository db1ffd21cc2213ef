"""The repository stands on its own: no tracked file points at a path outside it.

A clean clone with nothing beside it runs `make run` and `make test`, and every file a page,
test, benchmark or Makefile names is in the clone. These tests keep it that way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
# This file is left out of the scans: its examples of what the checks catch are paths outside.
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()

# Folders a checkout grows that are not part of the repository (see .gitignore).
NOT_TRACKED = {".git", ".venv", ".venv-bench", "runs", ".omneo-bulk", "build", "dist", "__pycache__", ".pytest_cache",
               ".hypothesis", "benchmarks/data", "tests/artifacts"}

# The contract and the JsonLogic suite used to be read from a folder beside the checkout.
SIBLING_FOLDER = re.compile(r"\.\./+shared\b|\bshared/+(?:SPEC\.md|conformance)\b|\bSPEC\.md\b")
# A relative path that climbs: one or more "../" and what follows.
CLIMBING_PATH = re.compile(r"(?<![\w.])(?:\.\./)+[^\s`'\"()\[\]<>|,;]*")
# An absolute path into someone's home or a workspace: never part of a clone.
WORKSPACE_PATH = re.compile(r"(?<![\w.~/-])(?:/(?:home|Users|root|work)/[\w.-]+|~/[\w.-]+)")
# Path(__file__)[.resolve()].parents[N] or .parent.parent…
FILE_ANCESTOR = re.compile(r"Path\(__file__\)(?:\.resolve\(\))?(?:\.parents\[(\d+)\]|((?:\.parent\b)+))")
# [text](target) in Markdown; an image is the same with a leading "!".
MARKDOWN_LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL_LINK = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


def tracked_files() -> list[str]:
    """Paths relative to ROOT, POSIX style: what git tracks or would add, else a walk of the tree."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        listed = subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
        return sorted({p for p in listed.stdout.decode().split("\0") if p and (ROOT / p).is_file()})
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        here = Path(folder).relative_to(ROOT)
        subfolders[:] = [s for s in subfolders if (here / s).as_posix() not in NOT_TRACKED
                         and s not in NOT_TRACKED and not s.endswith(".egg-info")]
        found += [(here / name).as_posix() for name in files]
    return sorted(found)


def text_files() -> dict[str, str]:
    texts = {}
    for relative in tracked_files():
        try:
            texts[relative] = (ROOT / relative).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: names no path a reader follows
    return texts


def inside(relative_file: str, target: str) -> bool:
    """Whether target, read relative to the folder of relative_file, stays in the repository."""
    joined = os.path.normpath(PurePosixPath(relative_file).parent / target)
    return not (joined == ".." or joined.startswith("../") or os.path.isabs(joined))


def outside_references(relative_file: str, text: str) -> list[str]:
    """Every place in text that names a path outside the repository, as 'file:line: match'."""
    found = []
    depth = len(PurePosixPath(relative_file).parts) - 1  # folders between ROOT and the file
    for number, line in enumerate(text.splitlines(), 1):
        hits = [m.group(0) for m in SIBLING_FOLDER.finditer(line)]
        hits += [m.group(0) for m in CLIMBING_PATH.finditer(line) if not inside(relative_file, m.group(0))]
        for match in FILE_ANCESTOR.finditer(line):
            # parents[k] of a file `depth` folders below ROOT is ROOT when k == depth, outside beyond;
            # .parent written m times is parents[m - 1].
            k = int(match.group(1)) if match.group(1) is not None else match.group(2).count(".parent") - 1
            if k > depth:
                hits.append(match.group(0))
        hits += [m.group(0) for m in WORKSPACE_PATH.finditer(line)]
        found += [f"{relative_file}:{number}: {hit}" for hit in dict.fromkeys(hits)]
    return found


def github_anchors(markdown: str) -> set[str]:
    """The fragment ids GitHub gives a page's headings (lower case, punctuation dropped, '-' for ' ')."""
    anchors: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading and not in_code:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower().replace("`", "")).replace(" ", "-")
            candidate, n = slug, 0
            while candidate in anchors:
                n += 1
                candidate = f"{slug}-{n}"
            anchors.add(candidate)
    return anchors


def broken_links(relative_file: str, text: str) -> list[str]:
    """Every relative Markdown link whose file is not in the repository, or whose heading is not on it."""
    broken = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in MARKDOWN_LINK.finditer(line):
            target = match.group(1)
            if EXTERNAL_LINK.match(target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (ROOT / relative_file).parent / path if path else ROOT / relative_file
            if path and not inside(relative_file, path):
                broken.append(f"{relative_file}:{number}: {target} (outside the repository)")
            elif not resolved.exists():
                broken.append(f"{relative_file}:{number}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in github_anchors(resolved.read_text("utf-8")):
                broken.append(f"{relative_file}:{number}: {target} (no such heading)")
    return broken


TEXTS = text_files()


def test_the_checks_see_the_files_that_matter():
    for relative in ("README.md", "Makefile", "docs/contract.md", "tests/test_jsonlogic_conformance.py",
                     "tests/data/jsonlogic/tests.json", "pipeline/cli.py", "schemas/profiles.py"):
        assert relative in TEXTS


def test_no_tracked_file_points_outside_the_repository():
    found = [hit for relative, text in TEXTS.items() if relative != THIS_FILE
             for hit in outside_references(relative, text)]
    assert found == [], "paths outside the repository:\n" + "\n".join(found)


def test_every_relative_markdown_link_resolves_inside_the_repository():
    found = [hit for relative, text in TEXTS.items() if relative.endswith(".md")
             for hit in broken_links(relative, text)]
    assert found == [], "broken links:\n" + "\n".join(found)


@pytest.mark.parametrize(("relative_file", "line"), [
    ("README.md", "The contract is `" + "../" + "shared/SPEC.md`."),
    ("docs/jsonlogic.md", "runs every case of " + "shared" + "/conformance/jsonlogic-tests.json"),
    ("docs/scale.md", "see [results](../../elsewhere/RESULTS.md)"),
    ("tests/test_x.py", "SUITE = Path(__file__).resolve().parents[2] / 'suite.json'"),
    ("benchmarks/bench_x.py", "DATA = Path(__file__).parent.parent.parent / 'data'"),
    ("Makefile", "\tcp ../outside/file.json tests/"),
    ("docs/README.md", "read /work/shared/notes.md"),
    ("benchmarks/RESULTS.md", "data in ~/omneo-data/10m"),
])
def test_a_path_outside_is_found(relative_file, line):
    assert outside_references(relative_file, line + "\n")


@pytest.mark.parametrize(("relative_file", "line"), [
    ("docs/scale.md", "figures in [`benchmarks/RESULTS.md`](../benchmarks/RESULTS.md)"),
    ("tests/data/jsonlogic/README.md", "[`LICENSE`](../../../LICENSE)"),
    ("tests/test_x.py", "ROOT = Path(__file__).resolve().parents[1]"),
    ("tests/test_x.py", "HERE = Path(__file__).parent / 'data'"),
    ("pipeline/x.py", "SQL = Path(__file__).parent / 'sql'"),
    ("docs/outputs.md", "POST /api/v3/benefits/batch.json"),
    ("docs/dependencies.md", "pointed at `/usr/bin/chromium`; spills to `RUN/.tmp/duckdb`, not `/tmp`"),
])
def test_a_path_inside_is_not_found(relative_file, line):
    assert outside_references(relative_file, line + "\n") == []


def test_a_link_to_a_missing_heading_is_found():
    assert broken_links("README.md", "[contract](docs/contract.md#no-such-section)\n")
    assert broken_links("README.md", "[contract](docs/contract.md#4-bulk-issuance)\n") == []
