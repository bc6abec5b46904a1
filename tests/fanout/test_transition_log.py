"""``GET /v1/transitions``: what a capped digest or a storm's note leaves out, listed page by page
from the transitions fan-out received, oldest first, by severity when asked; a bad window or
cursor is a 422 naming it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators


def _iso(at: Any) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_the_log_lists_a_windows_transitions_page_by_page_and_by_severity(fanout: Fanout) -> None:
    clock = fanout.freeze()
    start = clock.now()
    pushed = []
    for index in range(7):
        severity = "medium" if index % 2 else "low"
        alert = make_transition(severity=severity, endpoint=f"/e{index}", at=clock.now())
        assert fanout.push(alert) == 200
        pushed.append((alert.transition_id, severity))
        clock.advance(timedelta(seconds=10))
    http = fanout.http()
    window = {"since": _iso(start), "until": _iso(start + timedelta(hours=1))}

    seen: list[str] = []
    after = None
    for _ in range(5):
        answer = http.get(
            "/v1/transitions", query_string={**window, "limit": 3, **({"after": after} if after else {})}
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        assert len(body["transitions"]) <= 3
        seen += [t["transition_id"] for t in body["transitions"]]
        after = body["next"]
        if after is None:
            break
    assert seen == [tid for tid, _ in pushed]  # oldest first, each once
    first = http.get("/v1/transitions", query_string=window).get_json()["transitions"][0]
    assert first["outcome"] in {"pending", "notified"}
    assert first["labels"]["endpoint"] == "/e0"

    medium = http.get("/v1/transitions", query_string={**window, "severity": "medium"}).get_json()
    assert [t["transition_id"] for t in medium["transitions"]] == [tid for tid, s in pushed if s == "medium"]
    later = http.get("/v1/transitions", query_string={"since": _iso(start + timedelta(hours=1))}).get_json()
    assert later == {"transitions": [], "next": None}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"since": "2026-12-07T09:00:00Z", "until": "2026-12-15T09:00:00Z"}, "7 days"),
        ({"since": "2026-12-07T09:00:00Z", "until": "2026-12-07T08:00:00Z"}, "after since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-12-07T09:00:00Z", "severity": "urgent"}, "severity"),
        ({"since": "2026-12-07T09:00:00Z", "after": "no-such-transition"}, "after"),
        ({}, "since"),
    ],
)
def test_a_bad_window_or_cursor_is_a_422_naming_it(fanout: Fanout, query: dict[str, str], named: str) -> None:
    answer = fanout.http().get("/v1/transitions", query_string=query)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert named in answer.get_data(as_text=True)
