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


def test_a_silence_with_a_matcher_field_this_version_does_not_know_is_read_and_mutes_nothing(  # type: ignore[no-untyped-def]
    fanout: Fanout, fs
) -> None:
    from functions.fanout.records import SILENCES

    clock = fanout.freeze()
    created = fanout.http().post(
        "/v1/silences",
        json={
            "matchers": [{"name": "service", "value": "persona-router"}],
            "endsAt": (clock.now() + timedelta(hours=1)).isoformat(),
            "createdBy": "ada@example.com",
            "comment": "maintenance",
        },
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    silence_id = created.get_json()["id"]
    ref = fs.collection(SILENCES).document(silence_id)
    stored = ref.get().to_dict()
    # A newer version's matcher option that may narrow what it matches: not this version's to guess.
    ref.update({"matchers": [{**m, "isCaseSensitive": False} for m in stored["matchers"]]})

    alert = make_transition(rule="error-rate", severity="high", at=clock.now())
    assert fanout.push(alert) == 200
    clock.advance(timedelta(minutes=1))
    fanout.tick()
    texts = [m.blocks[0]["text"]["text"] for m in fanout.slack.messages if m.blocks]
    assert any("error-rate" in t for t in texts), texts  # paged, not muted by a silence it cannot read

    listed = fanout.http().get("/v1/silences")
    assert listed.status_code == 200, listed.get_data(as_text=True)
    assert [s["id"] for s in listed.get_json()] == [silence_id]
    expired = fanout.http().delete(f"/v1/silences/{silence_id}")
    assert expired.status_code == 200, expired.get_data(as_text=True)
    after = ref.get().to_dict()
    assert after["matchers"][0]["isCaseSensitive"] is False  # kept for the version that reads it
    assert after["endsAt"] <= clock.now()
