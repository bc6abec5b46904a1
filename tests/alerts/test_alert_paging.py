"""GET /v1/alerts a page at a time, on the served alert evaluation (functions-framework app,
Firestore emulator). A state is kept per rule and label set, 35 days after it went quiet: a label
that churns (a pod name, a customer) leaves thousands. Before, every state kept was read and
answered at once, whatever the filters; now a page reads its states and says where the next
starts (``next``, passed as ``after``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import functions_framework
import pytest

from functions.alerts.state import AlertState
from functions.alerts.state_store import STATES_COLLECTION
from tests.paging import pages_by_next

pytestmark = pytest.mark.emulators

ROOT = Path(__file__).resolve().parents[2]
RULES = ("latency-p95-high", "error-rate-high")
KEPT = 90


def seed_states(fs: Any) -> list[AlertState]:
    states = [
        AlertState(
            fingerprint=f"{n:016x}",
            rule=RULES[n % 2],
            kind="threshold",
            labels={"pod": f"api-{n}"},
            state="firing" if n % 3 == 0 else "resolved",
        )
        for n in range(KEPT)
    ]
    batch = fs.batch()
    for state in states:
        batch.set(fs.collection(STATES_COLLECTION).document(state.fingerprint), state.model_dump())
    batch.commit()
    return sorted(states, key=lambda s: (s.rule, s.fingerprint))


def listed(client: Any, query: str) -> list[list[str]]:
    """Every page's fingerprints from ``/v1/alerts?query``."""
    return [[a["fingerprint"] for a in page] for page in pages_by_next(client, "/v1/alerts", query, "alerts")]


def test_alerts_are_listed_page_by_page_reading_each_page_only(fs: Any, query_reads: list[int]) -> None:
    ordered = seed_states(fs)
    client = functions_framework.create_app("evaluate_alerts", str(ROOT / "main.py"), "http").test_client()

    query_reads[0] = 0
    first = client.get("/v1/alerts?limit=10").get_json()
    assert query_reads[0] <= 10 + len(RULES) + 1  # the page and the rules' cycle records; before: every state
    assert [a["fingerprint"] for a in first["alerts"]] == [s.fingerprint for s in ordered[:10]]

    pages = listed(client, "limit=40")
    assert [len(p) for p in pages] == [40, 40, 10]
    assert [f for p in pages for f in p] == [s.fingerprint for s in ordered]

    for query, wanted in (
        ("state=firing&limit=7", [s for s in ordered if s.state == "firing"]),
        (f"rule={RULES[1]}&limit=20", [s for s in ordered if s.rule == RULES[1]]),
        (
            f"rule={RULES[0]}&state=resolved&limit=9",
            [s for s in ordered if s.rule == RULES[0] and s.state == "resolved"],
        ),
    ):
        assert [f for p in listed(client, query) for f in p] == [s.fingerprint for s in wanted], query


def test_a_bad_cursor_is_a_422_naming_after(fs: Any) -> None:
    ordered = seed_states(fs)
    client = functions_framework.create_app("evaluate_alerts", str(ROOT / "main.py"), "http").test_client()
    resolved = next(s for s in ordered if s.state == "resolved")
    for query in ("after=ffffffffffffffff", f"state=firing&after={resolved.fingerprint}"):
        answer = client.get(f"/v1/alerts?{query}")
        assert answer.status_code == 422, (query, answer.get_data(as_text=True))
        assert "after" in answer.get_data(as_text=True)
