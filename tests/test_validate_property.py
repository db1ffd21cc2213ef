"""Property: every record of a messy CSV is accepted or rejected exactly once, for the right reason.

Hypothesis builds profiles and benefits CSVs byte by byte: random quoting, embedded newlines,
commas and quotes, shuffled and extra columns, blanks, wrong types, duplicates, bad time
zones and broken records. Each record's fate is known by construction, so N, the row
numbers 1..N and each rejected row's reasons are checked against what was written.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_ok, read_manifest, read_rejects, read_validated, reasons_by_row, validate, write_file

SETTINGS = settings(
    max_examples=45,
    deadline=None,
    derandomize=True,  # the same examples on every machine and every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Text that must survive a CSV round trip unchanged: delimiters, quotes, newlines, unicode,
# and words some readers take for null. (A blank line inside quotes before a malformed record
# has its own test in test_validate_rules.py.)
TEXT = st.one_of(
    st.text(alphabet="abcXYZ019 ,\"'\n;|é中-_.", min_size=1, max_size=12),
    st.sampled_from(["NULL", "null", "NA", "N/A", "None", "-", "0"]),
)
PROFILE_IDS = ["p1", "p2", "p3", "P-4", "x_5", "a9"]
PROFILE_COLUMNS = ["id", "email", "first_name", "birth_day", "birth_month", "timezone", "tags", "joined_at",
                   "region", "note"]
# fault → (column it breaks, bad values, the reason the pipeline must give)
PROFILE_FAULTS = {
    "missing_id": ("id", [None], "missing_value"),
    "id_pattern": ("id", ["bad id!", "-p1"], "invalid_value"),
    "day_type": ("birth_day", ["x", "5.5", "1e3", "three"], "invalid_type"),
    "month_range": ("birth_month", ["0", "13", "-1"], "out_of_range"),
    "timezone": ("timezone", ["Mars/Olympus", "Australia/Melbourn", "GMT+25"], "invalid_timezone"),
    "timestamp": ("joined_at", ["2026-13-01 00:00:00", "soon", "2026-02-30T10:00:00Z"], "invalid_type"),
}
BROKEN = ("stray_quote", "too_many", "too_few")


@dataclass
class Record:
    """One data record as written, and what validation must decide about it."""

    values: dict[str, str | None]
    fault: str | None = None  # a key of the FAULTS table, one of BROKEN, or None for a good row
    reasons: set[str] = field(default_factory=set)


def render_field(value: str | None, quote: bool) -> str:
    """One CSV field: empty for null, quoted when asked or when the text needs it."""
    if value is None:
        return ""
    if quote or any(c in value for c in ',"\n\r') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def record_lines(draw, record: Record, header: list[str]) -> str:
    """A record as CSV text (no line end); broken records are one physical line of plain values."""
    if record.fault in BROKEN:
        plain = [f"v{i}" for i in range(len(header))]
        plain[header.index("id")] = "p1"
        if record.fault == "stray_quote":
            position = draw(st.integers(0, len(header) - 1))
            plain[position] = '"quoted"then-text'
        elif record.fault == "too_many":
            plain += ["surplus"] * draw(st.integers(1, 3))
        else:
            plain = plain[: draw(st.integers(1, len(header) - 1))]
        return ",".join(plain)
    return ",".join(render_field(record.values.get(c), draw(st.booleans())) for c in header)


@st.composite
def good_profile(draw) -> dict[str, str | None]:
    return {
        "id": draw(st.sampled_from(PROFILE_IDS)),
        "email": draw(st.one_of(st.none(), TEXT)),
        "first_name": draw(st.one_of(st.none(), TEXT)),
        "birth_day": draw(st.one_of(st.none(), st.integers(1, 31).map(str), st.just("7.0"))),
        "birth_month": draw(st.one_of(st.none(), st.integers(1, 12).map(str))),
        "timezone": draw(st.sampled_from([None, "UTC", "Australia/Melbourne", "Europe/London"])),
        "tags": draw(st.sampled_from([None, "vip", "vip, gold", '["a","b"]'])),
        "joined_at": draw(st.sampled_from([None, "2026-01-01 10:00:00", "2026-04-05T01:30:00+11:00", "2025-12-31"])),
        "region": draw(st.one_of(st.none(), TEXT)),
        "note": draw(TEXT),
    }


@st.composite
def messy_profiles(draw) -> tuple[str, list[Record], list[str]]:
    """CSV text, the records in file order with their expected reasons, and the header."""
    header = draw(st.permutations(PROFILE_COLUMNS))
    kinds = draw(st.lists(st.sampled_from([None] * 6 + list(PROFILE_FAULTS) + list(BROKEN)), min_size=1, max_size=25))
    records = []
    for kind in kinds:
        values = draw(good_profile())
        if kind in PROFILE_FAULTS:
            column, bad_values, reason = PROFILE_FAULTS[kind]
            values[column] = draw(st.sampled_from(bad_values))
            records.append(Record(values, kind, {reason}))
        elif kind in BROKEN:
            records.append(Record(values, kind, {"malformed_row"}))
        else:
            records.append(Record(values))
    # The first good row of an id is kept; later good rows with that id are duplicates.
    seen: set[str] = set()
    for record in records:
        if record.fault is None:
            if record.values["id"] in seen:
                record.reasons = {"duplicate_key"}
            seen.add(record.values["id"])
    lines = [",".join(header)] + [draw(record_lines(r, header)) for r in records]
    # An unterminated quote swallows the rest of the file, so it only ever comes last.
    if draw(st.booleans()):
        lines.append(f'p1,"never closed{"," * (len(header) - 2)}')
        records.append(Record({}, "unterminated", {"malformed_row"}))
    text = "\n".join(lines) + draw(st.sampled_from(["\n", ""]))
    return text, records, header


@contextlib.contextmanager
def validated_run(files: dict[str, str]) -> Iterator[Path]:
    """Write the files to a fresh folder (one per example), validate them, yield the run folder."""
    with tempfile.TemporaryDirectory(prefix="omneo-property-") as folder:
        for name, text in files.items():
            write_file(Path(folder) / "in", name, text)
        run = Path(folder) / "run"
        assert_ok(validate(Path(folder) / "in", run))
        yield run


def assert_each_record_once(run: Path, dataset: str, file: str, records: list[Record]) -> None:
    """Rows 1..N, each in validated or rejects, never both, never missing; manifest agrees."""
    validated, rejects = read_validated(run, dataset), read_rejects(run, dataset)
    accepted = validated["source_row"].to_list()
    rejected = set(rejects["source_row"].to_list())
    assert len(accepted) == len(set(accepted)), "a row accepted twice"
    assert not set(accepted) & rejected, "a row both accepted and rejected"
    assert sorted(set(accepted) | rejected) == list(range(1, len(records) + 1))
    assert set(validated["source_file"]) <= {file} and set(rejects["source_file"]) <= {file}
    (entry,) = [e for e in read_manifest(run)["inputs"] if e["dataset"] == dataset]
    assert (entry["rows_read"], entry["accepted"], entry["rejected"]) == (len(records), len(accepted), len(rejected))


@SETTINGS
@given(messy_profiles())
def test_every_profile_record_is_accepted_or_rejected_once(case):
    text, records, _ = case
    with validated_run({"profiles.csv": text}) as run:
        assert_each_record_once(run, "profiles", "profiles.csv", records)
        expected = {row: r.reasons for row, r in enumerate(records, start=1) if r.reasons}
        assert reasons_by_row(read_rejects(run, "profiles")) == expected
        # Accepted rows carry exactly the text that was written, extra columns included.
        written = {row: r.values for row, r in enumerate(records, start=1) if not r.reasons}
        for row in read_validated(run, "profiles").iter_rows(named=True):
            for column in ("id", "email", "first_name", "region", "note", "timezone"):
                assert row[column] == written[row["source_row"]][column], (row["source_row"], column)


# Benefits referencing definitions -------------------------------------------------------

# Definition 1 and 2 are accepted; 3 is rejected (max_redemptions 0); 4 does not exist.
DEFINITIONS = "id,handle,name,max_redemptions\n1,first,First,1\n2,second,Second,\n3,third,Third,0\n"
BENEFIT_COLUMNS = ["id", "profile_id", "benefit_definition_id", "issued_at", "channel"]
BENEFIT_FAULTS = {
    "id_type": ("id", ["ten", "10.5"], "invalid_type"),
    "missing_issued": ("issued_at", [None], "missing_value"),
    "issued_type": ("issued_at", ["tomorrow", "2026-02-30"], "invalid_type"),
    "missing_profile": ("profile_id", [None], "missing_value"),
}


@st.composite
def messy_benefits(draw) -> tuple[str, list[Record]]:
    header = draw(st.permutations(BENEFIT_COLUMNS))
    kinds = draw(st.lists(st.sampled_from([None] * 4 + ["dangling", "duplicate"] + list(BENEFIT_FAULTS)
                                          + list(BROKEN)), min_size=1, max_size=20))
    records: list[Record] = []
    first_good: str | None = None
    for index, kind in enumerate(kinds, start=1):
        values = {
            "id": str(100 + index),
            "profile_id": draw(st.sampled_from(PROFILE_IDS)),
            "benefit_definition_id": draw(st.sampled_from(["1", "2"])),
            "issued_at": draw(st.sampled_from(["2026-01-01", "2026-01-01 09:00:00", "2026-01-01T09:00:00+10:00"])),
            "channel": draw(TEXT),
        }
        if kind == "dangling":
            values["benefit_definition_id"] = draw(st.sampled_from(["3", "4"]))
            records.append(Record(values, kind, {"unknown_definition"}))
        elif kind == "duplicate" and first_good is not None:
            values["id"] = first_good
            records.append(Record(values, kind, {"duplicate_key"}))
        elif kind in BENEFIT_FAULTS:
            column, bad_values, reason = BENEFIT_FAULTS[kind]
            values[column] = draw(st.sampled_from(bad_values))
            records.append(Record(values, kind, {reason}))
        elif kind in BROKEN:
            records.append(Record(values, kind, {"malformed_row"}))
        else:
            records.append(Record(values))
            first_good = first_good or values["id"]
    lines = [",".join(header)] + [draw(record_lines(r, header)) for r in records]
    return "\n".join(lines) + "\n", records


@SETTINGS
@given(messy_benefits())
def test_every_benefit_record_is_accepted_or_rejected_once(case):
    text, records = case
    with validated_run({"benefit_definitions.csv": DEFINITIONS, "benefits.csv": text}) as run:
        assert_each_record_once(run, "benefits", "benefits.csv", records)
        expected = {row: r.reasons for row, r in enumerate(records, start=1) if r.reasons}
        assert reasons_by_row(read_rejects(run, "benefits")) == expected
        validated = read_validated(run, "benefits")
    assert set(validated["benefit_definition_id"].to_list()) <= {1, 2}
    written = {row: r.values for row, r in enumerate(records, start=1) if not r.reasons}
    for row in validated.iter_rows(named=True):
        assert row["channel"] == written[row["source_row"]]["channel"]
        assert str(row["id"]) == written[row["source_row"]]["id"]
