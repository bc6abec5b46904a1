"""Fan-out during a rolling deploy, on the emulators: an older instance reads what a newer one
stored (a transition with a field this version does not know) and goes on paging; the newer
fields are not its to judge (``shared/compat.py``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.fanout.models import doc_id
from functions.fanout.records import ALERTS, TRANSITIONS
from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators

# What a newer alert evaluator adds to its transitions, and a newer fan-out stores with them.
NEWER_FIELDS = {"generator_url": "https://alerts.example/graph?g0=1", "silence_url": "https://x/s"}


def as_a_newer_version_stored_it(fs, transition_id: str, fingerprint: str) -> None:  # type: ignore[no-untyped-def]
    """Rewrite the stored transition and alert record as a newer fan-out instance writes them."""
    tref = fs.collection(TRANSITIONS).document(doc_id(transition_id))
    stored = tref.get().to_dict()
    tref.update({"transition": {**stored["transition"], **NEWER_FIELDS}})
    aref = fs.collection(ALERTS).document(doc_id(fingerprint))
    record = aref.get().to_dict()
    aref.update({"latest": {**record["latest"], **NEWER_FIELDS}})


def test_an_older_instance_reads_transitions_a_newer_one_stored_and_still_pages(fanout: Fanout, fs) -> None:  # type: ignore[no-untyped-def]
    clock = fanout.freeze()
    firing = make_transition(rule="error-rate", severity="high", at=clock.now())
    assert fanout.push(firing) == 200
    as_a_newer_version_stored_it(fs, firing.transition_id, firing.fingerprint)

    # The flush tick, the resolve of the same alert and another alert's page all read those records.
    clock.advance(timedelta(minutes=1))
    fanout.tick()
    other = make_transition(rule="p95-latency", severity="critical", region="europe-west1", at=clock.now())
    assert fanout.push(other) == 200
    resolved = make_transition(rule="error-rate", severity="high", state="resolved", at=clock.now())
    assert fanout.push(resolved) == 200
    clock.advance(timedelta(minutes=6))
    fanout.tick()

    texts = [m.blocks[0]["text"]["text"] for m in fanout.slack.messages if m.blocks]
    assert any("RESOLVED" in t and "error-rate" in t for t in texts), texts
    assert any("p95-latency" in t for t in texts), texts
    assert len(fanout.pagerduty.events) >= 1  # the critical one paged

    log = fanout.http().get(
        "/v1/transitions",
        query_string={
            "since": (clock.now() - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "until": (clock.now() + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        },
    )
    assert log.status_code == 200, log.get_data(as_text=True)
    assert firing.transition_id in {t["transition_id"] for t in log.get_json()["transitions"]}
