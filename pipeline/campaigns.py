"""Read a campaigns TOML file and check every campaign before any output is written.

A campaign names a definition, an optional audience rule, an issue time and zone, a cycle,
a priority and a cap (contract §4). Any fault stops the run with a message naming the campaign.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline import zones
from pipeline.errors import CampaignError, RuleError

KEYS = {"id", "definition", "audience", "issued_at", "timezone", "cycle", "priority", "limit"}


@dataclass(frozen=True)
class Campaign:
    """One checked campaign, in file order (`position` counts from 0)."""

    position: int
    id: str
    definition: str  # handle, or id as text, as written
    audience: object | None  # parsed JsonLogic, or None for everyone
    issued_at: datetime | None  # local wall time (naive), or None for as_of
    timezone: str | None  # None: the profile's zone, then --default-timezone
    cycle: str
    priority: str  # a profile-context variable; a leading "-" ranks descending
    limit: int | None

    @property
    def priority_column(self) -> str:
        return self.priority.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.priority.startswith("-")


def load(path: Path) -> list[Campaign]:
    """Parse and check the file's campaigns; raise CampaignError on the first fault."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CampaignError(f"{path}: campaigns file does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CampaignError(f"{path}: not valid TOML ({error})") from None
    entries = data.get("campaigns")
    if not isinstance(entries, list) or not entries:
        raise CampaignError(f"{path}: no [[campaigns]] entries")
    campaigns: list[Campaign] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        campaign = _campaign(path, position, entry)
        if campaign.id in seen:
            raise CampaignError(f"{path}: campaign {campaign.id!r}: duplicate campaign id")
        seen.add(campaign.id)
        campaigns.append(campaign)
    return campaigns


def _campaign(path: Path, position: int, entry: dict) -> Campaign:
    name = entry.get("id") if isinstance(entry.get("id"), str) and entry.get("id") else f"#{position + 1}"

    def fault(message: str) -> CampaignError:
        return CampaignError(f"{path}: campaign {name!r}: {message}")

    unknown = sorted(set(entry) - KEYS)
    if unknown:
        raise fault(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})")
    if not isinstance(entry.get("id"), str) or not entry["id"].strip():
        raise fault("needs an id (a non-empty string)")
    if ":" in entry["id"]:
        raise fault("id may not contain ':' (it is part of external_id)")
    definition = entry.get("definition")
    if isinstance(definition, int) and not isinstance(definition, bool):
        definition = str(definition)
    if not isinstance(definition, str) or not definition:
        raise fault("needs a definition (handle or numeric id)")
    audience = entry.get("audience")
    if audience is not None:
        audience = _rule(audience, fault)
    issued_at = entry.get("issued_at")
    if issued_at is not None:
        issued_at = _wall_time(issued_at, fault)
    zone = entry.get("timezone")
    if zone is not None:
        if not isinstance(zone, str) or zone not in zones.usable():
            raise fault(f"timezone {zone!r} is not an IANA time zone (e.g. Australia/Melbourne)")
    cycle = entry.get("cycle", entry["id"])
    if not isinstance(cycle, (str, int)) or isinstance(cycle, bool) or str(cycle) == "":
        raise fault("cycle must be a non-empty string")
    priority = entry.get("priority", "id")
    if not isinstance(priority, str) or priority.removeprefix("-") == "":
        raise fault("priority must name a profile variable, optionally with a leading '-'")
    limit = entry.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise fault("limit must be a whole number ≥ 0")
    return Campaign(position, entry["id"], definition, audience, issued_at, zone, str(cycle), priority, limit)


def _rule(audience: object, fault) -> object:
    from pipeline.jsonlogic import check_rule

    if isinstance(audience, str):
        try:
            audience = json.loads(audience)
        except json.JSONDecodeError as error:
            raise fault(f"audience is not valid JSON ({error})") from None
    try:
        check_rule(audience)
    except RuleError as error:
        raise fault(f"audience: {error}") from None
    return audience


def _wall_time(value: object, fault) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise fault(f"issued_at {value!r} is not 'YYYY-MM-DD HH:MM:SS'") from None
    else:
        raise fault(f"issued_at {value!r} is not 'YYYY-MM-DD HH:MM:SS'")
    if moment.tzinfo is not None:
        raise fault("issued_at is a local wall time: give no offset, set timezone instead")
    return moment
