"""GET /v1/incidents a page at a time, on the served fan-out (functions-framework app, Firestore
emulator). The answer is a bare array (its shape is the contract's), so the next page is an RFC
8288 ``Link: <...>; rel="next"`` header. Before, the list stopped at ``limit`` (500 at most) with
no way to the rest, and a page of large incidents (a timeline of 500 entries, 100 alerts: ~1 MiB
each) was answered whole: past Cloud Functions' 32 MiB response limit, every incident held in
memory at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.fanout.incident_record import Incident, TimelineEntry
from shared.paging import PAGE_BYTES
from tests.fanout.conftest import Fanout
from tests.incidents.test_incident_reads_bounded import past_incident, store
from tests.paging import pages_by_link

pytestmark = pytest.mark.emulators


def pages(fanout: Fanout, url: str) -> list[tuple[list[dict[str, Any]], int]]:
    """Every page from ``url``: (items, body bytes) each."""
    return [(answer.get_json(), len(answer.get_data())) for answer in pages_by_link(fanout.http(), url)]


def test_every_incident_is_reached_page_by_page_newest_first(fanout: Fanout, fs: Any) -> None:
    now = datetime.now(UTC)
    kept = [
        past_incident(n, now - timedelta(hours=n + 1), severity="critical", service=f"s{n}", resolved=n > 1)
        for n in range(8)
    ]
    store(fs, kept)
    newest_first = [i.id for i in sorted(kept, key=lambda i: i.opened_at, reverse=True)]

    got = pages(fanout, "/v1/incidents?limit=3")
    assert [len(items) for items, _ in got] == [3, 3, 2]
    assert [len(items) for items, _ in pages(fanout, "/v1/incidents?limit=4")] == [4, 4, 0]  # full: a Link
    assert [i["id"] for items, _ in got for i in items] == newest_first

    resolved = pages(fanout, "/v1/incidents?state=resolved&limit=4")  # the filter kept in the link
    assert [i["id"] for items, _ in resolved for i in items] == newest_first[2:]
    assert [len(items) for items, _ in resolved] == [4, 2]


def test_a_bad_cursor_is_a_422_naming_after(fanout: Fanout, fs: Any) -> None:
    now = datetime.now(UTC)
    opened = past_incident(1, now - timedelta(hours=1), severity="critical", service="a", resolved=False)
    store(fs, [opened])
    for after in ("nonsense", "critical-000000000000000000000099-i1", opened.id):
        query = f"after={after}" + ("&state=resolved" if after == opened.id else "")
        answer = fanout.http().get(f"/v1/incidents?{query}")
        assert answer.status_code == 422, (after, answer.get_data(as_text=True))
        assert "after" in answer.get_data(as_text=True)


def large(incident: Incident, text_bytes: int) -> Incident:
    """``incident`` with a full timeline of long notes: about ``text_bytes`` stored."""
    entries = 450
    note = "x" * (text_bytes // entries)
    at = incident.opened_at
    incident.timeline = [
        TimelineEntry(at=at + timedelta(seconds=s), kind="note", by="ada", text=note) for s in range(entries)
    ]
    return incident


def test_a_page_of_large_incidents_ends_at_its_byte_budget_and_reads_no_more(
    fanout: Fanout,
    fs: Any,
    query_reads: list[int],
) -> None:
    now = datetime.now(UTC)
    # 36 incidents of ~0.95 MiB: together past the 32 MiB a Cloud Function may answer.
    kept = [
        large(past_incident(n, now - timedelta(hours=n + 1), severity="high", service=f"s{n}", resolved=True),
              950_000)
        for n in range(36)
    ]  # fmt: skip
    for incident in kept:  # one by one: a batch request is at most 10 MiB
        store(fs, [incident])

    query_reads[0] = 0
    got = pages(fanout, "/v1/incidents?limit=500")
    assert len(got) > 1
    assert all(size <= PAGE_BYTES for _, size in got)
    assert sorted(i["id"] for items, _ in got for i in items) == sorted(i.id for i in kept)
    # Each page reads its incidents and the one that did not fit, no more (and the empty last page).
    assert query_reads[0] <= len(kept) + len(got)
