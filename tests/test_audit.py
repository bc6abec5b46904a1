"""Audit entries: who changed ION's state through its APIs (customers, keys, silences, re-drives),
written with `"audit": true` so Terraform's audit sink keeps them 90 days (terraform/logging.tf),
never carrying a secret."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.audit import MARKER, actor, audit
from shared.identity import DEV_HEADER
from shared.logging import get_logger
from shared.topology import ROOT
from tests.test_topology_and_terraform import TERRAFORM, load_hcl

# Locally the caller is who the dev stack's header names (tests/security/test_roles.py verifies
# signed tokens and IAP JWTs, and refuses this header when deployed).
IAP = {DEV_HEADER: "ada@example.com"}


def _audit_lines(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get(MARKER) is True:
            entries.append(entry)
    return entries


def test_the_actor_is_the_verified_caller_never_an_unsigned_header() -> None:
    assert actor(IAP) == "ada@example.com"
    assert actor({}) == "anonymous"
    assert actor({"X-Goog-Authenticated-User-Email": "accounts.google.com:ada@example.com"}) == "anonymous"


def test_an_audit_entry_is_what_the_audit_sink_selects(capsys: pytest.CaptureFixture[str]) -> None:
    audit(get_logger("test-audit"), "silence.create", IAP, "silence created", silence_id="s1")
    [entry] = _audit_lines(capsys.readouterr().out)
    assert entry["severity"] == "INFO"
    assert (entry["audit_action"], entry["actor"], entry["silence_id"]) == (
        "silence.create",
        "ada@example.com",
        "s1",
    )
    # Terraform routes exactly that marker to the audit bucket, and out of operations.
    locals_ = {k: v for block in load_hcl(TERRAFORM / "logging.tf")["locals"] for k, v in block.items()}
    assert f"jsonPayload.{MARKER}=true" in locals_["audit_logs"]


@pytest.fixture
def app_client(fs):  # type: ignore[no-untyped-def]
    import functions_framework

    def client(target: str) -> Any:
        return functions_framework.create_app(target, str(ROOT / "main.py"), "http").test_client()

    return client


@pytest.mark.emulators
def test_customers_and_keys_are_audited_with_the_actor_and_never_the_key(app_client, capsys) -> None:  # type: ignore[no-untyped-def]
    from functions.health.settings import get_health_settings

    get_health_settings.cache_clear()
    health = app_client("score_health")
    created = health.post("/v1/customers", json={"id": "acme", "name": "Acme"}, headers=IAP)
    assert created.status_code == 201
    issued = health.post("/v1/customers/acme/keys", headers=IAP).get_json()
    revoked = health.delete(f"/v1/customers/acme/keys/{issued['key_id']}")
    assert revoked.status_code == 200
    out = capsys.readouterr().out
    entries = _audit_lines(out)
    assert [(e["audit_action"], e["actor"]) for e in entries] == [
        ("customer.create", "ada@example.com"),
        ("customer_key.issue", "ada@example.com"),
        ("customer_key.revoke", "anonymous"),
    ]
    assert entries[1]["key_id"] == issued["key_id"]
    assert issued["api_key"] not in out
    get_health_settings.cache_clear()


@pytest.mark.emulators
def test_silences_are_audited(app_client, capsys) -> None:  # type: ignore[no-untyped-def]
    alerts = app_client("manage_alerts")
    from datetime import UTC, datetime, timedelta

    body = {
        "matchers": [{"name": "rule", "value": "latency-p95-high"}],
        "endsAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "createdBy": "ada@example.com",
        "comment": "deploying a fix",
    }
    created = alerts.post("/v1/silences", json=body, headers=IAP)
    assert created.status_code == 201, created.get_json()
    assert alerts.delete(f"/v1/silences/{created.get_json()['id']}", headers=IAP).status_code == 200
    entries = _audit_lines(capsys.readouterr().out)
    assert [(e["audit_action"], e["actor"]) for e in entries] == [
        ("silence.create", "ada@example.com"),
        ("silence.expire", "ada@example.com"),
    ]
