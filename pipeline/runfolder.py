"""A run folder (`--out`): one command at a time, and outputs committed stage by stage.

A stage writes its files under `.staging/`, then commits them: first a journal
(`.commit.json`) naming every file to move into place, every file to remove, and the
manifest that describes the result; then the moves, the removals and `manifest.json`;
then the journal goes. A command killed before the journal leaves only staged files,
which the next command removes; killed after it, the next command into the folder
finishes the commit before anything else. So `manifest.json` always lists exactly the
finished files, and a file is never half-written where a finished one would be. See
docs/runs.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from pipeline import failpoints
from pipeline.errors import RunFolderError, RunFolderInUse
from pipeline.files import TEMPORARY, fsync_dir, write_json_atomic

MANIFEST = "manifest.json"
JOURNAL = ".commit.json"
STAGING = ".staging"
SCRATCH = ".tmp"  # DuckDB's spill files and other scratch of one command


class RunFolder:
    """An open run folder, held by this process until `close`."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd: int | None = lock_fd
        self.manifest: dict | None = None  # as last committed; None for a new folder

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        """Hold the folder, finish a commit a killed command left, and clear its leftovers.

        A second command into the same folder stops here, before touching anything: two
        runs writing one folder would mix their files under one manifest. The lock is the
        kernel's (flock on the folder itself), so a killed command never leaves it held.
        """
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderInUse(
                f"run folder {path} is in use by another omneo-bulk command; two commands writing "
                "one folder would mix their outputs: wait for it to finish, or give this one its own --out"
            ) from None
        folder = cls(path, fd)
        try:
            journal = read_journal(path)
            if journal is not None:
                folder._apply(journal)
            folder._clear_leftovers()
            folder.manifest = read_manifest(path)
        except BaseException:
            folder.close()
            raise
        return folder

    def close(self) -> None:
        """Drop what was staged but never committed, then release the folder."""
        if self._lock_fd is None:
            return
        try:
            if not (self.path / JOURNAL).exists():  # a journal's staged files are still needed
                for name in (STAGING, SCRATCH):
                    shutil.rmtree(self.path / name, ignore_errors=True)
        finally:
            os.close(self._lock_fd)  # closing releases the lock
            self._lock_fd = None

    # Writing ------------------------------------------------------------------------------

    def staged(self, relative: str) -> Path:
        """Where the output `relative` is written before its commit (its folder made)."""
        path = self.path / STAGING / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def files_under(self, prefix: str) -> list[str]:
        """The files on disk under `prefix` (a folder ending in '/', or one file), relative."""
        target = self.path / prefix
        if not prefix.endswith("/"):
            return [prefix] if target.is_file() else []
        if not target.is_dir():
            return []
        return sorted(p.relative_to(self.path).as_posix() for p in target.rglob("*") if p.is_file())

    def commit(self, manifest: dict, moves: list[str], removes: list[str]) -> None:
        """Move the staged `moves` into place, delete `removes`, and write `manifest`, as one.

        Whatever can fail harmlessly (a folder that cannot be made) fails before the journal,
        leaving the last commit's files and manifest as they were.
        """
        for relative in moves:
            if not (self.path / STAGING / relative).is_file():
                raise RunFolderError(f"{self.path / STAGING / relative}: staged output missing before its commit")
            (self.path / relative).parent.mkdir(parents=True, exist_ok=True)
        journal = {"moves": moves, "removes": removes, "manifest": manifest}
        write_json_atomic(self.path / JOURNAL, journal)
        failpoints.reach("commit_journaled")
        self._apply(journal)
        self.manifest = manifest

    def _apply(self, journal: dict) -> None:
        """Carry out a journal; safe to repeat, so a killed commit is finished by the next command."""
        touched = {self.path}
        for relative in journal["moves"]:
            source, final = self.path / STAGING / relative, self.path / relative
            if source.exists():
                os.replace(source, final)
                touched |= {final.parent, source.parent}
                failpoints.reach("commit_moving")
            elif not final.is_file():
                raise RunFolderError(
                    f"{self.path / JOURNAL}: names {relative}, which is neither staged nor in place; "
                    "the folder was changed by hand: move it aside and rerun into a new --out"
                )
        for relative in journal["removes"]:
            path = self.path / relative
            path.unlink(missing_ok=True)
            touched.add(path.parent)
        for folder in touched:
            if folder.is_dir():
                fsync_dir(folder)
        write_json_atomic(self.path / MANIFEST, journal["manifest"])
        failpoints.reach("commit_manifest_written")
        (self.path / JOURNAL).unlink()
        fsync_dir(self.path)

    def _clear_leftovers(self) -> None:
        """Remove what a killed command left: staged and scratch files, temporary names."""
        for name in (STAGING, SCRATCH):
            shutil.rmtree(self.path / name, ignore_errors=True)
        for root, _folders, files in os.walk(self.path):
            for name in files:
                if TEMPORARY.match(name):
                    (Path(root) / name).unlink(missing_ok=True)


def read_manifest(path: Path) -> dict | None:
    """The folder's manifest, None when it has none; a manifest that cannot be read is a fault."""
    return _read_json(path / MANIFEST, "manifest", required=("run_id", "outputs", "stages"))


def read_journal(path: Path) -> dict | None:
    return _read_json(path / JOURNAL, "commit journal", required=("moves", "removes", "manifest"))


def _read_json(file: Path, what: str, required: tuple[str, ...]) -> dict | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise RunFolderError(
            f"{file}: the {what} cannot be read ({error}); the folder was damaged outside omneo-bulk: "
            "move the run folder aside and rerun into a new --out"
        ) from None
    if not isinstance(data, dict) or any(key not in data for key in required):
        raise RunFolderError(
            f"{file}: not an omneo-bulk {what}; move the run folder aside and rerun into a new --out"
        )
    return data


def committed(path: Path, commit_id: str) -> bool:
    """Did the commit `commit_id` reach the folder `path` (its manifest, or a journal to finish)?

    Read without the folder's lock: both files are replaced by rename, so never half-read.
    """
    journal = read_journal(path)
    manifests = [journal["manifest"] if journal else None, read_manifest(path)]
    return any(
        stage.get("commit") == commit_id for manifest in manifests if manifest for stage in manifest["stages"]
    )
