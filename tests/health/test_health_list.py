"""The health list a success manager works from (issue #26 item 3): GET /v1/health/customers
filtered by category, plan, segment, success manager and score range, sorted by score, paged."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.emulators


def seed(fs: Any) -> None:
    """Customers as the registry stores them (every field of the model: `status`, `health` null
    until scored) with their latest health as the daily run stores it (customers/{id}.health)."""
    from datetime import UTC, datetime

    from functions.health.models import Customer

    rows = [
        ("acme", "pro", "smb", "dana@ion.test", 82.0, "healthy"),
        ("globex", "pro", "enterprise", "sam@ion.test", 55.5, "at_risk"),
        ("initech", "free", "smb", "dana@ion.test", 31.2, "churn_risk"),
        ("umbrella", "pro", "smb", "Dana@ion.test", 64.0, "at_risk"),
        ("unscored", "pro", "smb", "dana@ion.test", None, None),
    ]
    for cid, plan, segment, email, score, category in rows:
        doc: dict[str, Any] = Customer(
            id=cid,
            name=cid.title(),
            plan=plan,
            segment=segment,
            contact={"name": email.split("@")[0].title(), "email": email},
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        ).model_dump()
        if score is not None:
            doc["health"] = {"score": score, "category": category, "as_of": "2026-12-06"}
        fs.collection("customers").document(cid).set(doc)


def ids(client: Any, query: str) -> list[str]:
    answer = client.get(f"/v1/health/customers?{query}")
    assert answer.status_code == 200, answer.get_json()
    return [c["id"] for c in answer.get_json()["customers"]]


def test_filter_and_sort_the_book_of_business(fs, health_client) -> None:  # type: ignore[no-untyped-def]
    seed(fs)
    # A success manager's customers, lowest score first; the unscored one last.
    assert ids(health_client, "csm=dana@ion.test&sort=score") == ["initech", "umbrella", "acme", "unscored"]
    assert ids(health_client, "csm=Dana&sort=-score") == ["acme", "umbrella", "initech", "unscored"]
    assert ids(health_client, "plan=pro&segment=smb&sort=score") == ["umbrella", "acme", "unscored"]
    assert ids(health_client, "category=at_risk&sort=-score") == ["umbrella", "globex"]
    assert ids(health_client, "max_score=60&sort=score") == ["initech", "globex"]
    assert ids(health_client, "min_score=50&max_score=70") == ["globex", "umbrella"]
    # Pages in the sorted order: `next` is the last id, `after` continues from it.
    first = health_client.get("/v1/health/customers?sort=score&limit=2").get_json()
    assert [c["id"] for c in first["customers"]] == ["initech", "globex"]
    assert first["next"] == "globex"
    assert ids(health_client, "sort=score&limit=2&after=globex") == ["umbrella", "acme"]
    listed = health_client.get("/v1/health/customers?csm=sam@ion.test").get_json()["customers"]
    assert listed[0]["csm"] == {"name": "Sam", "email": "sam@ion.test"}
    # Unchanged without the new parameters: id order.
    assert ids(health_client, "") == ["acme", "globex", "initech", "umbrella", "unscored"]


def test_bad_list_parameters_are_422(fs, health_client) -> None:  # type: ignore[no-untyped-def]
    seed(fs)
    assert health_client.get("/v1/health/customers?sort=name").status_code == 422
    assert health_client.get("/v1/health/customers?min_score=101").status_code == 422
    # A range no score is in is refused, naming both bounds (it answered an empty page).
    backwards = health_client.get("/v1/health/customers?min_score=80&max_score=20")
    assert backwards.status_code == 422
    assert "min_score 80" in backwards.get_json()["detail"]
    assert "max_score 20" in backwards.get_json()["detail"]
    assert ids(health_client, "min_score=70&max_score=70") == []
    answer = health_client.get("/v1/health/customers?sort=score&after=nobody")
    assert answer.status_code == 422
    assert "nobody" in answer.get_json()["detail"]


def test_a_deactivated_customer_is_listed_only_when_asked_for(fs, health_client) -> None:  # type: ignore[no-untyped-def]
    """Success works on active customers: churn-risk customers are the active ones unless
    `?status=` says otherwise (inactive, deactivated: the same, all); the registry lists all."""
    seed(fs)
    assert health_client.post("/v1/customers/initech/deactivate").status_code == 200
    assert ids(health_client, "category=churn_risk") == []
    assert ids(health_client, "category=churn_risk&status=inactive") == ["initech"]
    assert ids(health_client, "category=churn_risk&status=deactivated") == ["initech"]
    assert ids(health_client, "category=churn_risk&status=all") == ["initech"]
    assert ids(health_client, "sort=score") == ["globex", "umbrella", "acme", "unscored"]
    assert ids(health_client, "csm=dana@ion.test") == ["acme", "umbrella", "unscored"]
    assert ids(health_client, "status=active&max_score=40") == []
    listed = health_client.get("/v1/health/customers?status=inactive").get_json()["customers"]
    assert [(c["id"], c["status"]) for c in listed] == [("initech", "inactive")]
    wrong = health_client.get("/v1/health/customers?status=churned")
    assert wrong.status_code == 422
    for allowed in ("active", "inactive", "deactivated", "all"):
        assert allowed in wrong.get_json()["detail"]
    registry = health_client.get("/v1/customers").get_json()["customers"]
    assert "initech" in [c["id"] for c in registry]
    active = health_client.get("/v1/customers?status=active").get_json()["customers"]
    assert "initech" not in [c["id"] for c in active]


def test_a_score_order_without_its_composite_index_answers_as_before(  # type: ignore[no-untyped-def]
    fs, health_client, monkeypatch
) -> None:
    """Production Firestore refuses a score order whose composite index is not built yet: the
    listing reads the book of business and sorts it here instead of failing."""
    from google.api_core.exceptions import FailedPrecondition

    from functions.health import listing

    def missing(**_kwargs: Any) -> listing.Page:
        raise FailedPrecondition("The query requires an index.")

    seed(fs)
    monkeypatch.setattr(listing, "_by_score", missing)
    assert ids(health_client, "csm=dana@ion.test&sort=score") == ["initech", "umbrella", "acme", "unscored"]
    first = health_client.get("/v1/health/customers?sort=-score&limit=2").get_json()
    assert [c["id"] for c in first["customers"]] == ["acme", "umbrella"]
    assert ids(health_client, f"sort=-score&after={first['next']}") == ["globex", "initech", "unscored"]
