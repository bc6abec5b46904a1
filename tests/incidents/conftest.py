"""Incident tests run on the fan-out rig (tests/fanout/conftest.py): its stand-ins, emulators and
apps, plus the secrets that sign Slack's and PagerDuty's requests, and helpers that sign them."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from functions.fanout.webhook_auth import pagerduty_signature, slack_signature
from tests.fanout.conftest import (  # noqa: F401 - fixtures used by these tests
    Fanout,
    fanout,
    pagerduty,
    reset_fanout_caches,
    slack,
    smtp,
    without_escalation,
)

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PAGERDUTY_SECRET = "ChNFWnhYb3JBUzBsZW5FUk5xUVdqSmhTYz"


@pytest.fixture
def incidents(fanout: Fanout) -> Iterator[Fanout]:  # noqa: F811 - the imported fixture
    os.environ.update({"SLACK_SIGNING_SECRET": SLACK_SECRET, "PAGERDUTY_WEBHOOK_SECRET": PAGERDUTY_SECRET})
    reset_fanout_caches()
    yield fanout
    for name in ("SLACK_SIGNING_SECRET", "PAGERDUTY_WEBHOOK_SECRET"):
        os.environ.pop(name, None)
    reset_fanout_caches()


def slack_request(
    payload: dict[str, Any], *, at: float | None = None, secret: str = SLACK_SECRET
) -> tuple[bytes, dict[str, str]]:
    """An interactivity request as Slack sends it: form body payload=<json>, signed."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(at if at is not None else time.time()))
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": slack_signature(secret, timestamp, body),
    }


def block_action(
    fanout: Fanout,  # noqa: F811 - the rig, not the fixture
    action_id: str,
    incident_id: str,
    *,
    user: str = "U024BE7LH",
    name: str = "ada",
) -> dict[str, Any]:
    """A block_actions payload for the top-level message of the incident in the Slack stand-in."""
    message = fanout.slack.top_level()[0]
    return {
        "type": "block_actions",
        "user": {"id": user, "username": name, "name": name, "team_id": "T0001"},
        "team": {"id": "T0001", "domain": "ion"},
        "api_app_id": "A0001",
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
        "channel": {"id": message.channel, "name": "alerts"},
        "message": {"ts": message.ts, "text": message.text, "blocks": message.blocks},
        "response_url": "https://hooks.slack.com/actions/T0001/1/abc",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "ion_incident",
                "value": incident_id,
                "action_ts": str(time.time()),
            }
        ],
    }


def pagerduty_request(
    event_type: str,
    incident_key: str,
    *,
    event_id: str = "01DEN4HPBQAAAG05V5QQYBRZMF",
    occurred_at: str | None = None,
    agent: str = "Grace Hopper",
    secrets: tuple[str, ...] = (PAGERDUTY_SECRET,),
) -> tuple[bytes, dict[str, str]]:
    """A v3 webhook as PagerDuty sends it, signed with each of ``secrets`` (rotation)."""
    from datetime import UTC, datetime

    from shared.clock import utcnow

    occurred = occurred_at or utcnow().astimezone(UTC).isoformat().replace("+00:00", "Z")
    body = json.dumps(
        {
            "event": {
                "id": event_id,
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": occurred,
                "agent": {"id": "PLH1HKV", "summary": agent, "type": "user_reference"},
                "client": None,
                "data": {
                    "id": "PGR0VU2",
                    "type": "incident",
                    "number": 2,
                    "status": event_type.removeprefix("incident."),
                    "incident_key": incident_key,
                    "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                    "title": "p95-latency on persona-router",
                    "created_at": datetime.now(UTC).isoformat(),
                },
            }
        }
    ).encode()
    signature = ",".join(pagerduty_signature(secret, body) for secret in secrets)
    return body, {"Content-Type": "application/json", "X-PagerDuty-Signature": signature}
