"""Slack and PagerDuty as the webhook handlers take their requests: the setting holding the secret
a request is verified with, the headers carrying its signature, how it is taken in
(``webhook_intake``) and how a body it cannot read is answered. No HTTP: ``main.py`` reads the raw
body and answers. A vendor's modules are imported when one of its requests arrives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar


class WebhookVendor(ABC):
    name: ClassVar[str]  # as a refusal is logged: "refused a Slack request"
    secret_variable: ClassVar[str]  # the setting (environment variable) holding the signing secret
    unreadable_detail: ClassVar[str] = "{}"  # the 400 answer to a body the intake cannot read

    @abstractmethod
    def secret(self) -> str | None: ...

    @abstractmethod
    def unreadable(self) -> type[Exception]:
        """The error the intake raises for a body it cannot read."""

    @abstractmethod
    def take(self, secret: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """What the request did; raises ``webhook_auth.Unverified`` or ``unreadable()``."""


class _Slack(WebhookVendor):
    name = "Slack"
    secret_variable = "SLACK_SIGNING_SECRET"
    unreadable_detail = "Not a Slack interaction we can read: {}."

    def secret(self) -> str | None:
        from functions.fanout.settings import get_fanout_settings

        return get_fanout_settings().slack_signing_secret

    def unreadable(self) -> type[Exception]:
        from functions.fanout.slack_interactions import BadInteraction

        return BadInteraction

    def take(self, secret: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        from functions.fanout.webhook_intake import take_slack_interaction

        timestamp = headers.get("X-Slack-Request-Timestamp")
        return take_slack_interaction(secret, timestamp, headers.get("X-Slack-Signature"), body)


class _PagerDuty(WebhookVendor):
    name = "PagerDuty"
    secret_variable = "PAGERDUTY_WEBHOOK_SECRET"

    def secret(self) -> str | None:
        from functions.fanout.settings import get_fanout_settings

        return get_fanout_settings().pagerduty_webhook_secret

    def unreadable(self) -> type[Exception]:
        from functions.fanout.pagerduty_webhooks import BadWebhook

        return BadWebhook

    def take(self, secret: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        from functions.fanout.webhook_intake import take_pagerduty_webhook

        return take_pagerduty_webhook(secret, headers.get("X-PagerDuty-Signature"), body)


SLACK = _Slack()
PAGERDUTY = _PagerDuty()
