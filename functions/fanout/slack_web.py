"""The Slack Web API calls made about an incident outside a delivery (a button's echo, a thread
reply, a dialog): the bot token's client, one call whose failure is logged and never raised, a
reply in a message's thread, and a reply in every thread of an incident's messages."""

from __future__ import annotations

from typing import Any

from functions.fanout.settings import get_fanout_settings
from shared.logging import get_logger

log = get_logger("fanout.slack_interactions")


def client() -> Any | None:
    settings = get_fanout_settings()
    if not settings.slack_bot_token:
        return None
    from slack_sdk import WebClient

    base = settings.slack_api_base_url
    return WebClient(
        token=settings.slack_bot_token,
        base_url=base if base.endswith("/") else base + "/",
        timeout=int(settings.request_timeout_seconds),
    )


def call(method: str, **kwargs: Any) -> bool:
    """One Slack call; a failure is logged, never raised: the incident's change is made and
    stored, only its echo in Slack is missing."""
    from slack_sdk.errors import SlackApiError, SlackRequestError

    web = client()
    if web is None:
        log.info("Slack is not configured: %s skipped", method)
        return False
    try:
        getattr(web, method)(**kwargs)
        return True
    except (SlackApiError, SlackRequestError, OSError) as exc:
        log.warning("Slack %s failed: %s", method, exc, extra={"slack_method": method})
        return False


def reply(channel: str | None, ts: str | None, text: str) -> None:
    if channel and ts:
        call("chat_postMessage", channel=channel, thread_ts=ts, text=text)


def reply_to_incident(incident_id: str, text: str) -> None:
    """``text`` in the thread of each Slack message of the incident (``fanout_slack_messages``);
    a failure is logged, never raised."""
    from google.api_core.exceptions import GoogleAPICallError

    from functions.fanout.records import SLACK_MESSAGES, collection, field_filter

    if not get_fanout_settings().slack_bot_token:
        return
    try:
        query = collection(SLACK_MESSAGES).where(
            filter=field_filter("notification.incident_id", "==", incident_id)
        )
        for stored in (snapshot.to_dict() or {} for snapshot in query.stream()):
            reply(stored.get("channel"), stored.get("ts"), text)
    except GoogleAPICallError:
        log.exception("the Slack threads of %s could not be told", incident_id)
