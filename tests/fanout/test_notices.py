"""Notices through fan-out: a low notice reaches Slack (a low alert only the log), once; it is
never repeated and never inhibits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.notices import notice_transition
from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators


def test_a_low_notice_goes_to_slack_once_and_is_never_repeated(fanout: Fanout) -> None:
    clock = fanout.freeze()
    notice = notice_transition(
        notice_id="scaling/us-central1/0800",
        source="scaling",
        name="scale-change",
        severity="low",
        summary="us-central1: min instances 2 -> 4 (forecast peak 310 r/s)",
        at=clock.now(),
        labels={"region": "us-central1"},
    )
    for _ in range(2):  # redelivered
        assert fanout.push(notice, message_id="n-1") == 200
    clock.advance(timedelta(seconds=31))  # the low route's group wait
    fanout.tick()
    assert len(fanout.slack.top_level()) == 1
    assert "min instances 2 -&gt; 4" in fanout.slack.top_level()[0].all_text()
    assert fanout.pagerduty.events == []
    clock.advance(timedelta(hours=25))  # past the low route's repeat interval
    fanout.tick()
    fanout.tick()
    assert len(fanout.slack.messages) == 1


def test_a_critical_notice_inhibits_nothing(fanout: Fanout) -> None:
    clock = fanout.freeze()
    dead_letter = notice_transition(
        notice_id="dead-letter/1",
        source="deadletters",
        name="dead-letter",
        severity="critical",
        summary="A message on alerts was dead-lettered",
        at=clock.now(),
        labels={"topic": "alerts"},
    )
    assert fanout.push(dead_letter) == 200
    assert len(fanout.slack.top_level()) == 1  # critical: no group wait
    # A high alert without service/region labels would be inhibited by a firing critical alert
    # that also lacks them; a notice does not stay firing, so it is not.
    high = make_transition(rule="queue-depth", severity="high", at=clock.now(), service="", region="")
    assert fanout.push(high) == 200
    clock.advance(timedelta(seconds=11))
    fanout.tick()
    assert len(fanout.slack.top_level()) == 2
    assert len(fanout.smtp.mails) == 1


def test_a_notice_is_never_inhibited_as_nothing_would_send_it_later(fanout: Fanout) -> None:
    """A budget crossing carries neither service nor region; a critical alert lacking them too
    (error-rate-critical has no group_by) inhibited it, and a notice does not stay firing, so the
    resolve of that alert sent it never: the crossing was lost. Time intervals skip notices for
    the same reason."""
    clock = fanout.freeze()
    critical = make_transition(
        rule="error-rate-critical", severity="critical", at=clock.now(), service="", region=""
    )
    assert fanout.push(critical) == 200
    crossing = notice_transition(
        notice_id="cost/crossing/2026-12/b-1/actual-90",
        source="cost",
        name="budget-threshold",
        severity="medium",
        summary="Budget 'ion': actual cost passed 90% (2800 of 3000 USD) for 2026-12",
        at=clock.now(),
        labels={"month": "2026-12", "threshold": "actual-90", "budget_id": "b-1"},
    )
    assert fanout.push(crossing) == 200
    clock.advance(timedelta(seconds=31))  # the medium route's group wait
    fanout.tick()
    assert any("passed 90%" in m.all_text() for m in fanout.slack.top_level()), fanout.slack.messages


def test_success_actions_reach_their_own_csm_alone_one_customer_per_notice(fanout: Fanout) -> None:
    """Two success managers: Ann (acme, globex; mail and Slack) and Bob (initech; mail only).
    The daily run's notices through fan-out: each customer's own notices, to its own CSM only,
    with the score, components, what moved it, the playbook and the customer's page; never the
    on-call list, never the team's Slack channel, never another CSM's customer."""
    from functions.health import registry
    from functions.health.config import load_config
    from functions.health.models import CustomerIn
    from functions.health.run import run_health
    from functions.health.settings import DEFAULT_CONFIG_FILE
    from functions.health.store import FirestoreHealthStore
    from functions.health.usage import MemoryUsage

    clock = fanout.freeze()
    fanout.slack.channels.add("U0ANN")
    ann = {"email": "ann@csm.example", "name": "Ann", "slack": "U0ANN"}
    bob = {"email": "bob@csm.example", "name": "Bob"}
    old = clock.now() - timedelta(days=400)
    for customer_id, contact in (("acme", ann), ("globex", ann), ("initech", bob)):
        registry.create_customer(
            CustomerIn.model_validate(
                {"id": customer_id, "name": customer_id.title(), "contact": contact, "created_at": old}
            )
        )
    pushed: list[int] = []
    summary = run_health(
        clock.now().date(),
        cfg=load_config(DEFAULT_CONFIG_FILE),
        usage_source=MemoryUsage(usage={}),  # idle: churn risk, low engagement
        store=FirestoreHealthStore(),
        publish=lambda notice: pushed.append(fanout.push(notice)),
        public_url="https://ops.example.com",
    )
    fired = sum(summary.actions_fired.values())
    assert fired >= 6  # at least retention and training for each of the three
    assert pushed == [200] * fired
    clock.advance(timedelta(seconds=31))  # the low route's group wait
    fanout.tick()
    fanout.tick()

    mails = list(zip(fanout.smtp.mails, fanout.smtp.envelopes, strict=True))
    assert len(mails) == fired  # one customer and action per notification
    customers_of = {"ann@csm.example": {"acme", "globex"}, "bob@csm.example": {"initech"}}
    for mail, envelope in mails:
        [recipient] = envelope[1]  # the CSM alone: no on-call list
        text = mail.get_body(("plain",)).get_content()
        named = {c for c in ("acme", "globex", "initech") if f"/v1/health/customers/{c}" in text}
        assert len(named) == 1, text  # one customer per notice
        assert named <= customers_of[recipient]  # and one of this CSM's own
        [customer] = named
        assert customer.title() in mail["Subject"]
        assert "score:" in text
        assert "churn_risk" in text
        assert "engagement 0 (weight" in text  # the components
        assert "moved:" in text
        assert "playbook:" in text
        assert "Silence these alerts" not in text
        assert "FIRING" not in mail["Subject"]
    assert {e[1][0] for _, e in mails} == {"ann@csm.example", "bob@csm.example"}
    # Slack: Ann's customers as direct messages to Ann; nothing in the team's channel.
    assert all(m.channel == "U0ANN" for m in fanout.slack.messages)
    dms = [m.all_text() for m in fanout.slack.messages]
    assert len(dms) == sum(1 for _, e in mails if e[1] == ["ann@csm.example"])
    assert all("initech" not in text.lower() for text in dms)
    assert fanout.pagerduty.events == []


def test_a_personal_notice_without_a_usable_address_is_given_up_not_sent_to_the_team(
    fanout: Fanout,
) -> None:
    clock = fanout.freeze()
    notice = notice_transition(
        notice_id="health/globex/training_outreach/2026-03-02",
        source="health",
        name="training-outreach",
        severity="low",
        summary="globex: low engagement, offer training",
        at=clock.now(),
        labels={"customer": "globex", "action": "training_outreach"},
        # Not one plain address: never put on an envelope.
        annotations={"contact_email": "x@y.example>, all@corp.example"},
    )
    assert fanout.push(notice) == 200
    clock.advance(timedelta(seconds=31))
    fanout.tick()
    assert fanout.smtp.mails == []
    assert fanout.slack.messages == []
    [letter] = fanout.dead_letters(expect=1)
    assert letter["data"]["channel"] == "contact"
    assert "no plain email address" in letter["data"]["reason"]


def test_a_low_alert_with_a_contact_annotation_is_not_mailed(fanout: Fanout) -> None:
    clock = fanout.freeze()
    alert = make_transition(rule="queue-depth", severity="low", at=clock.now())
    alert = alert.model_copy(update={"annotations": {**alert.annotations, "contact_email": "a@b.example"}})
    assert fanout.push(alert) == 200
    clock.advance(timedelta(seconds=31))
    fanout.tick()
    assert fanout.smtp.mails == []  # only notices name recipients; a low alert goes to the log


def test_the_team_digest_names_no_account_of_a_personal_notice(fanout: Fanout) -> None:
    clock = fanout.freeze(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    notice = notice_transition(
        notice_id="health/acme/retention_campaign/2026-03-01",
        source="health",
        name="retention-campaign",
        severity="low",
        summary="Acme Corp: Churn risk: retention campaign (score 21: churn risk)",
        at=clock.now(),
        labels={"customer": "acme", "action": "retention_campaign"},
        annotations={"contact_email": "ann@csm.example"},
    )
    assert fanout.push(notice) == 200
    clock.advance(timedelta(seconds=31))
    fanout.tick()
    assert [e[1] for e in fanout.smtp.envelopes] == [["ann@csm.example"]]
    clock.set(datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    headers = {"X-CloudScheduler": "true", "X-CloudScheduler-ScheduleTime": "2026-03-02T08:00:00Z"}
    assert fanout.http().post("/v1/digest", headers=headers).status_code == 200
    digest = fanout.smtp.mails[-1]
    text = digest.get_body(("plain",)).get_content()
    html = digest.get_body(("html",)).get_content()
    assert "health-retention-campaign (personal notice, sent to its recipient)" in text
    for body in (text, html):
        assert "Acme" not in body
        assert "acme" not in body


def test_copying_personal_notices_to_the_team_is_a_routing_choice() -> None:
    from functions.fanout.routes import PersonalNotices, load_routing
    from functions.fanout.settings import DEFAULT_ROUTING_FILE

    default = load_routing(DEFAULT_ROUTING_FILE)

    def action(customer: str, **annotations: str) -> Any:
        return notice_transition(
            notice_id=f"health/{customer}/training_outreach/2026-03-02",
            source="health",
            name="training-outreach",
            severity="low",
            summary=f"{customer}: low engagement",
            at=datetime(2026, 3, 2, tzinfo=UTC),
            labels={"customer": customer, "action": "training_outreach"},
            annotations=annotations,
        )

    ann_acme = action("acme", contact_email="ann@csm.example")
    ann_globex = action("globex", contact_email="ann@csm.example")
    slack_only = action("initech", contact_slack="U0BOB")
    nobody = action("hooli")  # no CSM on record: the team's notice channels, as any notice
    assert default.channels_for("low", [ann_acme]) == ["contact"]
    assert default.channels_for("low", [slack_only]) == ["contact"]
    assert default.channels_for("low", [nobody]) == ["slack"]
    # Two customers of one CSM are two groups; a notice without a CSM is in neither.
    groups = {default.group_id(t) for t in (ann_acme, ann_globex, nobody)}
    assert len(groups) == 3
    assert default.group_labels(ann_acme)["customer"] == "acme"
    copied = default.model_copy(update={"personal_notices": PersonalNotices(copy_to=["slack"])})
    assert copied.channels_for("low", [ann_acme]) == ["contact", "slack"]
    assert "contact" in default.all_channels()
    with pytest.raises(ValueError, match="copy_to lists team channels"):
        PersonalNotices.model_validate({"copy_to": ["contact"]})


def test_a_reassigned_customer_s_next_notice_goes_to_its_new_csm(fanout: Fanout) -> None:
    from functions.health import registry
    from functions.health.config import load_config
    from functions.health.models import CustomerIn, CustomerPatch
    from functions.health.run import run_health
    from functions.health.settings import DEFAULT_CONFIG_FILE
    from functions.health.store import FirestoreHealthStore
    from functions.health.usage import MemoryUsage

    clock = fanout.freeze()
    old = clock.now() - timedelta(days=400)
    registry.create_customer(
        CustomerIn.model_validate(
            {"id": "acme", "name": "Acme", "contact": "ann@csm.example", "created_at": old}
        )
    )
    # What PATCH /v1/customers/acme {"contact": ...} does.
    registry.update_customer("acme", CustomerPatch.model_validate({"contact": {"email": "bob@csm.example"}}))
    run_health(
        clock.now().date(),
        cfg=load_config(DEFAULT_CONFIG_FILE),
        usage_source=MemoryUsage(usage={}),
        store=FirestoreHealthStore(),
        publish=fanout.push,
    )
    clock.advance(timedelta(seconds=31))
    fanout.tick()
    assert fanout.smtp.envelopes
    assert {tuple(e[1]) for e in fanout.smtp.envelopes} == {("bob@csm.example",)}
