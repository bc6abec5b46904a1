"""Values from labels and annotations are shown, never obeyed: escaped for Slack mrkdwn (no
``<!channel>`` or ``<@U…>`` mention, no link), and one line in a mail header (no injected header)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators

HOSTILE_SUMMARY = "<!channel> p95 & errors > 5% <@U123> see <https://evil.example|here>"


def test_label_and_annotation_values_reach_slack_escaped(fanout: Fanout) -> None:
    firing = make_transition(severity="critical", service="<!here>", region="us-<central>&1")
    firing = firing.model_copy(
        update={
            "annotations": {"summary": HOSTILE_SUMMARY},
            "runbook": ["Ask <@U999> & <!everyone>"],
        }
    )
    assert fanout.push(firing) == 200
    [message] = fanout.slack.top_level()
    # Every mrkdwn text (the header is plain_text, which Slack shows as written: no mentions).
    sent = json.dumps([message.text, *(b for b in message.blocks if b["type"] != "header")])
    for raw in ("<!channel>", "<!here>", "<@U123>", "<@U999>", "<!everyone>", "<https://evil.example|here>"):
        assert raw not in sent
    assert "&lt;!channel&gt; p95 &amp; errors &gt; 5% &lt;@U123&gt;" in message.text
    section_texts = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    assert any("&lt;!channel&gt; p95 &amp; errors" in t for t in section_texts)
    fields = [f["text"] for b in message.blocks for f in b.get("fields", [])]
    assert "*Service*\n&lt;!here&gt;" in fields
    assert "*Region*\nus-&lt;central&gt;&amp;1" in fields
    assert any("Ask &lt;@U999&gt; &amp; &lt;!everyone&gt;" in t for t in section_texts)
    # Our own configured mention (a user group) is still a mention.
    assert "<!subteam^ONCALL|@oncall>" in message.text


def test_a_label_with_cr_lf_cannot_add_a_mail_header(fanout: Fanout) -> None:
    clock = fanout.freeze()
    high = make_transition(
        rule="error-rate", severity="high", region="us-central1\r\nBcc: victim@example.com", at=clock.now()
    )
    assert fanout.push(high) == 200
    clock.advance(timedelta(seconds=11))
    fanout.tick()
    fanout.tick()
    [mail] = fanout.smtp.mails
    subject = str(mail["Subject"])
    assert "\r" not in subject
    assert "\n" not in subject
    assert "us-central1 Bcc: victim@example.com" in subject  # shown, on the one line
    assert mail["Bcc"] is None
    assert all("victim@example.com" not in rcpt for _, rcpts in fanout.smtp.envelopes for rcpt in rcpts)
