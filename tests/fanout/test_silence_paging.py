"""GET /v1/silences a page at a time, on the served fan-out (functions-framework app, Firestore
emulator). Expired silences are kept 7 days and a Slack button makes one per click: before, every
silence kept was read for each listing and answered at once. The answer is a bare array, so the
next page is an RFC 8288 ``Link: <...>; rel="next"`` header."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.fanout import silences
from functions.fanout.records import SILENCES
from tests.fanout.conftest import Fanout
from tests.paging import pages_by_link

pytestmark = pytest.mark.emulators

KEPT = 30


def seed(fs: Any) -> list[silences.Silence]:
    now = datetime.now(UTC)
    kept = []
    batch = fs.batch()
    for n in range(KEPT):
        starts = now - timedelta(days=6) + timedelta(hours=n * 5)  # expired, active and pending ones
        silence = silences.new_silence(
            silences.SilenceIn.model_validate(
                {
                    "matchers": [{"name": "service", "value": f"s{n}"}],
                    "endsAt": (now + timedelta(hours=1)).isoformat(),
                    "createdBy": "ada@example.com",
                    "comment": "storm",
                }
            )
        ).model_copy(update={"starts_at": starts, "ends_at": starts + timedelta(hours=2)})
        batch.set(fs.collection(SILENCES).document(silence.id), silences._store(silence))
        kept.append(silence)
    batch.commit()
    return sorted(kept, key=lambda s: (s.starts_at, s.id))


def pages(fanout: Fanout, url: str) -> list[list[str]]:
    return [[s["id"] for s in answer.get_json()] for answer in pages_by_link(fanout.http(), url)]


def test_silences_are_listed_page_by_page_reading_each_page_only(
    fanout: Fanout,
    fs: Any,
    query_reads: list[int],
) -> None:
    ordered = seed(fs)
    query_reads[0] = 0
    first = pages(fanout, "/v1/silences?limit=12")
    assert [len(p) for p in first] == [12, 12, 6]
    assert [i for p in first for i in p] == [s.id for s in ordered]
    assert query_reads[0] <= KEPT  # each page its own; before: every silence for each page

    now = datetime.now(UTC)
    pending = [s.id for s in ordered if s.state(now) == "pending"]
    assert pending
    assert [i for p in pages(fanout, "/v1/silences?state=pending&limit=7") for i in p] == pending


def test_a_bad_cursor_is_a_422_naming_after(fanout: Fanout, fs: Any) -> None:
    seed(fs)
    answer = fanout.http().get("/v1/silences?after=3f0c9a52-0000-4000-8000-000000000000")
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert "after" in answer.get_data(as_text=True)
