"""The contact channel: a personal notice (a customer success action) to the one person it names,
never to the team's lists. Mail to its ``contact_email`` (``SMTP_HOST``, from
``ALERT_EMAIL_FROM``), rendered from ``templates/customer_notice.*.j2``: the customer's score,
category, components, what moved it, the playbook and a link to the customer's page; and, when it
names a Slack user or channel id in ``contact_slack`` and ``SLACK_BOT_TOKEN`` is set, the same as a
Slack message to that id (a user id is a direct message from the app).

Routing (``personal_notices``) groups personal notices by customer, so a notification here is one
customer's. Each vendor call is a journal step, so a retry never mails or posts twice. A notice
naming neither a plain address nor a Slack id is given up (dead-lettered, never sent to the team).
"""

from __future__ import annotations

import hashlib
import re
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from functions.fanout.channels.base import DeliveryError, DeliveryFailed, Retrier, parse_retry_after, step_key
from functions.fanout.channels.email import render, subject_line, valid_address
from functions.fanout.channels.registry import register, require
from functions.fanout.channels.slack_blocks import escape_mrkdwn
from functions.fanout.models import Notification
from functions.fanout.settings import FanoutSettings
from shared.logging import get_logger
from shared.messages import AlertTransition
from shared.notices import is_personal, recipient_of, slack_recipient_of

log = get_logger("fanout.contact")
SLACK_ID = re.compile(r"^[A-Z0-9]{2,30}$")  # U…, W… (users), C…, G… (channels)
RETRYABLE_SLACK_ERRORS = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}


def subject_of(notices: list[AlertTransition]) -> str:
    first = notices[0].annotations
    customer = first.get("customer_name") or notices[0].labels.get("customer", "")
    if len(notices) == 1:
        title = first.get("title") or notices[0].rule
        return f"{customer}: {title} (score {first.get('score', 'n/a')}, {first.get('category', 'n/a')})"
    return f"{customer}: {len(notices)} success actions"


def slack_blocks(notices: list[AlertTransition]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": subject_of(notices)[:150]}}
    ]
    for notice in notices[:8]:
        a = notice.annotations
        lines = [
            f"*{escape_mrkdwn(a.get('title') or notice.rule)}*: {escape_mrkdwn(a.get('reason', ''))}",
            f"*Score* {escape_mrkdwn(a.get('score', 'n/a'))} ({escape_mrkdwn(a.get('category', 'n/a'))}), "
            f"before: {escape_mrkdwn(a.get('previous', 'n/a'))}",
            f"*What moved it*: {escape_mrkdwn(a.get('moved', 'n/a'))}",
            "*Components*:\n" + escape_mrkdwn(a.get("components", "n/a")),
            f"*Playbook*: {escape_mrkdwn(a.get('playbook', ''))}",
        ]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}})
        url = a.get("customer_url") or notice.dashboard_url
        if url and url.startswith(("https://", "http://")):
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Customer page"},
                            "url": url,
                        }
                    ],
                }
            )
    return blocks


@register("contact", requires=("smtp_host",))
class ContactChannel:
    name = "contact"

    def __init__(self, settings: FanoutSettings, slack_client: Any = None) -> None:
        require("contact", settings)
        self.settings = settings
        self.slack_client = slack_client

    def send(self, notification: Notification, retrier: Retrier) -> dict[str, Any]:
        notices = [a for a in notification.alerts if is_personal(a)]
        emails = [r for r in dict.fromkeys(map(recipient_of, notices)) if r and valid_address(r)]
        slack_ids = [
            s for s in dict.fromkeys(map(slack_recipient_of, notices)) if s and SLACK_ID.fullmatch(s)
        ]
        if not emails and not slack_ids:
            raise DeliveryFailed(
                "the notice names no plain email address and no Slack id to send it to", 0, retryable=False
            )
        receipt: dict[str, Any] = {"to": emails, "slack": {}}
        if emails:
            receipt["message_id"] = self._mail(notification, notices, emails, retrier)
        for slack_id in slack_ids:
            receipt["slack"][slack_id] = self._slack(notification, notices, slack_id, retrier)
        return receipt

    # --- mail ------------------------------------------------------------------------------

    def _mail(
        self, notification: Notification, notices: list[AlertTransition], emails: list[str], retrier: Retrier
    ) -> str:
        text, html = render("customer_notice", notices=notices, subject=subject_of(notices))
        message = EmailMessage()
        message["Subject"] = subject_line(subject_of(notices))
        message["From"] = self.settings.alert_email_from
        message["To"] = ", ".join(emails)
        message["Date"] = formatdate(usegmt=True)
        domain = self.settings.alert_email_from.rsplit("@", 1)[-1] or "ion-ops"
        key = f"{notification.notification_id}/contact"
        message["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        retrier.step(step_key("mail", *emails), "smtp send (contact)", lambda: self._smtp(message, emails))
        return str(message["Message-ID"])

    def _smtp(self, message: EmailMessage, recipients: list[str]) -> dict[str, Any]:
        from functions.fanout.channels.email import send_mail

        return send_mail(self.settings, message, recipients)

    # --- Slack -----------------------------------------------------------------------------

    def _slack(
        self, notification: Notification, notices: list[AlertTransition], slack_id: str, retrier: Retrier
    ) -> str:
        if not self.settings.slack_bot_token:
            log.warning(
                "personal notice not posted to Slack: SLACK_BOT_TOKEN is not set",
                extra={"notification_id": notification.notification_id},
            )
            return "not sent: SLACK_BOT_TOKEN is not set"
        blocks = slack_blocks(notices)
        text = escape_mrkdwn(subject_of(notices))
        answer = retrier.step(
            step_key("dm", slack_id, *(a.transition_id for a in notices)),
            "slack chat.postMessage (contact)",
            lambda: {
                "ts": str(self._api(channel=slack_id, text=text, blocks=blocks, unfurl_links=False)["ts"])
            },
        )
        return str(answer["ts"])

    def _client(self) -> Any:
        if self.slack_client is None:
            from slack_sdk import WebClient

            base = self.settings.slack_api_base_url
            self.slack_client = WebClient(
                token=self.settings.slack_bot_token,
                base_url=base if base.endswith("/") else base + "/",
                timeout=int(self.settings.request_timeout_seconds),
                retry_handlers=[],  # our Retrier bounds every retry
            )
        return self.slack_client

    def _api(self, **kwargs: Any) -> Any:
        from slack_sdk.errors import SlackApiError, SlackRequestError

        try:
            return self._client().chat_postMessage(**kwargs)
        except SlackApiError as exc:
            response = exc.response
            error = str(response.get("error") if hasattr(response, "get") else "") or "unknown_error"
            status = int(getattr(response, "status_code", 0) or 0)
            headers = getattr(response, "headers", {}) or {}
            retry_after = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
            retryable = status == 429 or status >= 500 or error in RETRYABLE_SLACK_ERRORS
            raise DeliveryError(
                f"Slack chat.postMessage answered {status} {error}",
                retryable=retryable,
                retry_after=retry_after,
            ) from None
        except (SlackRequestError, OSError) as exc:
            raise DeliveryError(f"Slack chat.postMessage request failed: {exc}", retryable=True) from None
