"""What fan-out hands to a channel: one notification of one group, with the alerts it announces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.clock import format_rfc3339
from shared.messages import AlertTransition, Severity
from shared.numbers import readable

NotificationKind = Literal["notify", "repeat", "escalation", "unacknowledged"]
# A title names this many rules of a group at most, then counts the others: a storm's group of
# 40 rules made a mail subject and a Slack header of kilobytes.
RULES_NAMED = 3
# The age limit of fan-out's Pub/Sub deliveries: none, in effect (an old transition is only marked late).
NEVER_TOO_OLD = timedelta(days=3650)


class Notification(BaseModel):
    """One notification of a group to every channel of its route.

    ``notify`` announces the transitions collected since the group's last notification (each
    transition is in exactly one notify); ``repeat`` re-announces alerts still firing after the
    route's repeat interval; ``escalation`` re-announces them for an incident nobody acknowledged,
    one step of the incident policy (``escalation_level``, a wider ``slack_channel`` maybe: a
    message of its own there, where ``route_slack_channel`` is where the group's messages go);
    ``unacknowledged`` re-announces them to the incident's current level when PagerDuty took its
    acknowledgement back.
    ``notification_id`` is the exactly-once key per channel. ``incident_id``: the incident the
    group's alerts are in (Slack shows its buttons); ``review_url``: its review draft, once written.
    """

    model_config = ConfigDict(frozen=True)

    notification_id: str
    kind: NotificationKind
    group_id: str
    group_labels: dict[str, str]
    severity: Severity
    mention: str | None = None
    alerts: list[AlertTransition]
    created_at: AwareDatetime
    incident_id: str | None = None
    review_url: str | None = None
    escalation_level: int = 0
    slack_channel: str | None = None
    # A reminder's alerts still firing that its document could not carry (Firestore's 1 MiB):
    # counted, not listed (``notification_size.py``).
    alerts_left_out: int = 0
    # The label route of the group (routing.yaml ``routes``; None: its severity's) and the
    # receivers it names, carried so that a retry or re-drive sends to the same place: its Slack
    # channel and mail list instead of ``SLACK_CHANNEL`` and ``ALERT_EMAIL_TO``.
    label_route: str | None = None
    route_slack_channel: str | None = None
    route_email_to: list[str] = []
    # The dedup_key of the group's PagerDuty incident this notification triggers or resolves, and
    # how many of the group's alerts fire after it (a notify carries only the changes: a resolve
    # goes out when this is 0). None: one PagerDuty event per alert, by fingerprint (stored by the
    # previous version, or of an incident it opened: ``pagerduty_keys.py``).
    pagerduty_key: str | None = None
    group_firing: int | None = None

    @property
    def reminder(self) -> bool:
        """A repeat or an escalation: alerts already announced, told again (in their thread)."""
        return self.kind in ("repeat", "escalation", "unacknowledged")

    @property
    def firing(self) -> list[AlertTransition]:
        return [a for a in self.alerts if a.state == "firing"]

    @property
    def resolved(self) -> list[AlertTransition]:
        return [a for a in self.alerts if a.state == "resolved"]

    def title(self) -> str:
        parts = [f"[{self.severity.upper()}]"]
        if self.kind == "repeat":
            parts.append("STILL FIRING")
        elif self.kind == "escalation":
            parts.append(f"ESCALATED (level {self.escalation_level}), NOT ACKNOWLEDGED")
        elif self.kind == "unacknowledged":
            parts.append(f"ACKNOWLEDGEMENT TAKEN BACK (level {self.escalation_level}), NOT ACKNOWLEDGED")
        elif self.firing and self.resolved:
            parts.append(f"FIRING:{len(self.firing)} RESOLVED:{len(self.resolved)}")
        elif self.firing:
            parts.append(f"FIRING:{len(self.firing)}" if len(self.firing) > 1 else "FIRING")
        else:
            parts.append(f"RESOLVED:{len(self.resolved)}" if len(self.resolved) > 1 else "RESOLVED")
        parts.append(named_rules(sorted({a.rule for a in self.alerts})))
        where = ", ".join(f"{k}={v}" for k, v in self.group_labels.items() if v and k != "rule")
        if where:
            parts.append(f"({where})")
        return " ".join(parts)


def named_rules(rules: list[str]) -> str:
    """``a, b, c``; past ``RULES_NAMED`` rules, ``40 rules: a, b, c and 37 more``."""
    if len(rules) <= RULES_NAMED:
        return ", ".join(rules)
    return f"{len(rules)} rules: {', '.join(rules[:RULES_NAMED])} and {len(rules) - RULES_NAMED} more"


def mark_late(alert: AlertTransition, age: timedelta) -> AlertTransition:
    """A transition delivered long after it was published (an outage of ours or of Pub/Sub) is
    still sent, saying so: a late page beats a lost one."""
    minutes = max(1, round(age.total_seconds() / 60))
    note = f"LATE: published {minutes} min before it could be delivered"
    summary = f"[LATE {minutes} min] {summary_of(alert)}"
    return alert.model_copy(update={"annotations": {**alert.annotations, "summary": summary, "late": note}})


def summary_of(alert: AlertTransition) -> str:
    return (
        alert.annotations.get("summary") or f"{alert.rule}: {alert.metric} {alert.op or ''} {alert.threshold}"
    )


def value_text(alert: AlertTransition) -> str:
    if alert.value is None:
        return "n/a"
    value = readable(alert.value)
    if alert.threshold is not None:
        return f"{value} ({alert.op or 'vs'} threshold {readable(alert.threshold)})"
    return value


def iso(moment: datetime | None) -> str:
    """A time as responders read it: in UTC (``Z``), as every template labels it, whatever offset
    the producer sent it with."""
    return format_rfc3339(moment.astimezone(UTC)) if moment else ""


def doc_id(key: str) -> str:
    """A Firestore document id for an arbitrary key (fingerprints and transition ids may hold
    ``/``, which Firestore reads as a path); hashed, which also spreads writes across the keyspace."""
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:40]
