"""The calls a run's payload files hold, each checked, and how to tell whether Omneo applied one.

A payload line is one API call (docs/contract.md §6). Every line is checked before anything
is sent: JSON, a known kind, the path its kind must have, a batch of 1 to 500 benefits.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PushError

KINDS = ("benefits", "claim_redeem", "redemptions", "returns")
BATCH_LIMIT = 500  # benefits per batch call: Omneo's cap

_ID = r"[^/?#]+"
PATHS = {
    "benefits": re.compile(r"^/api/v3/benefits(/batch\.json)?$"),
    "claim_redeem": re.compile(rf"^/api/v3/profiles/(?P<profile_id>{_ID})/benefits/claim-redeem$"),
    "redemptions": re.compile(rf"^/api/v3/profiles/(?P<profile_id>{_ID})/benefits/(?P<benefit_id>{_ID})/redemptions$"),
    "returns": re.compile(rf"^/api/v3/redemptions/(?P<redemption_id>{_ID})/benefit/return$"),
}

# Where to look an external_id up when a call's outcome is unknown (GET, with
# `filter[external_id]`). Omneo documents the first; the other two follow the same
# pattern and are settings (`push.lookup_*` in a --config file): see docs/push.md.
LOOKUPS = {
    "benefits": "/api/v3/profiles/{profile_id}/benefits",
    "redemptions": "/api/v3/profiles/{profile_id}/benefits/{benefit_id}/redemptions",
    "claim_redeem": "/api/v3/profiles/{profile_id}/redemptions",
}


@dataclass(frozen=True)
class Call:
    """One payload line, as it will be sent."""

    key: str
    kind: str
    run_id: str
    file: str  # relative to the run folder
    line: int
    method: str
    path: str
    body_sha256: str  # of the JSON body as sent; the body itself is read again when it goes
    position: int
    benefits: int  # benefits the call issues (0 for a corrective call)

    def record(self) -> dict:
        return {"key": self.key, "kind": self.kind, "run_id": self.run_id, "file": self.file, "line": self.line,
                "method": self.method, "path": self.path, "body_sha256": self.body_sha256,
                "position": self.position}


@dataclass(frozen=True)
class Target:
    """One thing a call creates, found again by its external_id."""

    external_id: str
    lookup_path: str


def body_text(body: object) -> str:
    """The one way a body is written to the wire (and hashed)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def read(run_dir: Path, outputs: list[str], run_id: str, kinds: tuple[str, ...]) -> list[Call]:
    """Every call in the run's listed payload files of `kinds`, in send order; raise PushError on a bad line."""
    calls: list[Call] = []
    for kind in KINDS:
        if kind not in kinds:
            continue
        for relative in sorted(p for p in outputs if p.startswith(f"payloads/{kind}/") and p.endswith(".ndjson")):
            with (run_dir / relative).open(encoding="utf-8") as handle:
                for number, text in enumerate(handle, start=1):
                    if text.strip():
                        calls.append(_call(kind, run_id, relative, number, text, len(calls)))
    return calls


def _call(kind: str, run_id: str, file: str, line: int, text: str, position: int) -> Call:
    def fault(message: str) -> PushError:
        return PushError(f"{file} line {line}: {message}; nothing was sent")

    try:
        document = json.loads(text)
    except ValueError as error:
        raise fault(f"not JSON ({error})") from None
    if not isinstance(document, dict):
        raise fault("not a JSON object")
    method, path, key, body = (document.get(k) for k in ("method", "path", "idempotency_key", "body"))
    if method != "POST":
        raise fault(f"method {method!r}, expected POST")
    if not isinstance(path, str) or not PATHS[kind].match(path):
        raise fault(f"path {path!r} is not a {kind} call")
    if not isinstance(key, str) or not key:
        raise fault("no idempotency_key")
    if not isinstance(body, dict):
        raise fault("body is not a JSON object")
    if kind == "benefits":
        items = body.get("benefits") if path.endswith("batch.json") else [body]
        if not isinstance(items, list) or not 1 <= len(items) <= BATCH_LIMIT:
            raise fault(f"a batch call needs 1 to {BATCH_LIMIT} benefits")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("external_id"), str) \
                    or not isinstance(item.get("profile_id"), str):
                raise fault("a benefit without profile_id or external_id")
    elif kind in LOOKUPS and not isinstance(body.get("external_id"), str):
        raise fault("no external_id in the body")
    text = body_text(body)
    issued = (len(body["benefits"]) if "benefits" in body else 1) if kind == "benefits" else 0
    return Call(key, kind, run_id, file, line, method, path, hashlib.sha256(text.encode("utf-8")).hexdigest(),
                position, issued)


class Bodies:
    """The body of a call, read again from its payload file when it is sent.

    A night at 10M profiles holds a gigabyte of payloads: only where each line starts is
    kept, and a body is read, checked against its journaled sha256, when its call goes.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._starts: dict[str, list[int]] = {}

    def __call__(self, file: str, line: int, sha256: str) -> str:
        path = self.run_dir / file
        if file not in self._starts:
            starts, offset = [], 0
            with path.open("rb") as handle:
                for raw in handle:
                    starts.append(offset)
                    offset += len(raw)
            self._starts[file] = starts
        with path.open("rb") as handle:
            handle.seek(self._starts[file][line - 1])
            text = body_text(json.loads(handle.readline())["body"])
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != sha256:
            raise PushError(f"{path} line {line}: changed while the push ran; nothing more was sent")
        return text


def targets(kind: str, path: str, body: dict, lookups: dict[str, str]) -> list[Target]:
    """What the call creates, each with where to look it up; empty for a return (no lookup)."""
    if kind not in lookups:
        return []
    if kind == "benefits":
        items = body["benefits"] if "benefits" in body else [body]
        return [Target(item["external_id"], lookups[kind].format(profile_id=item["profile_id"])) for item in items]
    ids = PATHS[kind].match(path).groupdict()
    return [Target(body["external_id"], lookups[kind].format(**ids))]


def without(body: dict, external_ids: set[str]) -> dict:
    """A benefits batch body less the benefits with these external_ids."""
    return {**body, "benefits": [b for b in body["benefits"] if b["external_id"] not in external_ids]}
