"""`make demo` on a fresh clone (issue #26 item 6): its business step scores the demo customer
(registered today, so its onboarding check-in fires as a success action) and mails the week so
far's leadership, customer success and finance reports, labelled partial, naming that customer
and carrying the KPI scorecard. Served for real (health, reports) on the emulators."""

from __future__ import annotations

import email
import os
import time
from pathlib import Path

from devtools import demo
from tests.health.conftest import alerts_inbox  # noqa: F401 - the alerts topic's pull fixture


def test_demo_scores_customers_and_mails_partial_reports(  # noqa: PLR0917 - fixtures
    fs,
    serve_capability,
    alerts_inbox,  # noqa: F811
    monkeypatch,
    tmp_path: Path,
    capsys,
) -> None:  # type: ignore[no-untyped-def]
    outbox = tmp_path / "reports"
    health = serve_capability("health")
    reports = serve_capability(
        "reports", env={"ION_REPORTS_OUTBOX": str(outbox), "ION_REPORTS_CACHE_DASHBOARDS": "false"}
    )
    urls = {
        "health": health.url,
        "reports": reports.url,
        "cost": "http://127.0.0.1:9",
    }  # no cost locally here
    monkeypatch.setattr(demo, "url_of", lambda capability: urls[capability])
    assert demo.customer_key() is not None  # the demo customer, registered now, with its key

    demo.business_day(reports.url)

    said = capsys.readouterr().out
    assert "customers scored: 1" in said
    assert "onboarding_checkin" in said
    # The success action, published as a low notice for fan-out (which writes it to the outbox
    # locally, and mails the success manager): addressed to the demo customer's CSM.
    notices = [n for n in alerts_inbox() if (n.get("labels") or {}).get("customer") == "demo-acme"]
    assert [n["labels"]["action"] for n in notices] == ["onboarding_checkin"]
    assert notices[0]["annotations"]["contact_email"] == "csm@example.com"
    mails = {p.name: email.message_from_bytes(p.read_bytes()) for p in outbox.glob("*.eml")}
    assert {n.split("-20")[0] for n in mails} == {"leadership", "customer_success", "finance"}
    for name, message in mails.items():
        assert "-partial" in message["Subject"], name
        text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(
            decode=True
        )
        assert b"partial: so far" in text, name
    leadership = next(m for n, m in mails.items() if n.startswith("leadership"))
    text = next(p for p in leadership.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert b"KPI SCORECARD" in text.upper()
    assert b"Average health score" in text
    success = next(m for n, m in mails.items() if n.startswith("customer_success"))
    html = next(p for p in success.walk() if p.get_content_type() == "text/html").get_payload(decode=True)
    assert b"Health categories" in html
    assert b"1 customer<" in html  # the demo customer, scored: not "no data"


def test_the_demo_tells_a_success_action_from_an_alert(tmp_path: Path) -> None:
    action = tmp_path / "low-1-email.json"
    action.write_text(
        '{"notification": {"alerts": [{"labels": {"action": "onboarding_checkin", "customer": "c"}}]}}'
    )
    alert = tmp_path / "high-2-slack.json"
    alert.write_text('{"notification": {"alerts": [{"labels": {"rule": "latency-p95-high"}}]}}')
    assert demo.outbox_actions(tmp_path, 0) == [action]
    assert demo.outbox_alerts(tmp_path, 0) == [alert]


def test_the_demos_first_alert_is_a_rule_firing_in_this_run(tmp_path: Path) -> None:
    """A scale change or dead-letter notice is not "the first alert", and nor is a file an earlier
    run left: file times are wall-clock seconds, which the demo compares with its own start."""
    notice = tmp_path / "low-3-slack.json"
    notice.write_text(
        '{"notification": {"alerts": [{"kind": "notice", "labels": {"notice": "scale-change"}}]}}'
    )
    alert = tmp_path / "high-4-slack.json"
    alert.write_text('{"notification": {"alerts": [{"kind": "threshold", "rule": "latency-p95-high"}]}}')
    earlier = tmp_path / "high-0-slack.json"
    earlier.write_text(alert.read_text())
    started = time.time() - 60  # the demo's start, a minute ago
    os.utime(earlier, (started - 3600, started - 3600))
    assert demo.outbox_alerts(tmp_path, started) == [alert]
