"""The daily digest of a storm day: each section capped and saying how many it leaves out, the
counts exact, the most severe transitions the ones listed, and where the whole list is."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from functions.fanout.digest import MAX_RULES_LISTED, MAX_TRANSITIONS_LISTED, DigestEntry, build_digest
from functions.fanout.records import TRANSITIONS
from shared.firestore import get_firestore
from tests.fanout.conftest import Fanout, make_transition

DAY = datetime(2026, 3, 1, tzinfo=UTC)


def storm(count: int, rules: int) -> list[DigestEntry]:
    """``count`` medium transitions of ``rules`` rules, then two critical ones late in the day."""
    entries = [
        DigestEntry(
            transition=make_transition(
                rule=f"rule-{i % rules:03d}",
                severity="medium",
                state="firing" if i % 2 == 0 else "resolved",
                service=f"svc-{i}",
                at=DAY + timedelta(seconds=i),
            ),
            outcome="notified",
        )
        for i in range(count)
    ]
    entries += [
        DigestEntry(
            transition=make_transition(rule="down", at=DAY + timedelta(hours=23)), outcome="notified"
        ),
        DigestEntry(
            transition=make_transition(
                rule="down", state="resolved", at=DAY + timedelta(hours=23, minutes=5)
            ),
            outcome="notified",
        ),
    ]
    return entries


def test_a_storm_day_lists_the_most_severe_and_counts_everything() -> None:
    digest = build_digest(DAY.date(), storm(3000, 80), full_list="the collection")
    assert digest.subject() == "ION Ops alert digest 2026-03-01: 1501 fired, 1501 resolved"
    assert digest.counts() == {
        "critical": {"firing": 1, "resolved": 1},
        "medium": {"firing": 1500, "resolved": 1500},
    }
    assert len(digest.entries) == MAX_TRANSITIONS_LISTED
    assert [e.transition.rule for e in digest.entries[-2:]] == ["down", "down"]  # kept, in time order
    times = [e.transition.evaluated_at for e in digest.entries]
    assert times == sorted(times)
    assert digest.transitions_left_out() == {"medium": 3000 - (MAX_TRANSITIONS_LISTED - 2)}
    assert len(digest.by_rule()) == MAX_RULES_LISTED
    rules, fired, resolved = digest.rules_left_out()
    assert rules == 81 - MAX_RULES_LISTED
    listed = digest.by_rule()
    assert sum(f for _, f, _ in listed) + fired == 1501
    assert sum(r for _, _, r in listed) + resolved == 1501


def test_a_long_summary_is_clipped_in_the_digest() -> None:
    alert = make_transition(at=DAY)
    alert = alert.model_copy(update={"annotations": {"summary": "x" * 5000}})
    digest = build_digest(DAY.date(), [DigestEntry(transition=alert, outcome="failed", reason="y" * 5000)])
    [entry] = digest.entries
    assert len(entry.summary()) <= 300
    assert len(entry.why()) <= 300


@pytest.mark.emulators
def test_the_mail_of_a_storm_day_is_capped_and_says_where_the_whole_list_is(fanout: Fanout) -> None:
    client = get_firestore()
    entries = storm(2 * MAX_TRANSITIONS_LISTED, MAX_RULES_LISTED + 10)
    for start in range(0, len(entries), 400):
        batch = client.batch()
        for i, entry in enumerate(entries[start : start + 400], start):
            batch.set(
                client.collection(TRANSITIONS).document(f"t{i:05d}"),
                {
                    "transition": entry.transition.model_dump(mode="json"),
                    "received_at": entry.transition.evaluated_at,
                    "outcome": entry.outcome,
                    "expire_at": DAY + timedelta(days=30),
                },
            )
        batch.commit()
    response = fanout.http().post("/v1/digest", json={"date": "2026-03-01"})
    assert response.get_json()["transitions"] == len(entries)
    mail = fanout.smtp.mails[-1]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert (
        mail["Subject"]
        == f"ION Ops alert digest 2026-03-01: {len(entries) // 2} fired, {len(entries) // 2} resolved"
    )
    left = len(entries) - MAX_TRANSITIONS_LISTED
    for part in (text, html):
        assert f"... and {left} more not listed (medium: {left})" in part
        assert "... and 11 more rules" in part
        assert "/v1/transitions?since=2026-03-01T00:00:00Z (page by page, kept 30 days)" in part
        assert "/v1/incidents?since=2026-03-01T00:00:00Z" in part
    listed = re.findall(r"^  \S+Z (?:medium|critical) (?:FIRING|RESOLVED) ", text, flags=re.MULTILINE)
    assert len(listed) == MAX_TRANSITIONS_LISTED
