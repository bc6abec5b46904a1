"""One request from Slack or PagerDuty taken in, in the order that keeps a forged or replayed one
from changing anything: its signature verified (``webhook_auth``), a replay refused (a receipt
from ``webhook_receipts``), what it asks done, then its receipt kept. No HTTP: the caller reads
the body and answers ``Unverified`` (a bad signature; from Slack a stale or replayed request too)
with 401 and a body it cannot read (``BadInteraction``, ``BadWebhook``) with 400. PagerDuty retries
every delivery not answered 2xx, and may disable a subscription that keeps failing: a signed event
it sent before, or one over an hour old, is answered as handled with nothing changed."""

from __future__ import annotations

from typing import Any

from functions.fanout.pagerduty_webhooks import handle_webhook, parse_webhook, stale
from functions.fanout.slack_interactions import handle_interaction
from functions.fanout.webhook_auth import Unverified, verify_pagerduty, verify_slack
from functions.fanout.webhook_receipts import handled_before, remember
from shared.clock import utcnow


def take_slack_interaction(
    secret: str, timestamp: str | None, signature: str | None, body: bytes
) -> dict[str, Any]:
    """Slack's interactivity request (form ``payload=<json>``): what its button or dialog did."""
    verify_slack(secret, timestamp, signature, body, utcnow())
    if handled_before("slack", str(signature)):
        raise Unverified("this signed request was handled before (a replay)")
    answer = handle_interaction(body)
    remember("slack", str(signature))
    return answer


def take_pagerduty_webhook(secret: str, signature: str | None, body: bytes) -> dict[str, Any]:
    """PagerDuty's v3 webhook: what its event did to the incident it names."""
    verify_pagerduty(secret, signature, body)
    event = parse_webhook(body)
    if stale(event, utcnow()):
        detail = f"occurred at {event.occurred_at.isoformat()}, over an hour ago: nothing was changed"
        return {"event_id": event.id, "handled": [], "detail": detail}
    if handled_before("pagerduty", event.id):
        detail = "handled before (PagerDuty's retry, or a replay): nothing was changed"
        return {"event_id": event.id, "handled": [], "detail": detail}
    answer = handle_webhook(event)
    remember("pagerduty", event.id)
    return answer
