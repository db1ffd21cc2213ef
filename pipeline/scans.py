"""Streaming passes over an input file's bytes, the work done in C (pyarrow, bytes methods).

Splitting NDJSON into numbered lines, and the line arithmetic the CSV reader needs for
its faults: each reads the (decompressed) file once, chunk by chunk, never whole.
"""

from __future__ import annotations

import bisect
import codecs
import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


def open_bytes(path: Path):
    """A file's bytes, decompressed when it is gzip (`.gz`)."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


# Bytes read at a time when splitting NDJSON into lines.
LINE_CHUNK = 16 * 2**20
LINE_SCHEMA = pa.schema([("source_row", pa.int64()), ("line", pa.large_string())])


def line_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """A text file's lines (without the newline), numbered from 1, as Arrow batches.

    The split runs in C (pyarrow's split_pattern over a chunk of bytes); Python only
    carries the part line at the end of each chunk over to the next one. The file was
    proven UTF-8 before, so the cast to text cannot fail.
    """
    number = 0
    pending: list[bytes] = []  # the start of a line that continues in the next chunk
    with open_bytes(path) as handle:
        first = True
        while True:
            chunk = handle.read(LINE_CHUNK)
            if first:
                chunk, first = chunk.removeprefix(codecs.BOM_UTF8), False
            if chunk:
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    pending.append(chunk)
                    continue
                block = b"".join([*pending, chunk[:cut]])
                pending = [chunk[cut + 1 :]]
            else:
                block = b"".join(pending)
                if not block:
                    return
                pending = []
            lines = pc.split_pattern(pa.array([block], pa.large_binary()), b"\n").flatten()
            count = len(lines)
            numbers = pl.int_range(number + 1, number + 1 + count, dtype=pl.Int64, eager=True).to_arrow()
            number += count
            yield pa.RecordBatch.from_arrays([numbers, lines.cast(pa.large_string())], schema=LINE_SCHEMA)
            if not chunk:
                return


def blank_lines_before(path: Path, positions: list[int]) -> dict[int, int]:
    """For each byte position, how many blank lines come before it in the (decompressed) file.

    Only called for a file with malformed records. A blank line inside a quoted field is part
    of its record, not a blank line: a position is inside quotes when an odd number of quote
    characters precede it (an escaped quote is doubled, which keeps the parity).
    """
    if not positions:
        return {}
    blank_at: list[int] = []
    offset, quotes, previous = 0, 0, b"\n"
    with open_bytes(path) as handle:
        while chunk := handle.read(8 * 2**20):
            joined = previous + chunk  # a blank line may straddle two chunks
            counted = len(previous)  # quotes of `previous` were counted with the last chunk
            for match in re.finditer(rb"\n(?=\r?\n)", joined):
                if match.end() <= counted:
                    continue
                quotes += joined.count(b'"', counted, match.end())
                counted = match.end()
                if quotes % 2 == 0:
                    blank_at.append(offset - len(previous) + match.end())
            quotes += joined.count(b'"', counted)
            offset += len(chunk)
            previous = chunk[-1:]
    return {p: bisect.bisect_left(blank_at, p) for p in positions}


def lines_around(path: Path, position: int) -> tuple[int, int]:
    """The line (1-based) holding byte `position` of the (decompressed) file, and how many
    lines follow that line. One streaming pass, counting newlines in C."""
    before = after = 0
    offset, line_end = 0, None
    with open_bytes(path) as handle:
        while chunk := handle.read(8 * 2**20):
            start = max(0, position - offset)
            if line_end is None:
                before += chunk.count(b"\n", 0, min(len(chunk), start))
                end = chunk.find(b"\n", start) if start < len(chunk) else -1
                if end >= 0:
                    line_end = offset + end
                    after += chunk.count(b"\n", end + 1)
                    last = chunk[-1:]
            else:
                after += chunk.count(b"\n")
                last = chunk[-1:]
            offset += len(chunk)
    if line_end is not None and offset > line_end + 1 and last != b"\n":
        after += 1  # a last line without its newline
    return before + 1, after


def first_other_line_ending(path: Path) -> tuple[int, str, str] | None:
    """(line, its ending, line 1's ending) for the first line not ending like line 1 (CRLF
    vs LF), or None when all end alike. A streaming scan, run only after DuckDB failed."""
    line, first, after_cr = 0, None, False
    with open_bytes(path) as handle:
        while chunk := handle.read(8 * 2**20):
            for match in re.finditer(rb"\n", chunk):
                at = match.start()
                line += 1
                ending = "CRLF" if (chunk[at - 1 : at] == b"\r" if at else after_cr) else "LF"
                if first is None:
                    first = ending
                elif ending != first:
                    return line, ending, first
            after_cr = chunk.endswith(b"\r")
    return None
