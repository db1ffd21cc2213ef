"""Write the small, realistic sample exports in this folder (about 200 profiles).

Deterministic (seeded): rerunning it reproduces the committed files byte for byte. A few
rows are deliberately broken so that `make run` shows rejects; they are listed at the end.
"""

from __future__ import annotations

import csv
import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).parent
RANDOM = random.Random(20261122)
AS_OF = datetime(2026, 11, 22, 9, 0, tzinfo=timezone(timedelta(hours=11)))
ZONES = ["Australia/Melbourne"] * 5 + ["Australia/Sydney"] * 3 + ["Australia/Perth", "Australia/Brisbane", "Pacific/Auckland"]
TIERS = ["bronze"] * 6 + ["silver"] * 3 + ["gold"]
FIRST = ["Olivia", "Jack", "Charlotte", "Noah", "Amelia", "William", "Isla", "Oliver", "Mia", "Leo", "Ava", "Henry", "Grace", "Lucas", "Chloe"]
LAST = ["Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Nguyen", "Johnson", "Martin", "White", "Anderson", "Walker"]
STORES = ["MEL-001", "MEL-002", "SYD-001", "PER-001", "BNE-001", "ONLINE"]


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def profile_id() -> str:
    return str(uuid.UUID(int=RANDOM.getrandbits(128), version=4))


def write_csv(name: str, header: list[str], rows: list[list], extra_lines: list[str] = ()) -> None:
    with (HERE / name).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        for line in extra_lines:
            handle.write(line + "\n")


def profiles() -> list[dict]:
    people = []
    for n in range(200):
        first, last = RANDOM.choice(FIRST), RANDOM.choice(LAST)
        joined = AS_OF - timedelta(days=RANDOM.randint(1, 6 * 365), minutes=RANDOM.randint(0, 1440))
        kind = RANDOM.choices(["active", "temporary", "deleted"], weights=[92, 5, 3])[0]
        people.append(
            {
                "id": profile_id(),
                "email": f"{first}.{last}{n}@example.com".lower(),
                "first_name": first,
                "last_name": last,
                "gender": RANDOM.choice(["female", "male", "unspecified"]),
                "birth_day": RANDOM.randint(1, 28),
                # A third of the sample has a November birthday, so the campaign has work.
                "birth_month": 11 if n % 3 == 0 else RANDOM.randint(1, 12),
                "birth_year": RANDOM.randint(1950, 2006),
                "joined_at": stamp(joined),
                "profile_type": kind,
                "tier_handle": RANDOM.choice(TIERS),
                "tags": json.dumps(RANDOM.sample(["vip", "staff", "newsletter", "wholesale", "app"], RANDOM.randint(0, 2))),
                "statuses": RANDOM.choice(["", "verified", "verified,email_confirmed"]),
                "timezone": RANDOM.choice(ZONES),
                "attributes": json.dumps({"comms": {"email_promo": RANDOM.random() < 0.7}, "store": RANDOM.choice(STORES)}),
                "region": RANDOM.choice(["VIC", "NSW", "WA", "QLD", "NZ"]),
            }
        )
    return people


DEFINITIONS = [
    # id, handle, name, period, max_redemptions, max_global, published, archived, assignable, claimable, reclaimable,
    # claim start, claim end, claim_condition, end_at, total, remaining, code pos, code online
    [94, "first-spend", "First Spend Discount", 30, 1, "", "true", "false", "true", "false", "false", "", "", "", "", "", "", "FIRSTSPEND", "FIRSTSPEND-WEB"],
    [95, "birthday-gift", "Birthday Gift", 31, 1, "", "true", "false", "true", "false", "true", "", "", "", "", 500, 460, "BDAY", "BDAY-WEB"],
    [96, "10-off-demo", "10%OFFDEMO", 14, 1, 1000, "true", "false", "true", "true", "true",
     "2026-11-01T00:00:00+11:00", "2026-12-31T23:59:59+11:00",
     json.dumps({"and": [{"in": [{"var": "tier_handle"}, ["silver", "gold"]]}, {">=": [{"var": "aggregations.spend_12m"}, 50]}]}),
     "", "", "", "10%OFFDEMO", "10OFFDEMO-WEB"],
    [97, "free-shipping", "Free Shipping", "", "", "", "true", "false", "true", "false", "true", "", "", "", "2027-06-30T23:59:59+10:00", "", "", "", "FREESHIP"],
    [98, "vip-lounge", "VIP Lounge Pass", 7, 2, "", "true", "true", "true", "false", "true", "", "", "", "", "", "", "VIPLOUNGE", ""],
]
DEFINITION_HEADER = [
    "id", "handle", "name", "period", "max_redemptions", "max_global_redemptions", "is_published", "is_archived",
    "is_assignable", "is_claimable", "is_reclaimable", "claim_period_start_at", "claim_period_end_at",
    "claim_condition", "end_at", "total_allocations", "total_allocations_remaining", "redeem_code_pos",
    "redeem_code_online",
]


def main() -> None:
    people = profiles()
    header = list(people[0])
    rows = [[p[h] for h in header] for p in people]
    # Deliberately bad rows: month 13, a city that is not a time zone, a repeated id, a stray quote.
    rows[17][header.index("birth_month")] = 13
    rows[42][header.index("timezone")] = "Melbourne"
    rows.append(list(rows[5]))
    write_csv("profiles.csv", header, rows, extra_lines=['c0ffee00-0000-4000-8000-000000000001,"broken"quote@example.com,Ann,Lee,female,1,1,1990,,active,,,,,,VIC'])
    active = [p for p in people if p["profile_type"] == "active"]

    write_csv("benefit_definitions.csv", DEFINITION_HEADER, DEFINITIONS + [[99, "broken-period", "Broken", -5] + [""] * 15])

    benefits, redemptions, transactions = [], [], []
    benefit_id, redemption_id, item_id = 5001, 9001, 70001
    for person in RANDOM.sample(active, 110):
        definition = RANDOM.choice([94, 94, 95, 97])
        issued = AS_OF - timedelta(days=RANDOM.randint(1, 60), hours=RANDOM.randint(0, 23))
        period = {94: 30, 95: 31, 97: None}[definition]
        expires = issued + timedelta(days=period) if period else None
        code = f"{ {94: 'FS', 95: 'BD', 97: 'SH'}[definition] }-{benefit_id}"
        used = RANDOM.random() < 0.5 and (expires is None or expires > issued + timedelta(days=1))
        remaining = "" if definition == 97 else (0 if used else 1)
        benefits.append([benefit_id, person["id"], definition, stamp(issued), stamp(expires) if expires else "",
                         person["timezone"], f"seed:{benefit_id}", remaining, code])
        if used:
            at = issued + timedelta(hours=RANDOM.randint(2, 20))
            txn = f"POS-{redemption_id}"
            redemptions.append({"id": redemption_id, "profile_id": person["id"], "created_at": stamp(at), "type": "redeem",
                                "total": round(RANDOM.uniform(20, 250), 2), "transaction_id": txn,
                                "items": [{"id": item_id, "type": "benefit", "item_id": benefit_id, "count": 1}]})
            transactions.append([txn, stamp(at + timedelta(seconds=RANDOM.randint(0, 90))), person["id"],
                                 RANDOM.choice(STORES), redemptions[-1]["total"], "completed", "", benefit_id, code])
            redemption_id, item_id = redemption_id + 1, item_id + 1
        benefit_id += 1
    benefits.append([benefit_id, active[0]["id"], 1234, stamp(AS_OF - timedelta(days=3)), "", "Australia/Melbourne", "", 1, ""])

    # Planted reconciliation findings, so the sample shows what a morning report looks like.
    # A sale voided at the till after Omneo recorded the redemption (voided_in_pos).
    transactions[0][5] = "voided"
    # The same benefit redeemed twice in Omneo for one sale, ten minutes apart (duplicate_redemption).
    first = redemptions[1]
    redemptions.append({**first, "id": redemption_id, "created_at": stamp(datetime.fromisoformat(first["created_at"]) + timedelta(minutes=10)),
                        "items": [{"id": item_id, "type": "benefit", "item_id": first["items"][0]["item_id"], "count": 1}]})
    redemption_id, item_id = redemption_id + 1, item_id + 1
    # An Omneo redemption two days ago that no till ever rang up (missing_in_pos).
    third = redemptions[3]
    transactions[:] = [t for t in transactions if t[0] != third["transaction_id"]]
    # A code nobody issued (unknown_redeem_code).
    transactions.append(["POS-U0001", stamp(AS_OF - timedelta(hours=7)), active[5]["id"], "SYD-001", 42.0,
                         "completed", "", "", "NOSUCHCODE"])
    # An unused, valid benefit redeemed at the till but not in Omneo (missing_in_omneo → redemption).
    unused = next(b for b in benefits if b[7] == 1 and b[4] and datetime.fromisoformat(b[4]) > AS_OF)
    transactions.append(["POS-M0001", stamp(AS_OF - timedelta(hours=3)), unused[1], "MEL-002", 65.0,
                         "completed", "", unused[0], ""])

    # Ordinary sales (no benefit), spread over the year, feed the spend aggregations.
    for n in range(160):
        person = RANDOM.choice(active)
        at = AS_OF - timedelta(days=RANDOM.randint(0, 400), minutes=RANDOM.randint(0, 1440))
        status = RANDOM.choices(["completed", "voided", "refunded"], weights=[90, 5, 5])[0]
        transactions.append([f"POS-S{n:04d}", stamp(at), person["id"], RANDOM.choice(STORES),
                             round(RANDOM.uniform(10, 400), 2), status, "", "", ""])
    # A sale that used the claimable code at the till but never reached Omneo.
    transactions.append(["POS-C0001", stamp(AS_OF - timedelta(hours=5)), active[3]["id"], "MEL-001", 89.5,
                         "completed", "", "", "10%OFFDEMO"])
    # A redemption returned in store.
    redemptions.append({"id": redemption_id, "profile_id": redemptions[0]["profile_id"],
                        "created_at": stamp(AS_OF - timedelta(hours=30)), "type": "return", "total": 0,
                        "transaction_id": "POS-R0001", "items": []})
    write_csv("benefits.csv", ["id", "profile_id", "benefit_definition_id", "issued_at", "expires_at", "timezone",
                               "external_id", "redemptions_remaining", "redeem_code_pos"], benefits)
    (HERE / "redemptions.json").write_text(
        json.dumps({"data": redemptions, "meta": {"pagination": {"total": len(redemptions)}}}, indent=1) + "\n",
        encoding="utf-8",
    )
    write_csv("returns.csv", ["redemption_id", "count", "returned_at"],
              [[redemptions[1]["id"], 1, stamp(AS_OF - timedelta(hours=20))], [redemptions[2]["id"], 0, ""]])
    write_csv("transactions.csv", ["external_id", "transacted_at", "profile_id", "location_external_id", "total",
                                   "status", "redemption_id", "benefit_id", "redeem_code"], transactions,
              extra_lines=["POS-BROKEN,2026-11-20 10:00:00,,MEL-001,12.50,completed,,,,unexpected-extra-field"])


if __name__ == "__main__":
    main()
