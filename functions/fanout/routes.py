"""The routing configuration (routing.yaml): channels and timing per severity, grouping labels,
inhibition rules, flapping detection and digest channels, validated when loaded."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from functions.fanout.config_files import load_model
from functions.fanout.matchers import LABEL_NAME, Matcher, alert_labels, matches_all
from functions.fanout.settings import get_fanout_settings
from functions.fanout.time_intervals import NamedTimeInterval
from shared.messages import AlertTransition, Severity
from shared.notices import NOTICE_KIND, PERSONAL_GROUP_LABEL, is_personal, recipient_of

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Route(_Strict):
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


class InhibitRule(_Strict):
    source_matchers: list[Matcher] = Field(min_length=1)
    target_matchers: list[Matcher] = Field(min_length=1)
    equal: list[Annotated[str, Field(pattern=LABEL_NAME)]] = []

    def inhibits(self, source: dict[str, str], target: dict[str, str]) -> bool:
        return (
            matches_all(self.source_matchers, source)
            and matches_all(self.target_matchers, target)
            and all(source.get(name, "") == target.get(name, "") for name in self.equal)
        )


class Flapping(_Strict):
    transitions: int = Field(default=4, ge=2, le=100)
    window: Duration = timedelta(minutes=10)
    hold: Duration = timedelta(minutes=10)


class Digest(_Strict):
    channels: list[ChannelName] = ["email"]


class PersonalNotices(_Strict):
    """Notices for one named person (a customer success action names the customer's success
    manager): grouped by ``group_by`` too, so one notification carries one customer's notices, and
    sent through the ``contact`` channel to that person alone, plus the team channels of
    ``copy_to`` (none by default: a success manager's accounts are theirs)."""

    group_by: list[Annotated[str, Field(pattern=LABEL_NAME)]] = Field(
        default=[PERSONAL_GROUP_LABEL], min_length=1
    )
    copy_to: list[ChannelName] = []

    @model_validator(mode="after")
    def _team_copies(self) -> PersonalNotices:
        if "contact" in self.copy_to:
            raise ValueError("copy_to lists team channels; the contact channel is always used")
        return self


class RoutingConfig(_Strict):
    group_by: list[Annotated[str, Field(pattern=LABEL_NAME)]] = ["rule", "service", "region"]
    severities: dict[Severity, Route]
    inhibit_rules: list[InhibitRule] = []
    flapping: Flapping = Flapping()
    digest: Digest = Digest()
    # Notices (one-off events: a scale change, a cost anomaly, a success action, a dead letter)
    # go to these channels by severity instead of the severity's own; they are sent once, never
    # repeated. Unset severities use the severity's channels.
    notices: dict[Severity, Annotated[list[ChannelName], Field(min_length=1)]] = {}
    # A notice naming its own recipient (a success action names the customer's success manager)
    # is also mailed to that address, beside its severity's notice channels.
    notices_mail_recipient: bool = False
    # Notices naming their own recipient go to that person alone, one customer per notification
    # (unset: they are grouped and routed like any notice).
    personal_notices: PersonalNotices | None = None
    time_intervals: list[NamedTimeInterval] = []

    @model_validator(mode="after")
    def _every_severity_routed(self) -> RoutingConfig:
        missing = [s for s in SEVERITIES if s not in self.severities]
        if missing:
            raise ValueError(f"severities must route every severity; missing: {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _intervals_named(self) -> RoutingConfig:
        names = [interval.name for interval in self.time_intervals]
        if len(set(names)) != len(names):
            raise ValueError("time_intervals must not repeat a name")
        for severity, route in self.severities.items():
            for name in [*route.mute_time_intervals, *route.active_time_intervals]:
                if name not in names:
                    known = ", ".join(names) or "none"
                    raise ValueError(f"severities.{severity} names time interval {name!r}; defined: {known}")
        return self

    def time_mute(self, severity: Severity, now: datetime) -> str | None:
        """Why the severity's route is muted now by its time intervals, or None."""
        route = self.severities[severity]
        intervals = {interval.name: interval for interval in self.time_intervals}
        for name in route.mute_time_intervals:
            if intervals[name].contains(now):
                return f"muted by time interval {name}"
        active = route.active_time_intervals
        if active and not any(intervals[name].contains(now) for name in active):
            return f"outside active time intervals {', '.join(active)}"
        return None

    def route(self, severity: Severity) -> Route:
        return self.severities[severity]

    def channels(self, severity: Severity, *, notices: bool) -> list[str]:
        if notices and severity in self.notices:
            return list(self.notices[severity])
        return list(self.severities[severity].channels)

    def channels_for(self, severity: Severity, transitions: list[AlertTransition]) -> list[str]:
        """The channels of one notification: personal notices (``personal_notices``) the contact
        channel and its team copies only; other notices-only notifications the notice routes,
        plus email when a notice names its recipient and the routing mails them."""
        if self.personal_notices is not None and transitions and all(map(is_personal, transitions)):
            return ["contact", *self.personal_notices.copy_to]
        notices_only = all(t.kind == NOTICE_KIND for t in transitions)
        found = self.channels(severity, notices=notices_only)
        if self.notices_mail_recipient and "email" not in found and any(map(recipient_of, transitions)):
            found.append("email")
        return found

    def all_channels(self) -> set[str]:
        """Every channel some notification may go to (what a deployment must configure)."""
        found = {c for route in self.severities.values() for c in route.channels}
        mailed = {"email"} if self.notices_mail_recipient else set()
        if self.personal_notices is not None:
            mailed |= {"contact", *self.personal_notices.copy_to}
        return (
            found
            | {c for channels in self.notices.values() for c in channels}
            | set(self.digest.channels)
            | mailed
        )

    def _personal(self, transition: AlertTransition) -> bool:
        return self.personal_notices is not None and is_personal(transition)

    def group_names(self, transition: AlertTransition) -> list[str]:
        """The labels that make ``transition``'s group: ``group_by``, and for a personal notice
        also ``personal_notices.group_by`` (one customer's notices never share a notification)."""
        if not self._personal(transition):
            return list(self.group_by)
        assert self.personal_notices is not None
        return list(dict.fromkeys([*self.group_by, *self.personal_notices.group_by]))

    def group_labels(self, transition: AlertTransition) -> dict[str, str]:
        labels = alert_labels(transition)
        return {name: labels.get(name, "") for name in self.group_names(transition)}

    def group_id(self, transition: AlertTransition) -> str:
        """One group per severity (its route) and values of the ``group_by`` labels; personal
        notices apart from the rest, per value of their own grouping labels."""
        labels = self.group_labels(transition)
        parts = [transition.severity, *(f"{k}={labels[k]}" for k in labels)]
        if self._personal(transition):
            parts.append("personal")
        key = "\x00".join(parts)
        return f"{transition.severity}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


class RoutingError(ValueError):
    pass


def load_routing(path: Path) -> RoutingConfig:
    """Read and validate a routing file; errors name the file and the fields at fault."""
    return load_model(path, RoutingConfig, what="routing file", top="severities", error=RoutingError)


@lru_cache(maxsize=1)
def get_routing() -> RoutingConfig:
    return load_routing(get_fanout_settings().routing_file)
