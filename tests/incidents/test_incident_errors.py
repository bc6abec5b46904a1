"""What a wrong request to the incident routes gets, never a 500: an unknown incident 404, a bad
body 422 naming the field, a caller without the operator role 403 with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared import roles
from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators
VIEWER = {"X-Ion-Dev-Principal": "viewer@example.com"}
OPERATOR = {"X-Ion-Dev-Principal": "oncall@example.com"}


@pytest.fixture
def with_roles(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ION_ROLE_VIEWERS", "user:viewer@example.com")
    monkeypatch.setenv("ION_ROLE_OPERATORS", "user:oncall@example.com")
    monkeypatch.setenv("ION_ROLE_ADMINS", "user:admin@example.com")
    roles.reset()
    yield
    roles.reset()


def _opened(fanout: Fanout) -> dict[str, Any]:
    clock = fanout.freeze()
    assert fanout.push(make_transition(severity="critical", at=clock.now())) == 200
    [incident] = fanout.http().get("/v1/incidents", headers=OPERATOR).get_json()
    return incident


@pytest.mark.parametrize("action", ["ack", "resolve", "notes"])
def test_a_viewer_may_read_but_not_change_an_incident(
    incidents: Fanout, with_roles: None, action: str
) -> None:
    incident = _opened(incidents)
    assert incidents.http().get(f"/v1/incidents/{incident['id']}", headers=VIEWER).status_code == 200
    body = {"text": "looking"} if action == "notes" else {}
    refused = incidents.http().post(f"/v1/incidents/{incident['id']}/{action}", json=body, headers=VIEWER)
    assert refused.status_code == 403, refused.get_data(as_text=True)
    after = incidents.http().get(f"/v1/incidents/{incident['id']}", headers=VIEWER).get_json()
    assert after["state"] == "triggered"
    assert after["timeline"] == incident["timeline"]
    allowed = incidents.http().post(f"/v1/incidents/{incident['id']}/{action}", json=body, headers=OPERATOR)
    assert allowed.status_code == 200, allowed.get_data(as_text=True)


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("ack", {"note": ""}, "note"),
        ("ack", {"note": "x" * 2001}, "note"),
        ("resolve", {"note": 7}, "note"),
        ("resolve", {"by": "mallory"}, "by"),
        ("notes", {}, "text"),
        ("notes", {"text": ["a"]}, "text"),
    ],
)
def test_a_bad_body_is_422_naming_the_field_and_changes_nothing(
    incidents: Fanout, action: str, body: dict[str, Any], field: str
) -> None:
    incident = _opened(incidents)
    answer = incidents.http().post(f"/v1/incidents/{incident['id']}/{action}", json=body)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert field in answer.get_json()["detail"]
    assert incidents.http().get(f"/v1/incidents/{incident['id']}").get_json()["state"] == "triggered"


@pytest.mark.parametrize(
    "data",
    [b"{not json", b"[]", b'"ack"', b"\xff\xfe"],
)
def test_a_body_that_is_no_json_object_is_4xx_not_500(incidents: Fanout, data: bytes) -> None:
    incident = _opened(incidents)
    for action in ("ack", "resolve", "notes"):
        answer = incidents.http().post(
            f"/v1/incidents/{incident['id']}/{action}", data=data, content_type="application/json"
        )
        assert 400 <= answer.status_code < 500, (action, answer.status_code, answer.get_data(as_text=True))


def test_unknown_incidents_are_404_on_every_route(incidents: Fanout) -> None:
    missing = "critical-" + "0" * 24 + "-i1"
    on_demand = "medium-" + "0" * 24 + "-d0123abcd"
    for incident_id in (missing, on_demand):
        assert incidents.http().get(f"/v1/incidents/{incident_id}").status_code == 404
        assert incidents.http().get(f"/v1/incidents/{incident_id}/review").status_code == 404
        for action, body in (("ack", {}), ("resolve", {"note": "x"}), ("notes", {"text": "x"})):
            answer = incidents.http().post(f"/v1/incidents/{incident_id}/{action}", json=body)
            assert answer.status_code == 404, (action, answer.get_data(as_text=True))
            assert incident_id in answer.get_json()["detail"]
