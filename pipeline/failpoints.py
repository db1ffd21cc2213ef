"""Named instants where a test may kill the process, to prove that a kill there is safe.

`OMNEO_BULK_TEST_KILL_AT=<name>` makes the process SIGKILL itself the first time it
reaches the point of that name, `<name>@<n>` the n-th time (a `run` commits four times),
exactly as a scheduler's `kill -9` would at that instant. Unset (always, outside the crash
tests), `reach` costs one dictionary look-up.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

VARIABLE = "OMNEO_BULK_TEST_KILL_AT"

# Every point, in the order a `run` passes them; tests/test_crash_safety.py kills at each.
POINTS = (
    "validated_staged",       # validate: every dataset staged, nothing committed
    "commit_journaled",       # any commit: its journal written, no file moved yet
    "commit_moving",          # any commit: after the first file moved into place
    "commit_manifest_written",  # any commit: manifest.json rewritten, journal not yet removed
    "payloads_staged",        # issue: plan and payloads staged, state untouched
    "state_pending",          # issue: tonight's state written as pending, folder not committed
    "issue_committed",        # issue: payloads listed in the manifest, state still pending
    "state_emitted",          # issue: state promoted to emitted
    "reconcile_staged",       # reconcile: every output staged, nothing committed
    "report_staged",          # report: warehouse and reports staged
)
# And the points of a push (tests/test_push.py kills at each).
PUSH_POINTS = (
    "push_in_flight",         # a call marked in_flight, its request not sent yet
    "push_answered",          # Omneo answered a call, the journal not told yet
    "push_resolved",          # a lookup settled a call of unknown outcome
)


_passed: Counter[str] = Counter()


def reach(name: str) -> None:
    """Die here, at once and without cleaning up, when the test asked for this point."""
    wanted = os.environ.get(VARIABLE)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _passed[name] += 1
    if _passed[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
