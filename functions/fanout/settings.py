"""Settings of the fan-out capability, read from the environment once per process.

The channel variables are a public contract (their names are checked from outside): a channel
whose variables are unset is not configured, and its notifications go to the log channel (JSON
log line and a file in the outbox folder) instead.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ROUTING_FILE = Path(__file__).resolve().parent / "routing.yaml"
DEFAULT_INCIDENT_POLICY_FILE = Path(__file__).resolve().parent / "incidents.yaml"


class FanoutSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Slack (slack-sdk WebClient, chat.postMessage / chat.update).
    slack_bot_token: str | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_channel: str | None = Field(default=None, validation_alias="SLACK_CHANNEL")
    slack_api_base_url: str = Field(default="https://slack.com/api/", validation_alias="SLACK_API_BASE_URL")
    # PagerDuty Events API v2.
    pagerduty_routing_key: str | None = Field(default=None, validation_alias="PAGERDUTY_ROUTING_KEY")
    pagerduty_events_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue", validation_alias="PAGERDUTY_EVENTS_URL"
    )
    # Incidents: the policy (priorities, targets, escalation), and the secrets that verify Slack's
    # interactivity requests and PagerDuty's webhooks (POST /v1/slack/interactions,
    # /v1/pagerduty/webhooks). Unset locally: those two routes answer 401 naming the variable.
    incident_policy_file: Path = Field(
        default=DEFAULT_INCIDENT_POLICY_FILE, validation_alias="ION_FANOUT_INCIDENT_POLICY_FILE"
    )
    slack_signing_secret: str | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    pagerduty_webhook_secret: str | None = Field(default=None, validation_alias="PAGERDUTY_WEBHOOK_SECRET")
    # Email over SMTP.
    smtp_host: str | None = Field(default=None, validation_alias="SMTP_HOST")
    smtp_port: int = Field(default=587, gt=0, lt=65536, validation_alias="SMTP_PORT")
    smtp_user: str | None = Field(default=None, validation_alias="SMTP_USER")
    smtp_password: str | None = Field(default=None, validation_alias="SMTP_PASSWORD")
    # Unset: STARTTLS when deployed, plain SMTP locally (aiosmtpd); port 465 is implicit TLS.
    # The certificate is always verified (the system CAs, or SMTP_CA_FILE for a private CA).
    smtp_starttls: bool | None = Field(default=None, validation_alias="SMTP_STARTTLS")
    smtp_ca_file: str | None = Field(default=None, validation_alias="SMTP_CA_FILE")
    alert_email_from: str = Field(default="ion-ops@localhost", validation_alias="ALERT_EMAIL_FROM")
    alert_email_to: str | None = Field(default=None, validation_alias="ALERT_EMAIL_TO")

    # Where the log channel writes one JSON file per notification; empty disables the files.
    outbox_dir: str = Field(default="outbox", validation_alias="ION_FANOUT_OUTBOX")
    routing_file: Path = Field(default=DEFAULT_ROUTING_FILE, validation_alias="ION_FANOUT_ROUTING_FILE")
    # Deliveries that kept failing are published here with the reason.
    dead_letter_topic: str = Field(
        default="alert-deliveries-dead-letter", validation_alias="ION_FANOUT_DEAD_LETTER_TOPIC"
    )
    # Retry bounds per channel delivery: attempts per vendor call, and total time for the delivery.
    max_attempts: int = Field(default=4, ge=1, le=10, validation_alias="ION_FANOUT_MAX_ATTEMPTS")
    retry_budget_seconds: float = Field(
        default=20.0, gt=0, le=300, validation_alias="ION_FANOUT_RETRY_BUDGET_SECONDS"
    )
    backoff_base_seconds: float = Field(
        default=0.5, gt=0, le=30, validation_alias="ION_FANOUT_BACKOFF_BASE_SECONDS"
    )
    backoff_max_seconds: float = Field(
        default=8.0, gt=0, le=120, validation_alias="ION_FANOUT_BACKOFF_MAX_SECONDS"
    )
    request_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, validation_alias="ION_FANOUT_TIMEOUT_SECONDS"
    )
    # Links in notifications: this function's public URL (silence API) and the dashboards.
    public_url: str = Field(default="http://127.0.0.1:8084", validation_alias="ION_FANOUT_PUBLIC_URL")
    dashboard_url: str = Field(
        default="http://127.0.0.1:8088/dashboards/overview", validation_alias="ION_DASHBOARD_URL"
    )
    # A batch whose channels are not all delivered after this long is re-driven by the flush tick.
    redrive_after_seconds: int = Field(
        default=120, ge=10, validation_alias="ION_FANOUT_REDRIVE_AFTER_SECONDS"
    )
    # Precise group timers (group_wait, group_interval, repeat_interval): one Cloud Tasks task per
    # group and due time, calling manage_alerts' POST /v1/flush/group at that time. Deployed, all
    # three are required; locally, without a queue, the minute flush tick alone serves the timers.
    tasks_queue: str | None = Field(
        default=None,
        pattern=r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/locations/[a-z0-9-]+/queues/[A-Za-z0-9-]{1,100}$",
        validation_alias="ION_FANOUT_TASKS_QUEUE",
    )
    flush_url: str | None = Field(
        default=None, pattern=r"^https?://[^/\s]+/\S*$", validation_alias="ION_FANOUT_FLUSH_URL"
    )
    tasks_service_account: str | None = Field(
        default=None, pattern=r"^[^@\s]+@[^@\s]+$", validation_alias="ION_FANOUT_TASKS_SERVICE_ACCOUNT"
    )
    # The Cloud Tasks API endpoint; set only for a local stand-in (plain HTTP, no credentials).
    tasks_endpoint: str | None = Field(default=None, validation_alias="ION_FANOUT_TASKS_ENDPOINT")
    # PagerDuty told of an acknowledgement or resolve made here: what a Slack button's answer may
    # wait on it (Slack drops an answer after 3 s: at most half of that), and how long the flush
    # tick keeps trying before it gives the request up and says so in the incident's threads.
    pagerduty_sync_inline_seconds: float = Field(
        default=1.5, ge=0.1, le=1.5, validation_alias="ION_FANOUT_PAGERDUTY_SYNC_INLINE_SECONDS"
    )
    pagerduty_sync_give_up_minutes: int = Field(
        default=60, ge=5, le=1440, validation_alias="ION_FANOUT_PAGERDUTY_SYNC_GIVE_UP_MINUTES"
    )
    # A second click of Slack's Silence 1 h button by the same user on the same message within
    # this long answers the first click's silence instead of making another (at most the hour the
    # silence lasts).
    slack_double_click_seconds: int = Field(
        default=60, ge=5, le=3600, validation_alias="ION_FANOUT_SLACK_DOUBLE_CLICK_SECONDS"
    )
    # A resolved incident is deleted this long after it resolved (TTL on ``expire_at``): a year of
    # MTTR and incident trends (the reports' quarters, a year-over-year look) and a margin. An open
    # one is never deleted.
    incidents_keep_days: int = Field(default=400, ge=100, le=3650, validation_alias="ION_INCIDENTS_KEEP_DAYS")
    # Set by Cloud Run for a deployed function: then nothing may stand in for a channel.
    k_service: str | None = Field(default=None, validation_alias="K_SERVICE")

    @property
    def deployed(self) -> bool:
        return bool(self.k_service)

    @property
    def smtp_tls(self) -> Literal["implicit", "starttls", "none"]:
        if self.smtp_port == 465:
            return "implicit"
        starttls = self.deployed if self.smtp_starttls is None else self.smtp_starttls
        return "starttls" if starttls else "none"


@lru_cache(maxsize=1)
def get_fanout_settings() -> FanoutSettings:
    return FanoutSettings()
