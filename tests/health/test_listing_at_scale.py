"""The health list at a few thousand customers on the Firestore emulator: every page reads a
bounded number of customers (before, a score order or a CSM filter read every customer per page),
and walking a listing by its `next` gives each customer once, in order. Deactivated customers are
left out unless `?status=` asks for them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.health.listing import MAX_SCANNED

pytestmark = pytest.mark.emulators

CUSTOMERS = 3_000
CSMS = [f"csm{n}@ion.test" for n in range(6)]


def _category(score: float) -> str:
    return "healthy" if score >= 70 else "at_risk" if score >= 40 else "churn_risk"


def generate(fs: Any) -> list[dict[str, Any]]:
    """Customers as the registry stores them: one in ten deactivated, one in twenty never scored,
    scores to one decimal (so many ties), six success managers, written in batches."""
    from functions.health.models import Customer

    rng = random.Random(26)
    docs = []
    for n in range(CUSTOMERS):
        score = None if n % 20 == 7 else round(rng.uniform(0, 100), 1)
        doc = Customer(
            id=f"c{n:05d}",
            name=f"Customer {n}",
            plan=rng.choice(["free", "pro", "enterprise"]),
            contact={"email": CSMS[n % len(CSMS)]},
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            status="inactive" if n % 10 == 3 else "active",
        ).model_dump()
        if score is not None:
            doc["health"] = {"score": score, "category": _category(score), "as_of": "2026-12-06"}
        docs.append(doc)
    for start in range(0, len(docs), 400):
        batch = fs.batch()
        for doc in docs[start : start + 400]:
            batch.set(fs.collection("customers").document(doc["id"]), doc)
        batch.commit()
    return docs


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Documents read through queries and single gets, counted at the client."""
    from google.cloud.firestore_v1.document import DocumentReference
    from google.cloud.firestore_v1.query import Query

    counted = [0]
    real_stream, real_get = Query.stream, DocumentReference.get

    def stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for snap in real_stream(self, *args, **kwargs):
            counted[0] += 1
            yield snap

    def get(self: Any, *args: Any, **kwargs: Any) -> Any:
        counted[0] += 1
        return real_get(self, *args, **kwargs)

    monkeypatch.setattr(Query, "stream", stream)
    monkeypatch.setattr(DocumentReference, "get", get)
    return counted


def walk(client: Any, reads: list[int], query: str, most: int) -> list[str]:
    """Every page of a listing by its `next`; each request reads at most ``most`` customers."""
    ids: list[str] = []
    after = ""
    for _ in range(CUSTOMERS):
        reads[0] = 0
        answer = client.get(f"/v1/health/customers?{query}{after}")
        assert answer.status_code == 200, answer.get_json()
        assert reads[0] <= most, f"{query}{after}: {reads[0]} customers read"
        body = answer.get_json()
        ids += [c["id"] for c in body["customers"]]
        if body["next"] is None:
            return ids
        after = f"&after={body['next']}"
    raise AssertionError("the listing never ended")


def by_score(docs: list[dict[str, Any]], descending: bool = False) -> list[str]:
    scored = [d for d in docs if d.get("health")]
    scored.sort(key=lambda d: ((-1 if descending else 1) * d["health"]["score"], d["id"]))
    return [d["id"] for d in scored] + sorted(d["id"] for d in docs if not d.get("health"))


def test_score_order_reads_a_page_not_the_registry(fs, health_client, reads) -> None:  # type: ignore[no-untyped-def]
    docs = generate(fs)
    active = [d for d in docs if d["status"] == "active"]
    # A page reads its customers and, from the second on, the customer it goes on after.
    assert walk(health_client, reads, "sort=score&limit=200", 201) == by_score(active)
    assert walk(health_client, reads, "sort=-score&limit=500", 501) == by_score(active, descending=True)
    pro = [d for d in active if d["plan"] == "pro"]
    assert walk(health_client, reads, "plan=pro&sort=-score&limit=100", 101) == by_score(pro, True)
    ranged = [d for d in active if d.get("health") and 30 <= d["health"]["score"] <= 40]
    assert walk(health_client, reads, "min_score=30&max_score=40&sort=score&limit=50", 51) == by_score(ranged)
    everyone = walk(health_client, reads, "status=all&sort=score&limit=1000", 1001)
    assert everyone == by_score(docs)


def test_a_filter_applied_here_reads_a_bounded_number_per_page(fs, health_client, reads) -> None:  # type: ignore[no-untyped-def]
    docs = generate(fs)
    mine = [d for d in docs if d["status"] == "active" and d["contact"]["email"] == CSMS[1]]
    # A success manager's book, lowest score first: pages may be short, none reads the registry.
    assert walk(health_client, reads, f"csm={CSMS[1]}&sort=score&limit=100", MAX_SCANNED + 1) == by_score(
        mine
    )
    assert walk(health_client, reads, f"csm={CSMS[1]}&limit=1000", MAX_SCANNED) == sorted(
        d["id"] for d in mine
    )
    high = sorted(
        d["id"] for d in docs if d["status"] == "active" and (d.get("health") or {}).get("score", -1) >= 90
    )
    assert walk(health_client, reads, "min_score=90&limit=1000", MAX_SCANNED) == high
