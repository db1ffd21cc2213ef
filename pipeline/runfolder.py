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
import re
import shutil
from collections.abc import Iterable
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
    def open(cls, path: Path, *, must_hold_a_run: bool = False) -> RunFolder:
        """Hold the folder, finish a commit a killed command left, and clear its leftovers.

        A second command into the same folder stops here, before touching anything: two
        runs writing one folder would mix their files under one manifest. The lock is the
        kernel's (flock on the folder itself), so a killed command never leaves it held.
        A folder is only ever cleaned once it is known to be a run folder: `--out ~` by
        mistake must not lose a file (`must_hold_a_run`: push and report need a run there).
        """
        if "?" in str(path.absolute()):
            raise RunFolderError(
                f"{path}: a run folder's path may not hold '?': DuckDB reads it as the start of options in "
                "a database file name; choose another --out"
            )
        _check_is_run_folder(path, must_hold_a_run)
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

    def commit(self, manifest: dict, moves: list[str], removes: list[str]) -> None:
        """Move the staged `moves` into place, delete `removes`, and write `manifest`, as one.

        Whatever can fail harmlessly (a folder that cannot be made) fails before the journal,
        leaving the last commit's files and manifest as they were.
        """
        removing = set(removes)
        for relative in moves:
            if not (self.path / STAGING / relative).is_file():
                raise RunFolderError(f"{self.path / STAGING / relative}: staged output missing before its commit")
            final = self.path / relative
            if final.is_dir() and any(p.is_file() and p.relative_to(self.path).as_posix() not in removing
                                      for p in final.rglob("*")):
                raise RunFolderError(
                    f"{final}: a folder of files no run listed stands where {relative} goes; move it aside and rerun"
                )
            # A file giving way to a folder of its name (one engine's file, the other's parts)
            # goes first, in `_apply`; its folder is made there.
            if not any(parent.as_posix() in removing for parent in Path(relative).parents):
                final.parent.mkdir(parents=True, exist_ok=True)
        journal = {"moves": moves, "removes": removes, "manifest": manifest}
        write_json_atomic(self.path / JOURNAL, journal)
        failpoints.reach("commit_journaled")
        self._apply(journal)
        self.manifest = manifest

    def _apply(self, journal: dict) -> None:
        """Carry out a journal; safe to repeat, so a killed commit is finished by the next command.

        Removals come first, so that a path can change from a file to a folder of parts (or
        back) in one commit; until the manifest is written, the journal finishes the rest.
        """
        touched = {self.path}
        for relative in journal["removes"]:
            path = self.path / relative
            path.unlink(missing_ok=True)
            touched.add(path.parent)
        for relative in journal["moves"]:
            source, final = self.path / STAGING / relative, self.path / relative
            if source.exists():
                if final.is_dir() and not any(final.iterdir()):
                    final.rmdir()  # the folder of parts a file of its name replaces, emptied above
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, final)
                touched |= {final.parent, source.parent}
                failpoints.reach("commit_moving")
            elif not final.is_file():
                raise RunFolderError(
                    f"{self.path / JOURNAL}: names {relative}, which is neither staged nor in place; "
                    "the folder was changed by hand: move it aside and rerun into a new --out"
                )
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


# What a command killed before its first commit leaves in a new folder: scratch only
# (DuckDB's spill files; the Spark engine's folder of one process, `spark-<pid>`).
SCRATCH_ONLY = {STAGING: None, SCRATCH: re.compile(r"duckdb|spark-\d+")}


def _check_is_run_folder(path: Path, must_hold_a_run: bool) -> None:
    """Stop before touching a folder that is not a run folder, nor new, nor empty.

    Without a manifest (or a commit to finish), a folder is taken as this program's only if
    it holds nothing but the scratch of a command killed before its first commit.
    """
    if not path.exists():
        if must_hold_a_run:
            raise RunFolderError(f"{path}: no such run folder")
        return
    if (path / MANIFEST).is_file() or (path / JOURNAL).is_file():
        return
    if must_hold_a_run:
        raise RunFolderError(f"{path}: no manifest.json here, so no finished run to work on; is it a run folder?")
    foreign = []
    for entry in sorted(path.iterdir()):
        if TEMPORARY.match(entry.name):
            continue
        allowed = SCRATCH_ONLY.get(entry.name, ())
        if entry.name not in SCRATCH_ONLY or (
            allowed is not None and not all(allowed.fullmatch(p.name) for p in entry.iterdir())
        ):
            foreign.append(entry.name)
    if foreign:
        raise RunFolderError(
            f"{path}: holds files of no run ({', '.join(foreign[:3])}{', …' if len(foreign) > 3 else ''}); "
            "give --out a new or empty folder"
        )


def validated_paths(listed: Iterable[str], name: str) -> list[str]:
    """Where a run folder's accepted rows of dataset `name` are, of the paths `listed` in its
    manifest: the file `validated/<name>.parquet`, or (the Spark engine) the parts of the
    folder of that name, in order."""
    whole = f"validated/{name}.parquet"
    return sorted(path for path in listed if path == whole or path.startswith(whole + "/"))


def read_manifest(path: Path) -> dict | None:
    """The folder's manifest, None when it has none; a manifest that cannot be read is a fault."""
    return _read_json(path / MANIFEST, "manifest", required=("run_id", "as_of", "outputs", "stages"))


def read_journal(path: Path) -> dict | None:
    return _read_json(path / JOURNAL, "commit journal", required=("moves", "removes", "manifest"))


def _read_json(file: Path, what: str, required: tuple[str, ...]) -> dict | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:  # ValueError: not JSON, or not UTF-8
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
