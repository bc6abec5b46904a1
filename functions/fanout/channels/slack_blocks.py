"""Slack Block Kit rendering of a notification's alerts: the message's blocks and its fallback
text, every value escaped so it shows as itself in mrkdwn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.fanout.models import Notification, iso, summary_of, value_text
from functions.fanout.settings import FanoutSettings
from shared.messages import AlertTransition

EMOJI = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "low": ":white_circle:",
}
MAX_ALERTS_PER_MESSAGE = 10  # Slack allows 50 blocks per message; an alert takes up to 4.
MAX_ALERTS_SHOWN = MAX_ALERTS_PER_MESSAGE * 5  # messages (or replies) per notification


@dataclass(frozen=True)
class Omitted:
    """What a notification's messages leave out: ``not_shown`` of the group's alerts, of which
    ``marked_resolved`` resolved alerts whose own messages are marked resolved all the same."""

    not_shown: int = 0
    marked_resolved: int = 0

    def text(self, cut: int) -> str:
        """The note for a message that also cut ``cut`` of its own alerts ("" when nothing is)."""
        more = cut + self.not_shown
        if not more:
            return ""
        if self.not_shown and self.marked_resolved:
            return (
                f"and {more} more not shown ({self.marked_resolved} of them resolved: "
                "each one's own message is marked resolved)"
            )
        return f"and {more} more not shown"


NOTHING_OMITTED = Omitted()


# The incident's buttons (answered by POST /v1/slack/interactions); the block is found by its id
# when the message is updated after an action.
INCIDENT_BLOCK_ID = "ion_incident"
ACK_ACTION = "ion_ack"
SILENCE_ACTION = "ion_silence_1h"
RESOLVE_ACTION = "ion_resolve"


def incident_buttons(incident_id: str, *, acknowledged: bool = False) -> dict[str, Any]:
    """Acknowledge (unless acknowledged), Silence 1 h and Resolve, each valued the incident id."""
    elements: list[dict[str, Any]] = []
    if not acknowledged:
        elements.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Acknowledge"},
                "style": "primary",
                "action_id": ACK_ACTION,
                "value": incident_id,
            }
        )
    elements.append(
        {
            "type": "button",
            "text": {"type": "plain_text", "text": "Silence 1 h"},
            "action_id": SILENCE_ACTION,
            "value": incident_id,
        }
    )
    elements.append(
        {
            "type": "button",
            "text": {"type": "plain_text", "text": "Resolve"},
            "style": "danger",
            "action_id": RESOLVE_ACTION,
            "value": incident_id,
            "confirm": {
                "title": {"type": "plain_text", "text": "Resolve the incident?"},
                "text": {"type": "mrkdwn", "text": "Its alerts stay as they are; the incident is closed."},
                "confirm": {"type": "plain_text", "text": "Resolve"},
                "deny": {"type": "plain_text", "text": "Cancel"},
            },
        }
    )
    return {"type": "actions", "block_id": INCIDENT_BLOCK_ID, "elements": elements}


def escape_mrkdwn(text: str) -> str:
    """A value shown as itself in mrkdwn: Slack reads ``<...>`` as mentions (``<!channel>``,
    ``<@U123>``) and links, so ``&``, ``<`` and ``>`` are sent as Slack documents it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    """``text`` in ``limit`` characters; cut before an entity (``&lt;``) rather than inside it,
    which Slack would show half (escaped mrkdwn; a plain-text header may lose a few more)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&", len(cut) - 4)
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _field(name: str, value: str) -> dict[str, str]:
    """One field of an alert's section; Slack refuses a field text over 2000 characters."""
    return {"type": "mrkdwn", "text": _clip(f"*{name}*\n{value}", 2000)}


def fallback_text(notification: Notification, alerts: list[AlertTransition], mention: str | None) -> str:
    head = notification.title() if notification.reminder else _title_for(notification, alerts)
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
    omitted: Omitted = NOTHING_OMITTED,
) -> list[dict[str, Any]]:
    """The message's blocks; ``omitted`` says what no message of this notification shows (beyond
    what Slack messages can hold), said with those of ``alerts`` cut."""
    all_resolved = all(a.state == "resolved" for a in alerts)
    emoji = ":white_check_mark:" if all_resolved else EMOJI.get(notification.severity, "")
    title = notification.title() if notification.reminder else _title_for(notification, alerts)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(f"{emoji} {title}", 150), "emoji": True},
        }
    ]
    if mention:
        note = "still firing, please acknowledge" if notification.reminder else "please take a look"
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
                    _field("Severity", escape_mrkdwn(alert.severity)),
                    _field("Value", escape_mrkdwn(value_text(alert))),
                    _field("Service", escape_mrkdwn(alert.labels.get("service", "-"))),
                    _field("Region", escape_mrkdwn(alert.labels.get("region", "-"))),
                    _field("Started", iso(alert.starts_at)),
                    _field("Rule", f"`{escape_mrkdwn(alert.rule)}`"),
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
    if more := omitted.text(max(0, len(alerts) - MAX_ALERTS_PER_MESSAGE)):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
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
    if notification.incident_id and any(a.state == "firing" for a in alerts):
        blocks.append(incident_buttons(notification.incident_id))
    if notification.review_url and all_resolved:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*Post-incident review draft*: <{notification.review_url}|open the draft>",
                },
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
