"""``GET /v1/incidents?since=``: an RFC 3339 time with its offset, typed into a query string the way
people do (a bare ``+``, which the query string decodes to a space), is the time it says; a time
without a zone or a date alone is a 422 naming the field and what it takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators


def test_since_takes_an_offset_with_or_without_its_plus_encoded(incidents: Fanout) -> None:
    # 2026-03-29 02:00 in Brussels does not exist (the clocks jump to 03:00): 03:30+02:00 is 01:30 UTC.
    clock = incidents.freeze(datetime(2026, 3, 29, 1, 30, tzinfo=UTC))
    assert incidents.push(make_transition(severity="high", at=clock.now())) == 200
    clock.advance(timedelta(seconds=31))
    incidents.tick()
    [opened] = incidents.http().get("/v1/incidents").get_json()
    for since, listed in (
        ("2026-03-29T03:30:00+02:00", [opened["id"]]),
        ("2026-03-29T03:30:00%2B02:00", [opened["id"]]),
        ("2026-03-29T03:31:00+02:00", []),
        ("2026-03-29T01:29:00Z", [opened["id"]]),
        ("2026-03-28T21:29:00-04:00", [opened["id"]]),
    ):
        answer = incidents.http().get(f"/v1/incidents?since={since}")
        assert answer.status_code == 200, (since, answer.get_data(as_text=True))
        assert [i["id"] for i in answer.get_json()] == listed, since


@pytest.mark.parametrize("since", ["2026-03-29T03:30:00", "2026-03-29", "yesterday"])
def test_since_without_a_zone_is_a_422_saying_what_it_takes(incidents: Fanout, since: str) -> None:
    answer = incidents.http().get(f"/v1/incidents?since={since}")
    assert answer.status_code == 422
    body = answer.get_json()
    assert [e["field"] for e in body["errors"]] == ["since"]
    assert "RFC 3339" in body["detail"] or "RFC 3339" in body["errors"][0]["message"], body
