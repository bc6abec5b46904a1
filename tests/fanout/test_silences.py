"""The silence API (/v1/silences) over functions-framework: create, list by state, expire, and
4xx answers that name what was wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fanout.conftest import Fanout

pytestmark = pytest.mark.emulators


def body(**overrides):  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    base = {
        "matchers": [
            {"name": "service", "value": "persona-router"},
            {"name": "rule", "value": "p95-.*", "isRegex": True},
        ],
        "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "ada@example.com",
        "comment": "deploying a fix",
    }
    base.update(overrides)
    return base


def test_create_list_get_and_expire(fanout: Fanout) -> None:
    client = fanout.http()
    created = client.post("/v1/silences", json=body())
    assert created.status_code == 201
    silence = created.get_json()
    assert created.headers["Location"] == f"/v1/silences/{silence['id']}"
    assert silence["status"] == {"state": "active"}
    assert silence["matchers"][1] == {"name": "rule", "value": "p95-.*", "isRegex": True, "isEqual": True}
    later = datetime.now(UTC) + timedelta(hours=2)
    pending = client.post(
        "/v1/silences", json=body(startsAt=later.isoformat(), endsAt=(later + timedelta(hours=1)).isoformat())
    ).get_json()
    assert pending["status"]["state"] == "pending"

    assert {s["id"] for s in client.get("/v1/silences").get_json()} == {silence["id"], pending["id"]}
    assert [s["id"] for s in client.get("/v1/silences?state=active").get_json()] == [silence["id"]]
    assert [s["id"] for s in client.get("/v1/silences?state=pending").get_json()] == [pending["id"]]
    assert client.get(f"/v1/silences/{silence['id']}").get_json()["comment"] == "deploying a fix"

    expired = client.delete(f"/v1/silences/{silence['id']}")
    assert expired.status_code == 200
    assert expired.get_json()["status"]["state"] == "expired"
    # A pending silence expired never starts.
    never = client.delete(f"/v1/silences/{pending['id']}").get_json()
    assert never["status"]["state"] == "expired"
    assert never["startsAt"] == never["endsAt"]
    assert {s["id"] for s in client.get("/v1/silences?state=expired").get_json()} == {
        silence["id"],
        pending["id"],
    }
    assert client.get("/v1/silences?state=active").get_json() == []
    # Expiring again is harmless.
    assert client.delete(f"/v1/silences/{silence['id']}").status_code == 200


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"matchers": []}, "matchers"),
        ({"matchers": [{"name": "service", "value": ".*", "isRegex": True}]}, "body"),
        ({"matchers": [{"name": "bad-name", "value": "x"}]}, "matchers.0.name"),
        ({"matchers": [{"name": "rule", "value": "(", "isRegex": True}]}, "matchers.0"),
        ({"endsAt": "2020-01-01T00:00:00Z"}, "body"),
        ({"endsAt": "tomorrow"}, "endsAt"),
        ({"endsAt": "2030-01-01T00:00:00"}, "endsAt"),  # no time zone
        ({"createdBy": ""}, "createdBy"),
        ({"comment": None}, "comment"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_silences_are_refused_with_the_field(fanout: Fanout, overrides, field) -> None:  # type: ignore[no-untyped-def]
    response = fanout.http().post("/v1/silences", json=body(**overrides))
    assert response.status_code == 422, response.get_data(as_text=True)
    problem = response.get_json()
    assert response.mimetype == "application/problem+json"
    assert any(e["field"] == field for e in problem["errors"]), problem["errors"]
    assert fanout.http().get("/v1/silences").get_json() == []  # nothing stored


def test_other_bad_requests(fanout: Fanout) -> None:
    client = fanout.http()
    assert client.post("/v1/silences", data="{not json", content_type="application/json").status_code == 400
    assert client.post("/v1/silences", data="x", content_type="text/plain").status_code == 415
    bad_state = client.get("/v1/silences?state=sleeping")
    assert bad_state.status_code == 422
    assert bad_state.get_json()["allowed"] == ["active", "pending", "expired"]
    assert client.delete("/v1/silences/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client.get("/v1/silences/..%2F..%2Fetc").status_code == 404
    assert client.put("/v1/silences").status_code == 405
    assert client.post("/v1/digest", json={"date": "yesterday"}).status_code == 422
