"""File helpers: atomic writes, fsync, hashing, and the integrity pass over input files.

Outputs appear only complete (written under a temporary name, flushed to disk, then
renamed); a rename is made durable by flushing its folder too.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import InputError

CHUNK = 8 * 2**20


def temporary_name(final: Path) -> Path:
    """The name a file is written under before it is renamed to `final`.

    `.<name>.tmp-<pid>`: hidden, and recognisable, so the next command into a folder can
    remove what a killed one left (`TEMPORARY`).
    """
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


# A temporary file of `temporary_name`, or the write-ahead log DuckDB keeps beside one.
TEMPORARY = re.compile(r"^\..+\.tmp-\d+(\.wal)?$")


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; flush it and rename it into place on success."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(final)
    try:
        yield temporary
        fsync_file(temporary)
        os.replace(temporary, final)
        fsync_dir(final.parent)
    finally:
        if temporary.exists():
            temporary.unlink()


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to the disk: after this, a power cut cannot lose them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (the renames and removals made in it) to the disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(final: Path, text: str) -> None:
    with atomic_path(final) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json_atomic(final: Path, payload: object) -> None:
    write_text_atomic(final, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def sha256_of(path: Path, *, sync: bool = False) -> str:
    """The file's sha256; with `sync`, its bytes are flushed to the disk first."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if sync:
            os.fsync(handle.fileno())
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_input_file(path: Path, display: str, *, text: bool) -> str:
    """Hash a file and prove it readable: a whole gzip stream, UTF-8 text, no NUL bytes.

    Returns the sha256 of the bytes on disk. Raises InputError naming `display` otherwise.
    One streaming pass in C (hashlib, zlib, codecs); the file is never held in memory.
    """
    digest = hashlib.sha256()
    gzipped = path.name.lower().endswith(".gz")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if gzipped else None
    decoder = codecs.getincrementaldecoder("utf-8")()
    seen = 0  # decompressed bytes already checked, for the error position
    newlines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if inflater is not None:
                try:
                    chunk = inflater.decompress(chunk)
                    while inflater.eof and inflater.unused_data:
                        # A gzip file may hold several members one after another.
                        rest = inflater.unused_data
                        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                        chunk += inflater.decompress(rest)
                except zlib.error as error:
                    raise InputError(f"{display}: broken gzip stream ({error})") from None
            if text:
                _check_text(chunk, decoder, display, seen, newlines)
                newlines += chunk.count(b"\n")
            seen += len(chunk)
    if inflater is not None and not inflater.eof:
        raise InputError(f"{display}: broken gzip stream (the file is truncated)")
    if text:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(f"{display}: not UTF-8 text (the file ends inside a character)") from None
    return digest.hexdigest()


def _utf16_or_32(head: bytes) -> str | None:
    """UTF-16 or UTF-32 when the file's first bytes say so: a byte order mark, or text whose
    every other byte is NUL (what Excel's "Unicode text" and PowerShell write)."""
    for mark, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                       (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if head.startswith(mark):
            return name
    sample = head[:1024]
    if len(sample) >= 4:
        even, odd = sample[0::2], sample[1::2]
        for zeros, other in ((odd, even), (even, odd)):
            if zeros.count(0) > 0.9 * len(zeros) and other.count(0) < 0.1 * len(other):
                return "UTF-16"
    return None


def _check_text(chunk: bytes, decoder, display: str, seen: int, newlines: int) -> None:
    if seen == 0 and (encoding := _utf16_or_32(chunk)):
        raise InputError(f"{display}: {encoding} text, not UTF-8; re-export the file as UTF-8")
    nul = chunk.find(b"\x00")
    if nul >= 0:
        line = newlines + chunk.count(b"\n", 0, nul) + 1
        raise InputError(f"{display}: binary data, not text (a NUL byte on line {line})")
    try:
        decoder.decode(chunk)
    except UnicodeDecodeError as error:
        line = newlines + chunk.count(b"\n", 0, max(error.start, 0)) + 1
        raise InputError(
            f"{display}: not UTF-8 text (byte 0x{chunk[error.start]:02x} on line {line}); "
            "re-export the file as UTF-8"
        ) from None
