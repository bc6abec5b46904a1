"""The routes of the routing file (routing.yaml) and their fields: a severity's route
(``severities``), a label route (``routes``: matchers, and what it sets over the severity's), and the
route an alert takes once resolved (``ResolvedRoute``). ``routes.py`` holds the file itself."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from functions.fanout.matchers import LABEL_NAME, Matcher
from shared.messages import Severity

# `contact`: the person a personal notice names (mail, and Slack when it names a Slack id).
ChannelName = Literal["pagerduty", "slack", "email", "log", "contact"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: object) -> timedelta:
    """``"1h30m"``, ``"5m"``, ``"0s"`` (or seconds as a number) → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    text = str(value).strip()
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{value!r} is not a duration like 30s, 5m, 1h30m")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class StrictModel(BaseModel):
    """A configuration file's model: an unknown field is an error, a loaded one never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Route(StrictModel):
    channels: list[ChannelName] = Field(min_length=1)
    mention: str | None = None
    group_wait: Duration = timedelta(seconds=30)
    group_interval: Duration = timedelta(minutes=5)
    repeat_interval: Duration = timedelta(hours=4)
    # Names of `time_intervals` (Alertmanager's semantics): no notification while one of the mute
    # intervals holds, nor while none of the active ones does (empty: always active).
    mute_time_intervals: list[str] = []
    active_time_intervals: list[str] = []

    @model_validator(mode="after")
    def _sane(self) -> Route:
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must not repeat")
        if self.group_interval <= timedelta(0):
            raise ValueError("group_interval must be positive")
        if self.repeat_interval < self.group_interval:
            raise ValueError("repeat_interval must be at least group_interval")
        return self


# A Slack channel id (C..., G...), as the incident policy's ``slack_channel`` spells it.
_SLACK_CHANNEL_ID = re.compile(r"[A-Z0-9]{2,30}")
# One plain address (what the email channel mails): no display name, no list.
_EMAIL_ADDRESS = re.compile(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+")
ROUTE_NAME = r"^[a-z0-9][a-z0-9_-]*$"
LabelNames = list[Annotated[str, Field(pattern=LABEL_NAME)]]


def _slack_channel_id(value: str) -> str:
    if not _SLACK_CHANNEL_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a Slack channel id (like C0123ABCD: the id, not the #name)")
    return value


def _email_address(value: str) -> str:
    if len(value) > 254 or not _EMAIL_ADDRESS.fullmatch(value):
        raise ValueError(f"{value!r} is not one plain address like finance@example.com")
    return value


SlackChannelId = Annotated[str, AfterValidator(_slack_channel_id)]
EmailAddress = Annotated[str, AfterValidator(_email_address)]


class LabelRoute(StrictModel):
    """A route of ``routes``: alerts whose labels match every one of ``matchers`` go here (the
    first route matching takes the alert; no ``continue``). Unset fields are the severity
    route's; ``slack_channel`` and ``email_to`` replace ``SLACK_CHANNEL`` and ``ALERT_EMAIL_TO``."""

    name: str = Field(pattern=ROUTE_NAME, max_length=63)
    matchers: list[Matcher] = Field(min_length=1)
    channels: list[ChannelName] | None = Field(default=None, min_length=1)
    mention: str | None = None
    group_by: LabelNames | None = Field(default=None, min_length=1)
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    mute_time_intervals: list[str] | None = None
    active_time_intervals: list[str] | None = None
    slack_channel: SlackChannelId | None = None
    email_to: list[EmailAddress] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _receivers_used(self) -> LabelRoute:
        if self.channels is not None and "contact" in self.channels:
            raise ValueError("the contact channel is for personal notices, which routes never take")
        if self.email_to and len(set(self.email_to)) != len(self.email_to):
            raise ValueError("email_to must not repeat an address")
        return self

    def severities(self) -> list[Severity]:
        """The severities this route can take: those its ``severity`` matchers allow."""
        return [
            s for s in SEVERITIES if all(m.matches_value(s) for m in self.matchers if m.name == "severity")
        ]

    def over(self, base: Route) -> ResolvedRoute:
        """This route over a severity's: what it sets, else the severity route's."""
        own = self.model_dump(exclude_none=True, exclude={"name", "matchers", "group_by"})
        return ResolvedRoute.model_validate(
            {**base.model_dump(), **own, "name": f"routes.{self.name}", "label_route": self.name}
        )


class ResolvedRoute(Route):
    """The route an alert takes: its severity's (``severities.<s>``), or a label route over it
    (``routes.<name>``) with the receivers it names (unset: ``SLACK_CHANNEL``, ``ALERT_EMAIL_TO``)."""

    name: str
    label_route: str | None = None
    slack_channel: str | None = None
    email_to: list[str] = []

    def receivers(self) -> dict[str, Any]:
        """What a notification of this route carries to be delivered to its receivers."""
        return {
            "label_route": self.label_route,
            "route_slack_channel": self.slack_channel,
            "route_email_to": list(self.email_to),
        }
