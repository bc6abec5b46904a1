"""Fan-out test rig: the vendor stand-ins, the fan-out environment pointing at them, the
functions-framework apps of fan_out_alerts and manage_alerts, and a reader of the dead-letter topic."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from shared.clock import FrozenClock, set_clock
from shared.messages import AlertTransition
from shared.topology import ROOT
from tests.conftest import PROJECT
from tests.fanout.pagerduty_standin import PagerDutyStandIn
from tests.fanout.slack_standin import SlackStandIn
from tests.fanout.smtp_standin import SmtpServer
from tests.pubsub_helpers import push_envelope

PUSH_PATH = "/projects/ion-ops-test/topics/alerts"
REDRIVE_PATH = "/projects/ion-ops-test/topics/alert-deliveries"
DEAD_LETTER_TOPIC = "alert-deliveries-dead-letter"


def reset_fanout_caches() -> None:
    from functions.fanout.incident_policy import get_policy
    from functions.fanout.routes import get_routing
    from functions.fanout.settings import get_fanout_settings
    from functions.fanout.timers import reset_timers

    get_fanout_settings.cache_clear()
    get_routing.cache_clear()
    get_policy.cache_clear()
    reset_timers()


@contextlib.contextmanager
def routing_file(path: Path, **changes: Any) -> Iterator[Path]:
    """The shipped routing file with ``changes`` to its top-level keys (``routes=[...]`` for label
    routes) written to ``path`` and in force (``ION_FANOUT_ROUTING_FILE``) while inside."""
    import yaml

    from functions.fanout.settings import DEFAULT_ROUTING_FILE

    path.write_text(yaml.safe_dump({**yaml.safe_load(DEFAULT_ROUTING_FILE.read_text()), **changes}))
    os.environ["ION_FANOUT_ROUTING_FILE"] = str(path)
    reset_fanout_caches()
    try:
        yield path
    finally:
        os.environ.pop("ION_FANOUT_ROUTING_FILE", None)
        reset_fanout_caches()


def make_transition(
    *,
    rule: str = "p95-latency",
    severity: str = "critical",
    state: str = "firing",
    service: str = "persona-router",
    region: str = "us-central1",
    endpoint: str | None = None,
    at: datetime | None = None,
    value: float = 0.25,
    threshold: float = 0.2,
    transition_id: str | None = None,
) -> AlertTransition:
    at = at or datetime.now(UTC)
    labels = {"service": service, "region": region}
    if endpoint:
        labels["endpoint"] = endpoint
    fingerprint = f"{rule}|{severity}|" + "|".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return AlertTransition(
        transition_id=transition_id or f"{fingerprint}:{state}:{at.isoformat()}",
        fingerprint=fingerprint,
        rule=rule,
        kind="threshold",
        state=state,  # type: ignore[arg-type]
        previous_state="pending" if state == "firing" else "firing",
        severity=severity,  # type: ignore[arg-type]
        metric="http.server.request.duration",
        labels=labels,
        annotations={"summary": f"{rule} on {service} in {region}"},
        runbook=["Check the error dashboard", "Roll back the last deploy if it correlates"],
        value=value if state == "firing" else threshold / 2,
        threshold=threshold,
        op=">",
        starts_at=at,
        ends_at=at if state == "resolved" else None,
        evaluated_at=at,
        dashboard_url="http://dashboards.local/d/overview",
    )


@dataclass
class Fanout:
    slack: SlackStandIn
    pagerduty: PagerDutyStandIn
    smtp: SmtpServer
    outbox: Path
    env: dict[str, str]
    dead_letter_subscription: str
    clock: FrozenClock | None = None
    _apps: dict[str, Any] = field(default_factory=dict)

    def app(self, target: str, signature: str) -> Any:
        if target not in self._apps:
            self._apps[target] = functions_framework.create_app(
                target, str(ROOT / "main.py"), signature
            ).test_client()
        return self._apps[target]

    def push(self, transition: AlertTransition, *, message_id: str | None = None) -> int:
        """POST the transition as Pub/Sub pushes it; returns the status (2xx = acked)."""
        now = self.clock.now() if self.clock else datetime.now(UTC)
        envelope = push_envelope(
            transition.model_dump(mode="json"), message_id=message_id or uuid.uuid4().hex, publish_time=now
        )
        return self.app("fan_out_alerts", "cloudevent").post(PUSH_PATH, json=envelope).status_code

    def redrive(self, dead: dict[str, Any], redrives: int) -> int:
        """Push a dead letter (as ``dead_letters`` read it) to redeliver_alerts as the dead-letter
        store re-drives it; returns the status."""
        attributes = {**dead["attributes"], "redrives": str(redrives), "redriven_from": "letter-1"}
        envelope = push_envelope(dead["data"], message_id=f"redrive-{redrives}", attributes=attributes)
        return self.app("redeliver_alerts", "cloudevent").post(REDRIVE_PATH, json=envelope).status_code

    def http(self) -> Any:
        return self.app("manage_alerts", "http")

    def tick(self) -> dict[str, Any]:
        response = self.http().post("/v1/flush")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def advance(self, delta: timedelta) -> None:
        assert self.clock is not None
        self.clock.advance(delta)

    def freeze(self, at: datetime | None = None) -> FrozenClock:
        self.clock = FrozenClock(at or datetime.now(UTC))
        set_clock(self.clock)
        return self.clock

    def dead_letters(self, expect: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        found: list[dict[str, Any]] = []
        try:
            deadline = datetime.now(UTC) + timedelta(seconds=timeout)
            while len(found) < expect and datetime.now(UTC) < deadline:
                response = subscriber.pull(
                    request={"subscription": self.dead_letter_subscription, "max_messages": 10}, timeout=5
                )
                if response.received_messages:
                    subscriber.acknowledge(
                        request={
                            "subscription": self.dead_letter_subscription,
                            "ack_ids": [m.ack_id for m in response.received_messages],
                        }
                    )
                for received in response.received_messages:
                    found.append(
                        {
                            "data": json.loads(received.message.data),
                            "attributes": dict(received.message.attributes),
                        }
                    )
        finally:
            subscriber.close()
        return found

    def outbox_records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.outbox.glob("*.json"))]


def _dead_letter_subscription(project: str) -> str:
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(project, DEAD_LETTER_TOPIC)
    with contextlib.suppress(AlreadyExists):
        publisher.create_topic(name=topic)
    name = subscriber.subscription_path(project, f"dl-{uuid.uuid4().hex[:12]}")
    subscriber.create_subscription(request={"name": name, "topic": topic})
    subscriber.close()
    return name


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    server = SlackStandIn()
    yield server
    server.close()


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyStandIn]:
    server = PagerDutyStandIn()
    yield server
    server.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.close()


def channel_env(
    slack: SlackStandIn, pagerduty: PagerDutyStandIn, smtp: SmtpServer, outbox: Path
) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_CHANNEL": next(iter(slack.channels)),
        "SLACK_API_BASE_URL": slack.base_url,
        "PAGERDUTY_ROUTING_KEY": pagerduty.routing_key,
        "PAGERDUTY_EVENTS_URL": pagerduty.url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "ALERT_EMAIL_FROM": "ion-ops@example.com",
        "ALERT_EMAIL_TO": "oncall@example.com,sre@example.com",
        "ION_FANOUT_OUTBOX": str(outbox),
        "ION_FANOUT_BACKOFF_BASE_SECONDS": "0.05",
        "ION_FANOUT_BACKOFF_MAX_SECONDS": "0.2",
        "ION_FANOUT_RETRY_BUDGET_SECONDS": "6",
        "ION_FANOUT_PUBLIC_URL": "http://fanout.local",
    }


@pytest.fixture
def fanout(fs, slack, pagerduty, smtp, tmp_path) -> Iterator[Fanout]:  # type: ignore[no-untyped-def]
    outbox = tmp_path / "outbox"
    env = channel_env(slack, pagerduty, smtp, outbox)
    os.environ.update(env)
    reset_fanout_caches()
    rig = Fanout(slack, pagerduty, smtp, outbox, env, _dead_letter_subscription(PROJECT))
    yield rig
    reset_fanout_caches()


@pytest.fixture
def without_escalation(fanout: Fanout, tmp_path: Path) -> Iterator[None]:
    """The default incident policy without escalation steps: for tests of the group timers and
    repeats alone (escalation has its tests in tests/incidents)."""
    from functions.fanout.settings import DEFAULT_INCIDENT_POLICY_FILE

    text = DEFAULT_INCIDENT_POLICY_FILE.read_text()
    policy = tmp_path / "incidents-no-escalation.yaml"
    policy.write_text(text[: text.index("\nescalation:")] + "\nescalation: {}\nreview_priorities: [P1, P2]\n")
    os.environ["ION_FANOUT_INCIDENT_POLICY_FILE"] = str(policy)
    reset_fanout_caches()
    yield
    os.environ.pop("ION_FANOUT_INCIDENT_POLICY_FILE", None)
    reset_fanout_caches()
