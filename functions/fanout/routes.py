"""The routing configuration (routing.yaml): label routes (``routes``, the first whose matchers
match takes the alert), channels and timing per severity, grouping labels, inhibition rules,
flapping detection and digest channels, validated when loaded."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, model_validator

from functions.fanout.config_files import ConfigFileError, load_model
from functions.fanout.matchers import LABEL_NAME, Matcher, alert_labels, matches_all
from functions.fanout.route_models import (
    SEVERITIES,
    ChannelName,
    Duration,
    LabelNames,
    LabelRoute,
    ResolvedRoute,
    Route,
    StrictModel,
)
from functions.fanout.settings import get_fanout_settings
from functions.fanout.time_intervals import NamedTimeInterval
from shared.messages import AlertTransition, Severity
from shared.notices import NOTICE_KIND, PERSONAL_GROUP_LABEL, is_personal, recipient_of


class InhibitRule(StrictModel):
    source_matchers: list[Matcher] = Field(min_length=1)
    target_matchers: list[Matcher] = Field(min_length=1)
    equal: list[Annotated[str, Field(pattern=LABEL_NAME)]] = []

    def inhibits(self, source: dict[str, str], target: dict[str, str]) -> bool:
        return (
            matches_all(self.source_matchers, source)
            and matches_all(self.target_matchers, target)
            and all(source.get(name, "") == target.get(name, "") for name in self.equal)
        )


class Flapping(StrictModel):
    transitions: int = Field(default=4, ge=2, le=100)
    window: Duration = timedelta(minutes=10)
    hold: Duration = timedelta(minutes=10)


class Digest(StrictModel):
    channels: list[ChannelName] = ["email"]


class PersonalNotices(StrictModel):
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


class RoutingConfig(StrictModel):
    group_by: LabelNames = ["rule", "service", "region"]
    # Label routes, in order: the first whose matchers all match takes the alert; the rest go by
    # severity. Checked before ``severities``.
    routes: list[LabelRoute] = []
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
        named = [
            (f"severities.{s}", r.mute_time_intervals, r.active_time_intervals)
            for s, r in self.severities.items()
        ]
        named += [
            (f"routes.{r.name}", r.mute_time_intervals or [], r.active_time_intervals or [])
            for r in self.routes
        ]
        for where, mute, active in named:
            for name in [*mute, *active]:
                if name not in names:
                    known = ", ".join(names) or "none"
                    raise ValueError(f"{where} names time interval {name!r}; defined: {known}")
        return self

    @model_validator(mode="after")
    def _routes_sound(self) -> RoutingConfig:
        names = [route.name for route in self.routes]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"routes must not repeat a name; repeated: {', '.join(repeated)}")
        for route in self.routes:
            severities = route.severities()
            if not severities:
                raise ValueError(
                    f"routes.{route.name}: its severity matchers match no severity "
                    f"(there are {', '.join(SEVERITIES)})"
                )
            for severity in severities:  # over each severity it can take: still a sound route
                try:
                    route.over(self.severities[severity])
                except ValidationError as exc:
                    problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                    raise ValueError(f"routes.{route.name} over severities.{severity}: {problems}") from None
            if route.email_to and "email" not in route.over(self.severities[severities[0]]).channels:
                raise ValueError(f"routes.{route.name} names email_to but sends no email")
        return self

    def unaddressed_mail(self, alert_email_to: str | None) -> list[str]:
        """Problems of routes that list ``email`` in their channels with nobody to mail: no
        ``email_to`` of their own and no ``ALERT_EMAIL_TO`` (``alert_email_to``)."""
        if alert_email_to and alert_email_to.strip(" ,"):
            return []
        return [
            f"routes.{r.name} sends email but names no email_to, and ALERT_EMAIL_TO is not set"
            for r in self.routes
            if r.channels and "email" in r.channels and not r.email_to
        ]

    def label_route(self, name: str | None) -> LabelRoute | None:
        return next((route for route in self.routes if route.name == name), None) if name else None

    def matched(self, transition: AlertTransition) -> LabelRoute | None:
        """The first label route whose matchers all match the alert's labels (None: by severity).
        A personal notice takes none: it goes to the person it names alone."""
        if self._personal(transition) or not self.routes:
            return None
        labels = alert_labels(transition)
        return next((route for route in self.routes if matches_all(route.matchers, labels)), None)

    def route(self, severity: Severity, label_route: str | None = None) -> ResolvedRoute:
        """The severity's route, or the label route ``label_route`` over it (a name no longer in
        the file, as a group stored before it was removed has: the severity's)."""
        base = self.severities[severity]
        found = self.label_route(label_route)
        if found is not None:
            return found.over(base)
        return ResolvedRoute.model_validate({**base.model_dump(), "name": f"severities.{severity}"})

    def route_of(self, transition: AlertTransition) -> ResolvedRoute:
        matched = self.matched(transition)
        return self.route(transition.severity, matched.name if matched else None)

    def time_mute(self, severity: Severity, now: datetime, label_route: str | None = None) -> str | None:
        """Why the route is muted now by its time intervals, or None."""
        route = self.route(severity, label_route)
        intervals = {interval.name: interval for interval in self.time_intervals}
        for name in route.mute_time_intervals:
            if intervals[name].contains(now):
                return f"muted by time interval {name}"
        active = route.active_time_intervals
        if active and not any(intervals[name].contains(now) for name in active):
            return f"outside active time intervals {', '.join(active)}"
        return None

    def channels(self, severity: Severity, *, notices: bool, label_route: str | None = None) -> list[str]:
        """A label route's own channels; else, for notices, the notice channels of the severity;
        else the severity's."""
        found = self.label_route(label_route)
        if found is not None and found.channels is not None:
            return list(found.channels)
        if notices and severity in self.notices:
            return list(self.notices[severity])
        return list(self.severities[severity].channels)

    def channels_for(
        self, severity: Severity, transitions: list[AlertTransition], label_route: str | None = None
    ) -> list[str]:
        """The channels of one notification: personal notices (``personal_notices``) the contact
        channel and its team copies only; other notices-only notifications the notice routes,
        plus email when a notice names its recipient and the routing mails them."""
        if self.personal_notices is not None and transitions and all(map(is_personal, transitions)):
            return ["contact", *self.personal_notices.copy_to]
        notices_only = all(t.kind == NOTICE_KIND for t in transitions)
        found = self.channels(severity, notices=notices_only, label_route=label_route)
        if self.notices_mail_recipient and "email" not in found and any(map(recipient_of, transitions)):
            found.append("email")
        return found

    def all_channels(self) -> set[str]:
        """Every channel some notification may go to (what a deployment must configure)."""
        found = {c for route in self.severities.values() for c in route.channels}
        found |= {c for route in self.routes for c in route.channels or []}
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
        """The labels that make ``transition``'s group: its label route's ``group_by`` or the
        file's, and for a personal notice also ``personal_notices.group_by`` (one customer's
        notices never share a notification)."""
        if not self._personal(transition):
            matched = self.matched(transition)
            return list(matched.group_by if matched and matched.group_by else self.group_by)
        assert self.personal_notices is not None
        return list(dict.fromkeys([*self.group_by, *self.personal_notices.group_by]))

    def group_labels(self, transition: AlertTransition) -> dict[str, str]:
        labels = alert_labels(transition)
        return {name: labels.get(name, "") for name in self.group_names(transition)}

    def group_id(self, transition: AlertTransition) -> str:
        """One group per severity and route and values of the grouping labels; personal notices
        apart from the rest, per value of their own grouping labels. An alert no label route
        takes has the key it had before label routes existed (stored groups and threads go on)."""
        labels = self.group_labels(transition)
        parts = [transition.severity, *(f"{k}={labels[k]}" for k in labels)]
        if self._personal(transition):
            parts.append("personal")
        if matched := self.matched(transition):
            parts.append(f"route={matched.name}")
        key = "\x00".join(parts)
        return f"{transition.severity}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


class RoutingError(ConfigFileError):
    pass


def load_routing(path: Path, *, alert_email_to: str | None = None) -> RoutingConfig:
    """Read and validate a routing file; errors name the file and the fields at fault.
    ``alert_email_to`` (``ALERT_EMAIL_TO``): the list a route mailing without ``email_to`` mails."""
    routing = load_model(path, RoutingConfig, what="routing file", top="severities", error=RoutingError)
    problems = routing.unaddressed_mail(alert_email_to)
    if problems:
        where = [("file", problem) for problem in problems]
        raise RoutingError(f"routing file {path} is invalid: {'; '.join(problems)}", where)
    return routing


@lru_cache(maxsize=1)
def get_routing() -> RoutingConfig:
    settings = get_fanout_settings()
    return load_routing(settings.routing_file, alert_email_to=settings.alert_email_to)
