"""A customer's lifecycle over the HTTP API on the emulators: PATCH (plan, segment, contact, CSM,
dates), deactivation (not scored, no action, keys revoked) and reactivation, an imported
created_at (no onboarding check-in for an old customer), each change audited."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from functions.health.config import load_config
from functions.health.run import run_health
from functions.health.settings import DEFAULT_CONFIG_FILE
from functions.health.signals import Usage
from functions.health.store import FirestoreHealthStore
from functions.health.usage import MemoryUsage
from shared.audit import MARKER
from shared.customer_keys import KEYS_COLLECTION
from shared.identity import DEV_HEADER
from shared.notices import publish_notice

pytestmark = pytest.mark.emulators

CFG = load_config(DEFAULT_CONFIG_FILE)
OLD = "2025-01-01T00:00:00Z"
IAP = {DEV_HEADER: "lead@example.com"}  # the caller, as the dev stack names it


def _audit(out: str) -> list[dict[str, Any]]:
    found = []
    for line in out.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get(MARKER) is True:
            found.append(entry)
    return found


def _idle() -> MemoryUsage:
    return MemoryUsage(usage={})


def _today() -> date:
    return datetime.now(UTC).date()


def test_patch_changes_what_is_sent_and_audits_who_changed_what(health_client, capsys) -> None:  # type: ignore[no-untyped-def]
    created = health_client.post(
        "/v1/customers",
        json={"id": "acme", "name": "Acme", "plan": "pro", "contact": {"email": "ann@csm.example"}},
    )
    assert created.status_code == 201
    capsys.readouterr()
    patched = health_client.patch(
        "/v1/customers/acme",
        json={
            "plan": "enterprise",
            "segment": None,
            "contact": {"email": "bob@csm.example", "slack": "U0BOB"},
        },
        headers=IAP,
    )
    assert patched.status_code == 200, patched.get_json()
    body = patched.get_json()
    assert (body["plan"], body["contact"]["email"], body["contact"]["slack"]) == (
        "enterprise",
        "bob@csm.example",
        "U0BOB",
    )
    assert body["name"] == "Acme"  # left out: kept
    assert body["created_at"] == created.get_json()["created_at"]
    assert health_client.get("/v1/customers/acme").get_json()["contact"]["email"] == "bob@csm.example"
    [entry] = [e for e in _audit(capsys.readouterr().out) if e["audit_action"] == "customer.update"]
    assert entry["actor"] == "lead@example.com"
    assert entry["customer_id"] == "acme"
    assert entry["changed"] == ["contact", "plan"]  # segment was already unset
    assert entry["values"] == {"plan": {"from": "pro", "to": "enterprise"}}
    # The same PATCH again changes nothing and audits nothing.
    again = health_client.patch("/v1/customers/acme", json={"plan": "enterprise"})
    assert again.status_code == 200
    assert not [e for e in _audit(capsys.readouterr().out) if e["audit_action"] == "customer.update"]
    # A create with the old details is now a conflict (the stored customer changed).
    assert (
        health_client.post("/v1/customers", json={"id": "acme", "name": "Acme", "plan": "pro"}).status_code
        == 409
    )


def test_patch_refuses_unknown_fields_and_bad_values_saying_what_is_allowed(health_client) -> None:  # type: ignore[no-untyped-def]
    health_client.post("/v1/customers", json={"id": "acme", "name": "Acme"})
    unknown = health_client.patch("/v1/customers/acme", json={"tier": "gold"})
    assert unknown.status_code == 422
    detail = unknown.get_json()["detail"]
    assert "tier" in detail
    assert "plan" in detail
    assert "contact" in detail
    for bad in (
        {"contact": {"email": "not-an-address"}},
        {"plan": "x" * 51},
        {"name": None},
        {"created_at": "2025-01-01T00:00:00"},  # no time zone
        {"created_at": "2999-01-01T00:00:00Z"},
        {"status": "inactive"},
        {"id": "other"},
        {},
    ):
        answer = health_client.patch("/v1/customers/acme", json=bad)
        assert answer.status_code == 422, (bad, answer.get_json())
        assert answer.get_json()["detail"]
    assert health_client.patch("/v1/customers/nobody", json={"plan": "pro"}).status_code == 404
    assert health_client.get("/v1/customers/acme").get_json()["plan"] is None


def test_deactivation_stops_scoring_and_actions_and_revokes_keys_until_reactivated(  # type: ignore[no-untyped-def]
    health_client, fs, alerts_inbox, capsys
) -> None:
    health_client.post(
        "/v1/customers",
        json={"id": "churned", "name": "Churned", "contact": "ann@csm.example", "created_at": OLD},
    )
    keys = [health_client.post("/v1/customers/churned/keys").get_json()["key_id"] for _ in range(2)]
    capsys.readouterr()
    off = health_client.post("/v1/customers/churned/deactivate", headers=IAP)
    assert off.status_code == 200, off.get_json()
    assert off.get_json()["changed"] is True
    assert sorted(off.get_json()["keys_revoked"]) == sorted(keys)
    assert off.get_json()["customer"]["status"] == "inactive"
    for key_id in keys:
        assert fs.collection(KEYS_COLLECTION).document(key_id).get().to_dict()["revoked_at"] is not None
    [entry] = [e for e in _audit(capsys.readouterr().out) if e["audit_action"] == "customer.deactivate"]
    assert entry["actor"] == "lead@example.com"
    assert sorted(entry["keys_revoked"]) == sorted(keys)
    repeat = health_client.post("/v1/customers/churned/deactivate")
    assert repeat.get_json()["changed"] is False
    assert repeat.get_json()["keys_revoked"] == []
    refused = health_client.post("/v1/customers/churned/keys")
    assert refused.status_code == 409
    assert "reactivate" in refused.get_json()["detail"]

    # The health list is of active customers unless asked for the others (a change: it listed
    # deactivated customers among the rest).
    assert health_client.get("/v1/health/customers").get_json()["customers"] == []
    listed = health_client.get("/v1/health/customers?status=inactive").get_json()["customers"]
    assert [(c["id"], c["status"]) for c in listed] == [("churned", "inactive")]
    # Idle for months: churn risk and low engagement, but deactivated, so neither scored nor nagged.
    summary = run_health(
        _today(), cfg=CFG, usage_source=_idle(), store=FirestoreHealthStore(), publish=publish_notice
    )
    assert summary.customers == 0
    assert summary.actions_fired == {}
    assert alerts_inbox() == []
    assert (fs.collection("customers").document("churned").get().to_dict().get("health") or {}) == {}

    on = health_client.post("/v1/customers/churned/reactivate", headers=IAP)
    assert on.status_code == 200
    assert on.get_json()["customer"]["status"] == "active"
    # The repeated deactivation changed nothing; the route's own audit entry names the call.
    audited = [e["audit_action"] for e in _audit(capsys.readouterr().out)]
    assert [a for a in audited if a.startswith("customer.")] == ["customer.reactivate"]
    summary = run_health(
        _today(), cfg=CFG, usage_source=_idle(), store=FirestoreHealthStore(), publish=publish_notice
    )
    assert summary.customers == 1
    assert summary.actions_fired.get("retention_campaign") == 1
    assert health_client.post("/v1/customers/churned/keys").status_code == 201
    assert health_client.post("/v1/customers/nobody/deactivate").status_code == 404


def test_an_imported_created_at_is_kept_so_an_old_customer_gets_no_onboarding_checkin(  # type: ignore[no-untyped-def]
    health_client, alerts_inbox
) -> None:
    busy = Usage(
        daily={_today() - timedelta(days=i): 100 for i in range(1, 57)},
        features={"route_key": 10, "route_message": 10, "recommend": 3, "bulk": 1, "feedback": 2},
        outcomes={"ok": 1000},
    )
    imported = health_client.post(
        "/v1/customers",
        json={
            "id": "veteran",
            "name": "Veteran",
            "created_at": OLD,
            "first_value_at": "2025-01-09T00:00:00Z",
        },
    )
    assert imported.status_code == 201
    assert imported.get_json()["created_at"].startswith("2025-01-01")
    assert imported.get_json()["first_value_at"].startswith("2025-01-09")
    # The same create again (with or without the dates) is the same customer.
    assert health_client.post("/v1/customers", json={"id": "veteran", "name": "Veteran"}).status_code == 200
    clash = health_client.post(
        "/v1/customers", json={"id": "veteran", "name": "Veteran", "created_at": "2025-02-01T00:00:00Z"}
    )
    assert clash.status_code == 409
    health_client.post("/v1/customers", json={"id": "newbie", "name": "Newbie"})
    today = _today() + timedelta(days=1)
    source = MemoryUsage(usage={"veteran": busy, "newbie": busy})
    run_health(today, cfg=CFG, usage_source=source, store=FirestoreHealthStore(), publish=publish_notice)
    fired = {(n["labels"]["customer"], n["labels"]["action"]) for n in alerts_inbox()}
    assert ("newbie", "onboarding_checkin") in fired
    assert not {action for customer, action in fired if customer == "veteran"}


def test_events_repeating_an_id_with_other_content_are_refused_whole(health_client, fs) -> None:  # type: ignore[no-untyped-def]
    health_client.post("/v1/customers", json={"id": "acme", "name": "Acme"})
    event = {"type": "nps", "event_id": "n1", "at": "2026-11-01T00:00:00Z", "score": 9}
    answer = health_client.post("/v1/customers/acme/events", json={"events": [event, {**event, "score": 2}]})
    assert answer.status_code == 422
    assert "n1" in answer.get_json()["detail"]
    assert fs.collection("customer_events").count().get()[0][0].value == 0
    same = health_client.post("/v1/customers/acme/events", json={"events": [event, event]})
    assert same.status_code == 201


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        # Year 1 at +01:00 is year 0 in UTC, which Firestore cannot keep.
        (
            "/v1/customers",
            {"id": "old", "name": "Old", "created_at": "0001-01-01T00:30:00+01:00"},
            "created_at",
        ),
        ("/v1/customers/acme", {"first_value_at": "0001-01-01T00:30:00+01:00"}, "first_value_at"),
        # An event's expiry is its date plus the retention: past the year 9999.
        (
            "/v1/customers/acme/events",
            {"events": [{"type": "nps", "event_id": "n1", "at": "9999-12-31T23:59:59Z", "score": 9}]},
            "events.0.nps.at",
        ),
        (
            "/v1/customers/acme/events",
            {"events": [{"type": "nps", "event_id": "n1", "at": "0001-01-01T00:30:00+01:00", "score": 9}]},
            "events.0.nps.at",
        ),
    ],
)
def test_a_date_firestore_cannot_keep_or_an_event_yet_to_happen_is_422_naming_it(  # type: ignore[no-untyped-def]
    health_client, fs, path: str, body: dict[str, Any], field: str
) -> None:
    assert health_client.post("/v1/customers", json={"id": "acme", "name": "Acme"}).status_code == 201
    send = health_client.patch if path == "/v1/customers/acme" else health_client.post
    answer = send(path, json=body)
    assert answer.status_code == 422, answer.get_json()
    assert field in [error["field"] for error in answer.get_json()["errors"]]
    assert fs.collection("customer_events").count().get()[0][0].value == 0
    assert health_client.get("/v1/customers/acme").get_json()["first_value_at"] is None


def test_an_event_stored_with_a_later_date_than_today_still_scores(health_client, fs, alerts_inbox) -> None:  # type: ignore[no-untyped-def]
    """Events are checked against today's clock when sent, not when read back for a run."""
    from functions.health.customer_events import events_since, import_events
    from functions.health.models import NpsEvent
    from shared import clock

    later = datetime.now(UTC) + timedelta(days=30)
    previous = clock.set_clock(clock.FrozenClock(later))
    try:
        event = NpsEvent(type="nps", event_id="n1", at=later - timedelta(hours=1), score=9)
    finally:
        clock.set_clock(previous)
    health_client.post("/v1/customers", json={"id": "acme", "name": "Acme"})
    assert import_events("acme", [event]) == [("n1", "created")]
    assert events_since(later - timedelta(days=1)) == {"acme": [event]}
    assert import_events("acme", [event]) == [("n1", "unchanged")]


def test_a_key_issued_while_the_customer_is_deactivated_is_revoked_not_handed_out(  # type: ignore[no-untyped-def]
    health_client, fs, monkeypatch
) -> None:
    """The deactivation lands between the issue's status check and its key's creation: its sweep
    of the keys ran before the key existed, so the key stayed valid for a deactivated customer."""
    from functions.health import registry

    health_client.post("/v1/customers", json={"id": "acme", "name": "Acme"})
    minted = registry.new_key

    def deactivated_meanwhile(secret: bytes) -> tuple[str, str]:
        monkeypatch.setattr(registry, "new_key", minted)
        assert health_client.post("/v1/customers/acme/deactivate").get_json()["keys_revoked"] == []
        return minted(secret)

    monkeypatch.setattr(registry, "new_key", deactivated_meanwhile)
    answer = health_client.post("/v1/customers/acme/keys")
    assert answer.status_code == 409, answer.get_json()
    assert "api_key" not in answer.get_json()
    [key] = fs.collection(KEYS_COLLECTION).stream()
    assert key.to_dict()["revoked_at"] is not None


def test_a_deactivated_customer_never_scored_is_not_sent_to_a_run_that_skips_it(health_client, fs) -> None:  # type: ignore[no-untyped-def]
    health_client.post("/v1/customers", json={"id": "acme", "name": "Acme"})
    assert "POST /v1/health/run" in health_client.get("/v1/health/customers/acme").get_json()["detail"]
    health_client.post("/v1/customers/acme/deactivate")
    answer = health_client.get("/v1/health/customers/acme")
    assert answer.status_code == 404
    assert "deactivated" in answer.get_json()["detail"]
    assert "/v1/customers/acme/reactivate" in answer.get_json()["detail"]
