"""The daily digest: the day's transitions in one mail (HTML and text), once per day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators


def test_the_digest_of_yesterday_is_mailed_once(fanout: Fanout) -> None:
    clock = fanout.freeze(datetime(2026, 3, 1, 21, 0, tzinfo=UTC))
    assert fanout.push(make_transition(severity="critical", at=clock.now())) == 200
    clock.advance(timedelta(minutes=5))
    assert fanout.push(make_transition(severity="critical", state="resolved", at=clock.now())) == 200
    assert fanout.push(make_transition(rule="error-rate", severity="high", at=clock.now())) == 200
    clock.set(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    assert (
        fanout.push(make_transition(rule="cpu", severity="medium", at=clock.now())) == 200
    )  # today: not in it
    mails_before = len(fanout.smtp.mails)
    headers = {"X-CloudScheduler": "true", "X-CloudScheduler-ScheduleTime": "2026-03-02T08:00:00Z"}
    response = fanout.http().post("/v1/digest", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"day": "2026-03-01", "transitions": 3, "channels": {"email": "delivered"}}
    [digest] = fanout.smtp.mails[mails_before:]
    assert digest["Subject"] == "ION Ops alert digest 2026-03-01: 2 fired, 1 resolved"
    text = digest.get_body(("plain",)).get_content()
    html = digest.get_body(("html",)).get_content()
    assert "critical: 1 fired, 1 resolved" in text
    assert "high: 1 fired, 0 resolved" in text
    assert "cpu" not in text
    assert "<td>p95-latency</td><td>1</td><td>1</td>" in html
    # The scheduler retrying the same day sends nothing more.
    again = fanout.http().post("/v1/digest", headers=headers)
    assert again.get_json()["channels"] == {"email": "duplicate"}
    assert len(fanout.smtp.mails) == mails_before + 1


def test_a_chosen_day_without_alerts(fanout: Fanout) -> None:
    response = fanout.http().post("/v1/digest", json={"date": "2026-01-05"})
    assert response.get_json() == {"day": "2026-01-05", "transitions": 0, "channels": {"email": "delivered"}}
    text = fanout.smtp.mails[-1].get_body(("plain",)).get_content()
    assert "no alerts this day" in text


def test_an_empty_day_says_so_in_every_section_of_both_parts(fanout: Fanout) -> None:
    fanout.http().post("/v1/digest", json={"date": "2026-01-06"})
    mail = fanout.smtp.mails[-1]
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = mail.get_body(("html",)).get_content()
    for heading in ("By rule (fired / resolved):\n", "Transitions (UTC):\n"):
        section = text.split(heading, 1)[1]
        assert section.startswith("  none\n"), section[:80]
    for heading in ("<h3>By rule</h3>", "<h3>Transitions (UTC)</h3>"):
        table = html.split(heading, 1)[1].split("</table>", 1)[0]
        assert "<td colspan=" in table, table
        assert "None." in table, table
