"""PagerDuty as Alertmanager drives it, through the pipeline on the emulators: one PagerDuty
incident per alert group's incident (``dedup_key`` = the incident's id), a ``trigger`` per
notification while any alert of the group fires, one ``resolve`` when the last one resolves;
repeats and escalations re-trigger the same key. An incident the previous version opened (one
PagerDuty incident per alert) stays per alert to its end."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fanout.conftest import Fanout, make_transition, routing_file

pytestmark = pytest.mark.emulators


def actions(fanout: Fanout) -> list[tuple[str, str]]:
    return [(e["event_action"], e["dedup_key"]) for e in fanout.pagerduty.events]


def incident_ids(fanout: Fanout) -> list[str]:
    return [i["id"] for i in fanout.http().get("/v1/incidents").get_json()]


def alerts_of(fanout: Fanout, count: int, state: str = "firing", **labels: Any) -> list[Any]:
    assert fanout.clock is not None
    return [
        make_transition(severity="critical", endpoint=f"/e{i}", state=state, at=fanout.clock.now(), **labels)
        for i in range(count)
    ]


def flush_all(fanout: Fanout, pushed: list[Any]) -> None:
    for alert in pushed:
        assert fanout.push(alert) == 200
    fanout.advance(timedelta(minutes=1))  # group_interval: the rest of them, together
    fanout.tick()


def test_a_group_is_one_pagerduty_incident_resolved_only_when_its_last_alert_resolves(
    fanout: Fanout,
) -> None:
    fanout.freeze()
    flush_all(fanout, alerts_of(fanout, 3))
    [key] = incident_ids(fanout)
    assert actions(fanout) == [("trigger", key), ("trigger", key)]  # the first at once, then the two
    last = fanout.pagerduty.events[-1]["payload"]
    assert last["summary"].startswith("[FIRING:3] p95-latency (")
    assert "service=persona-router" in last["summary"]
    assert last["custom_details"]["firing"] == 3
    assert [a["fingerprint"] for a in last["custom_details"]["alerts"]] == [
        a.fingerprint for a in alerts_of(fanout, 3)[1:]
    ]

    fanout.advance(timedelta(minutes=5))
    flush_all(fanout, alerts_of(fanout, 2, state="resolved"))  # two of three: no resolve
    assert {action for action, _ in actions(fanout)} == {"trigger"}
    assert fanout.pagerduty.events[-1]["payload"]["summary"].startswith("[FIRING:1] ")
    assert [i.dedup_key for i in fanout.pagerduty.open_incidents()] == [key]

    fanout.advance(timedelta(minutes=5))
    flush_all(fanout, alerts_of(fanout, 3, state="resolved")[2:])  # the last one: one resolve
    assert actions(fanout)[-1] == ("resolve", key)
    assert [a for a, _ in actions(fanout)].count("resolve") == 1
    assert {k for _, k in actions(fanout)} == {key}
    assert fanout.pagerduty.open_incidents() == []
    assert len(fanout.pagerduty.incidents) == 1


def test_escalations_and_repeats_re_trigger_the_groups_key(fanout: Fanout) -> None:
    clock = fanout.freeze()
    flush_all(fanout, alerts_of(fanout, 2))
    [key] = incident_ids(fanout)
    clock.advance(timedelta(minutes=15))  # respond_by: level 1 re-pages PagerDuty
    fanout.tick()
    clock.advance(timedelta(minutes=15))  # the 30-minute repeat (and level 2)
    fanout.tick()
    summaries = [e["payload"]["summary"] for e in fanout.pagerduty.events]
    assert any(s.startswith("ESCALATED (level 1), NOT ACKNOWLEDGED: [FIRING:2] ") for s in summaries)
    assert any(s.startswith("STILL FIRING: [FIRING:2] ") for s in summaries), summaries
    assert {k for _, k in actions(fanout)} == {key}
    [incident] = fanout.pagerduty.incidents
    assert incident.triggers == len(fanout.pagerduty.events) >= 4  # appended to the one incident


def test_an_incident_the_previous_version_opened_stays_per_alert_and_the_next_one_is_the_groups(
    fanout: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opened before the deploy: PagerDuty holds one incident per alert, by fingerprint. Its alerts
    joining and resolving after the deploy still go per alert and close those incidents; the
    group's next incident is one PagerDuty incident."""
    from functions.fanout import incidents

    fanout.freeze()
    with monkeypatch.context() as previous:
        previous.setattr(incidents, "opened_key", lambda *_args, **_kwargs: None, raising=False)
        flush_all(fanout, alerts_of(fanout, 2))
    fingerprints = [a.fingerprint for a in alerts_of(fanout, 3)]
    assert actions(fanout) == [("trigger", fingerprints[0]), ("trigger", fingerprints[1])]

    fanout.advance(timedelta(minutes=2))  # after the deploy: a third alert joins the old incident
    flush_all(fanout, alerts_of(fanout, 3)[2:])
    assert actions(fanout)[-1] == ("trigger", fingerprints[2])
    fanout.advance(timedelta(minutes=2))
    flush_all(fanout, alerts_of(fanout, 3, state="resolved"))
    assert sorted(k for a, k in actions(fanout) if a == "resolve") == sorted(fingerprints)
    assert fanout.pagerduty.open_incidents() == []
    [old] = incident_ids(fanout)

    fanout.advance(timedelta(minutes=10))  # the group fires again: a new incident, the group's
    flush_all(fanout, alerts_of(fanout, 3))
    new = next(i for i in incident_ids(fanout) if i != old)
    assert actions(fanout)[-2:] == [("trigger", new), ("trigger", new)]
    assert [i.dedup_key for i in fanout.pagerduty.open_incidents()] == [new]


def resolved_now(fanout: Fanout, endpoint: str) -> Any:
    assert fanout.clock is not None
    return make_transition(severity="critical", endpoint=endpoint, state="resolved", at=fanout.clock.now())


def test_a_late_redriven_trigger_never_reopens_the_incident_a_later_resolve_closed(fanout: Fanout) -> None:
    """A notification (one alert resolved, another firing) whose PagerDuty delivery was dead-
    lettered, re-driven after the group's last alert resolved and PagerDuty's incident closed: it
    tells PagerDuty the group as it is now (nothing fires: a resolve it already holds), not the
    two alerts firing it counted when it was made."""
    clock = fanout.freeze()
    flush_all(fanout, alerts_of(fanout, 2))
    [key] = incident_ids(fanout)
    fanout.pagerduty.fail_for[key] = 503
    # Within the group_interval of the last notification: the two are one notification.
    third = make_transition(severity="critical", endpoint="/e9", at=clock.now())
    for alert in (resolved_now(fanout, "/e0"), third):
        assert fanout.push(alert) == 200
    fanout.advance(timedelta(minutes=1))
    fanout.tick()
    [letter] = [d for d in fanout.dead_letters(expect=1) if d["data"]["channel"] == "pagerduty"]
    assert letter["data"]["notification"]["group_firing"] == 2

    del fanout.pagerduty.fail_for[key]
    for endpoint in ("/e1", "/e9"):
        assert fanout.push(resolved_now(fanout, endpoint)) == 200
    fanout.advance(timedelta(minutes=1))
    fanout.tick()
    assert actions(fanout)[-1] == ("resolve", key)
    assert fanout.pagerduty.open_incidents() == []

    assert fanout.redrive(letter, redrives=1) == 200
    assert fanout.pagerduty.open_incidents() == []
    assert actions(fanout)[-1] == ("resolve", key)


def test_an_unfinished_trigger_taken_up_after_the_group_resolved_does_not_reopen_it(
    fanout: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for a notification whose instance died before PagerDuty had it: the flush tick
    delivers it again two minutes on, after the group's resolve went out."""
    from functions.fanout.channels.pagerduty import PagerDutyChannel

    clock = fanout.freeze()
    flush_all(fanout, alerts_of(fanout, 2))
    [key] = incident_ids(fanout)
    with monkeypatch.context() as dying:
        dying.setattr(
            PagerDutyChannel, "send", lambda *_: (_ for _ in ()).throw(RuntimeError("instance died"))
        )
        third = make_transition(severity="critical", endpoint="/e9", at=clock.now())
        for alert in (resolved_now(fanout, "/e0"), third):
            assert fanout.push(alert) == 200
        fanout.advance(timedelta(minutes=1))
        assert fanout.tick()["errors"] == 1
    for endpoint in ("/e1", "/e9"):
        assert fanout.push(resolved_now(fanout, endpoint)) == 200
    fanout.advance(timedelta(minutes=1))
    fanout.tick()
    assert actions(fanout)[-1] == ("resolve", key)

    fanout.advance(timedelta(minutes=2))  # past ION_FANOUT_REDRIVE_AFTER_SECONDS
    assert fanout.tick()["redriven"]
    assert fanout.pagerduty.open_incidents() == []
    assert actions(fanout)[-1] == ("resolve", key)


def test_a_late_event_of_a_group_without_incident_keeps_the_key_an_on_demand_incident_took(
    fanout: Fanout, tmp_path: Path
) -> None:
    """Medium alerts routed to PagerDuty open no incident of ours: their group's key is the group
    id, which an incident opened on demand takes over. A delivery re-driven after that still counts
    the group's firing alerts (a trigger), not none (a resolve closing what is on fire)."""
    paging = {"name": "db-pages", "matchers": [{"name": "service", "value": "db"}], "channels": ["pagerduty"]}
    with routing_file(tmp_path / "routing.yaml", routes=[paging]):
        clock = fanout.freeze()
        alerts = [
            make_transition(severity="medium", service="db", endpoint=f"/q{i}", at=clock.now())
            for i in range(2)
        ]
        fanout.pagerduty.fail_status = 503
        flush_all(fanout, alerts)
        [letter, *_] = [d for d in fanout.dead_letters(expect=1) if d["data"]["channel"] == "pagerduty"]
        group_id = letter["data"]["notification"]["group_id"]
        fanout.pagerduty.fail_status = None
        opened = fanout.http().post("/v1/incidents", json={"group_id": group_id, "note": "db slow"})
        assert opened.status_code == 201, opened.get_data(as_text=True)
        assert fanout.redrive(letter, redrives=1) == 200
    assert actions(fanout) == [("trigger", group_id)]
    assert [i.dedup_key for i in fanout.pagerduty.open_incidents()] == [group_id]
