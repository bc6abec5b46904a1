"""Slack through slack-sdk's WebClient (``SLACK_API_BASE_URL`` moves it to a stand-in).

Firing alerts of a notification are one ``chat.postMessage`` in Block Kit (severity, summary,
value against threshold, runbook steps, links to the dashboard and the silence API), with the
route's mention. The message's channel and ``ts`` are stored per alert fingerprint in Firestore,
so that the alert's resolve is posted in that message's thread and the message itself is
re-rendered with ``chat.update`` to show it resolved; a repeat ("still firing") goes in the
thread too, broadcast to the channel.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from functions.fanout.channels.base import DeliveryError, Retrier, parse_retry_after
from functions.fanout.channels.registry import register, require
from functions.fanout.models import Notification, doc_id, iso, summary_of, value_text
from functions.fanout.records import KEEP
from functions.fanout.records import SLACK_MESSAGES as MESSAGES
from functions.fanout.records import SLACK_THREADS as THREADS
from functions.fanout.settings import FanoutSettings
from shared.clock import utcnow
from shared.firestore import get_firestore
from shared.logging import get_logger
from shared.messages import AlertTransition

if TYPE_CHECKING:
    from slack_sdk import WebClient

EMOJI = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "low": ":white_circle:",
}
MAX_ALERTS_PER_MESSAGE = 10  # Slack allows 50 blocks per message; an alert takes up to 4.
RETRYABLE_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
log = get_logger("fanout.slack")


class ThreadRef(BaseModel):
    fingerprint: str
    channel: str
    ts: str
    message_id: str


def message_doc_id(channel: str, ts: str) -> str:
    return hashlib.sha256(f"{channel}:{ts}".encode()).hexdigest()[:32]


@register("slack", requires=("slack_bot_token", "slack_channel"))
class SlackChannel:
    name = "slack"

    def __init__(self, settings: FanoutSettings, client: WebClient | None = None) -> None:
        require("slack", settings)
        self.settings = settings
        self.channel_id = str(settings.slack_channel)
        if client is None:
            from slack_sdk import WebClient

            base = settings.slack_api_base_url
            client = WebClient(
                token=settings.slack_bot_token,
                base_url=base if base.endswith("/") else base + "/",
                timeout=int(settings.request_timeout_seconds),
                retry_handlers=[],  # our Retrier bounds every retry
            )
        self.client = client

    # --- sending ---------------------------------------------------------------------------

    def send(self, notification: Notification, retrier: Retrier) -> dict[str, Any]:
        receipt: dict[str, Any] = {"posted": [], "threaded": [], "updated": []}
        alerts = notification.alerts[: MAX_ALERTS_PER_MESSAGE * 5]
        refs = self._refs([a.fingerprint for a in alerts])
        if notification.kind == "repeat":
            self._thread_replies(notification, alerts, refs, retrier, receipt, repeat=True)
            return receipt
        firing = [a for a in alerts if a.state == "firing"]
        for start in range(0, len(firing), MAX_ALERTS_PER_MESSAGE):
            chunk = firing[start : start + MAX_ALERTS_PER_MESSAGE]
            ts = self._post_top_level(notification, chunk, retrier, mention=notification.mention)
            self._remember(notification, ts, chunk)
            receipt["posted"].append(ts)
        resolved = [a for a in alerts if a.state == "resolved"]
        self._thread_replies(notification, resolved, refs, retrier, receipt, repeat=False)
        return receipt

    def _post_top_level(
        self,
        notification: Notification,
        alerts: list[AlertTransition],
        retrier: Retrier,
        *,
        mention: str | None,
    ) -> str:
        blocks = render_blocks(notification, alerts, self.settings, mention=mention)
        text = fallback_text(notification, alerts, mention)
        response = retrier.call(
            "slack chat.postMessage",
            lambda: self._api(
                "chat_postMessage", channel=self.channel_id, text=text, blocks=blocks, unfurl_links=False
            ),
        )
        return str(response["ts"])

    def _thread_replies(
        self,
        notification: Notification,
        alerts: list[AlertTransition],
        refs: dict[str, ThreadRef],
        retrier: Retrier,
        receipt: dict[str, Any],
        *,
        repeat: bool,
    ) -> None:
        by_parent: dict[str, list[AlertTransition]] = defaultdict(list)
        orphans: list[AlertTransition] = []
        for alert in alerts:
            ref = refs.get(alert.fingerprint)
            (by_parent[ref.message_id] if ref else orphans).append(alert)
        for message_id, chunk in by_parent.items():
            ref = refs[chunk[0].fingerprint]
            mention = notification.mention if repeat else None
            blocks = render_blocks(notification, chunk, self.settings, mention=mention)
            text = fallback_text(notification, chunk, mention)
            retrier.call(
                "slack chat.postMessage (thread)",
                lambda ref=ref, blocks=blocks, text=text: self._api(
                    "chat_postMessage",
                    channel=ref.channel,
                    thread_ts=ref.ts,
                    text=text,
                    blocks=blocks,
                    reply_broadcast=repeat,
                    unfurl_links=False,
                ),
            )
            receipt["threaded"].append(ref.ts)
            if not repeat:
                self._update_parent(message_id, ref, chunk, retrier)
                receipt["updated"].append(ref.ts)
        if orphans:
            # The firing message is unknown (sent before Slack was configured, or dead-lettered).
            ts = self._post_top_level(
                notification, orphans, retrier, mention=notification.mention if repeat else None
            )
            receipt["posted"].append(ts)

    def _update_parent(
        self, message_id: str, ref: ThreadRef, resolved: list[AlertTransition], retrier: Retrier
    ) -> None:
        doc = get_firestore().collection(MESSAGES).document(message_id)
        stored = doc.get().to_dict()
        if not stored:
            return
        alerts = {
            key: AlertTransition.model_validate(raw) for key, raw in (stored.get("alerts") or {}).items()
        }
        for alert in resolved:
            alerts[doc_id(alert.fingerprint)] = alert
        ordered = list(alerts.values())
        parent = Notification.model_validate({**stored["notification"], "alerts": ordered})
        blocks = render_blocks(parent, ordered, self.settings, mention=None)
        text = fallback_text(parent, ordered, None)
        retrier.call(
            "slack chat.update",
            lambda: self._api("chat_update", channel=ref.channel, ts=ref.ts, text=text, blocks=blocks),
        )
        doc.update({"alerts": {key: a.model_dump(mode="json") for key, a in alerts.items()}})

    def _api(self, method: str, **kwargs: Any) -> Any:
        from slack_sdk.errors import SlackApiError, SlackRequestError

        try:
            return getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            response = exc.response
            error = str(response.get("error") if hasattr(response, "get") else "") or "unknown_error"
            status = int(getattr(response, "status_code", 0) or 0)
            headers = getattr(response, "headers", {}) or {}
            retry_after = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
            retryable = status == 429 or status >= 500 or error in RETRYABLE_ERRORS
            raise DeliveryError(
                f"Slack {method} answered {status} {error}", retryable=retryable, retry_after=retry_after
            ) from None
        except (SlackRequestError, OSError) as exc:
            raise DeliveryError(f"Slack {method} request failed: {exc}", retryable=True) from None

    # --- thread references -----------------------------------------------------------------

    def _refs(self, fingerprints: list[str]) -> dict[str, ThreadRef]:
        if not fingerprints:
            return {}
        client = get_firestore()
        refs = [client.collection(THREADS).document(doc_id(fp)) for fp in dict.fromkeys(fingerprints)]
        found: dict[str, ThreadRef] = {}
        for snapshot in client.get_all(refs):
            if snapshot.exists:
                ref = ThreadRef.model_validate(snapshot.to_dict())
                found[ref.fingerprint] = ref
        return found

    def _remember(self, notification: Notification, ts: str, alerts: list[AlertTransition]) -> None:
        # Stored with the message as first rendered, so chat.update can re-render it later.
        client = get_firestore()
        message_id = message_doc_id(self.channel_id, ts)
        batch = client.batch()
        batch.set(
            client.collection(MESSAGES).document(message_id),
            {
                "channel": self.channel_id,
                "ts": ts,
                "notification": notification.model_dump(mode="json", exclude={"alerts"}),
                "alerts": {doc_id(a.fingerprint): a.model_dump(mode="json") for a in alerts},
                "expire_at": utcnow() + KEEP,
            },
        )
        for alert in alerts:
            batch.set(
                client.collection(THREADS).document(doc_id(alert.fingerprint)),
                {
                    **ThreadRef(
                        fingerprint=alert.fingerprint, channel=self.channel_id, ts=ts, message_id=message_id
                    ).model_dump(),
                    "expire_at": utcnow() + KEEP,
                },
            )
        batch.commit()


# --- rendering -------------------------------------------------------------------------------


def escape_mrkdwn(text: str) -> str:
    """A value shown as itself in mrkdwn: Slack reads ``<...>`` as mentions (``<!channel>``,
    ``<@U123>``) and links, so ``&``, ``<`` and ``>`` are sent as Slack documents it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fallback_text(notification: Notification, alerts: list[AlertTransition], mention: str | None) -> str:
    head = notification.title() if notification.kind == "repeat" else _title_for(notification, alerts)
    head = escape_mrkdwn(head)  # the text is mrkdwn too (notifications, clients without blocks)
    lines = [f"{mention} {head}" if mention else head]
    lines += [
        f"• {a.state.upper()}: {escape_mrkdwn(summary_of(a))} — {escape_mrkdwn(value_text(a))}"
        for a in alerts
    ]
    return _clip("\n".join(lines), 3000)


def _title_for(notification: Notification, alerts: list[AlertTransition]) -> str:
    sub = notification.model_copy(update={"alerts": alerts})
    return sub.title()


def render_blocks(
    notification: Notification,
    alerts: list[AlertTransition],
    settings: FanoutSettings,
    *,
    mention: str | None,
) -> list[dict[str, Any]]:
    all_resolved = all(a.state == "resolved" for a in alerts)
    emoji = ":white_check_mark:" if all_resolved else EMOJI.get(notification.severity, "")
    title = notification.title() if notification.kind == "repeat" else _title_for(notification, alerts)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(f"{emoji} {title}", 150), "emoji": True},
        }
    ]
    if mention:
        note = "still firing, please acknowledge" if notification.kind == "repeat" else "please take a look"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{mention} {note}"}})
    for alert in alerts[:MAX_ALERTS_PER_MESSAGE]:
        state = ":white_check_mark: *RESOLVED*" if alert.state == "resolved" else "*FIRING*"
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _clip(f"{state} {escape_mrkdwn(summary_of(alert))}", 3000),
                },
                "fields": [
                    {"type": "mrkdwn", "text": f"*Severity*\n{escape_mrkdwn(alert.severity)}"},
                    {"type": "mrkdwn", "text": f"*Value*\n{escape_mrkdwn(value_text(alert))}"},
                    {
                        "type": "mrkdwn",
                        "text": f"*Service*\n{escape_mrkdwn(alert.labels.get('service', '-'))}",
                    },
                    {"type": "mrkdwn", "text": f"*Region*\n{escape_mrkdwn(alert.labels.get('region', '-'))}"},
                    {"type": "mrkdwn", "text": f"*Started*\n{iso(alert.starts_at)}"},
                    {"type": "mrkdwn", "text": f"*Rule*\n`{escape_mrkdwn(alert.rule)}`"},
                ],
            }
        )
        if alert.state == "resolved":
            blocks.append(
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": f"Resolved at {iso(alert.ends_at or alert.evaluated_at)}"}
                    ],
                }
            )
        elif alert.runbook:
            steps = "\n".join(f"{i}. {escape_mrkdwn(step)}" for i, step in enumerate(alert.runbook, 1))
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Runbook*\n{steps}", 3000)}}
            )
    if len(alerts) > MAX_ALERTS_PER_MESSAGE:
        more = len(alerts) - MAX_ALERTS_PER_MESSAGE
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {more} more"}]})
    first = alerts[0]
    dashboard = first.dashboard_url or settings.dashboard_url
    silences = settings.public_url.rstrip("/") + "/v1/silences"
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Dashboard"},
                    "url": dashboard,
                    "action_id": "dashboard",
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Silences"},
                    "url": silences,
                    "action_id": "silences",
                },
            ],
        }
    )
    matchers = (
        ", ".join(f'{{"name": "{k}", "value": "{v}"}}' for k, v in notification.group_labels.items() if v)
        or f'{{"name": "rule", "value": "{first.rule}"}}'
    )
    matchers = escape_mrkdwn(matchers)
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": _clip(
                        f"Silence: `POST {silences}` with matchers [{matchers}], endsAt, createdBy, comment",
                        3000,
                    ),
                }
            ],
        }
    )
    return blocks
