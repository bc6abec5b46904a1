"""Customers and events a newer version of the health capability stored, read by an older one
during a deploy, on the emulator: the daily run scores every customer and the API lists them;
what it cannot read of an event is left out and logged, never the whole run failed
(``shared/compat.py``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from functions.health import customer_events, registry
from functions.health.config import load_config
from functions.health.customer_events import EVENT_RETENTION, EVENTS_COLLECTION, event_doc_id
from functions.health.models import CustomerIn, PaymentEvent
from functions.health.run import run_health
from functions.health.settings import DEFAULT_CONFIG_FILE
from functions.health.store import FirestoreHealthStore
from functions.health.usage import MemoryUsage
from shared import clock

pytestmark = pytest.mark.emulators
AS_OF = date(2026, 11, 30)
CREATED = datetime(2025, 1, 1, tzinfo=UTC)
AT = datetime(2026, 11, 20, tzinfo=UTC)


def as_a_newer_version_stored_it(fs) -> None:  # type: ignore[no-untyped-def]
    """A contact field, a customer field, a payment event's field and an event type that an older
    version does not know."""
    ref = fs.collection("customers").document("acme")
    stored = ref.get().to_dict()
    ref.update({"contact": {**stored["contact"], "phone": "+1 555 0100"}, "tier": "gold"})
    events = fs.collection(EVENTS_COLLECTION)
    paid = events.document(event_doc_id("acme", "p1"))
    paid.update({"tax_cents": 1200})
    events.document(event_doc_id("acme", "c1")).create(
        {
            "type": "csat",
            "event_id": "c1",
            "at": AT,
            "score": 4,
            "customer_id": "acme",
            "expire_at": AT + EVENT_RETENTION,
        }
    )


def test_an_older_instance_scores_and_lists_what_a_newer_one_stored(fs, health_client) -> None:  # type: ignore[no-untyped-def]
    previous = clock.set_clock(clock.FrozenClock(CREATED))
    try:
        for customer_id in ("acme", "globex"):
            registry.create_customer(
                CustomerIn(id=customer_id, name=customer_id.title(), contact={"email": "csm@example.com"})  # type: ignore[arg-type]
            )
    finally:
        clock.set_clock(previous)
    customer_events.import_events(
        "acme", [PaymentEvent(type="payment", event_id="p1", at=AT, invoice_id="I1", status="overdue")]
    )
    as_a_newer_version_stored_it(fs)

    summary = run_health(
        AS_OF,
        cfg=load_config(DEFAULT_CONFIG_FILE),
        usage_source=MemoryUsage(usage={}),
        store=FirestoreHealthStore(),
        publish=None,
    )
    assert summary.customers == 2
    scored = fs.collection("customers").document("acme").get().to_dict()["health"]
    assert "payment" in scored["components"]  # the payment event counted, its new field ignored

    listed = health_client.get("/v1/customers")
    assert listed.status_code == 200, listed.get_json()
    one = health_client.get("/v1/customers/acme")
    assert one.status_code == 200, one.get_json()
    assert one.get_json()["contact"]["email"] == "csm@example.com"
    patched = health_client.patch("/v1/customers/acme", json={"plan": "enterprise"})
    assert patched.status_code == 200, patched.get_json()
    kept = fs.collection("customers").document("acme").get().to_dict()
    assert kept["tier"] == "gold"
    assert kept["contact"]["phone"] == "+1 555 0100"
    # The public edge stays strict: a request naming a field this version does not know is a 422.
    refused = health_client.patch("/v1/customers/acme", json={"contact": {"email": "a@b.co", "phone": "1"}})
    assert refused.status_code == 422
    assert "phone" in refused.get_data(as_text=True)


def test_an_event_left_out_is_logged_without_its_contents(fs, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    # A newer version's event (a type this one does not know) may carry a respondent or a comment:
    # the warning names the document and what did not validate, never the values (logs outlive
    # the customer's erasure).
    fs.collection(EVENTS_COLLECTION).document(event_doc_id("acme", "s1")).create(
        {
            "type": "survey",
            "event_id": "s1",
            "at": AT,
            "respondent": "pat.jones@acme.example",
            "comment": "Pat finds the dashboards slow",
            "customer_id": "acme",
            "expire_at": AT + EVENT_RETENTION,
        }
    )
    assert customer_events.events_since(datetime(2026, 11, 1, tzinfo=UTC)) == {}
    logged = [line for line in capsys.readouterr().out.splitlines() if "cannot read" in line]
    assert logged
    for line in logged:
        assert "pat.jones" not in line, line
        assert "dashboards slow" not in line, line
        assert event_doc_id("acme", "s1") in line
