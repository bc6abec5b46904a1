"""Notices: one-off events that people should see (a scale change, a cost anomaly, a customer
success action), published on the ``alerts`` topic as alert transitions of kind ``notice``, so
fan-out's routing, silences, grouping and delivery records apply to them unchanged.

A notice has no lasting condition to resolve, so it is published as ``firing`` with
``ends_at == starts_at``; fan-out sends it once and never repeats it. Its ``notice_id`` must be
stable for the event it announces (for example ``scaling/us-central1/2026-11-30T08:00Z``): a
redelivered or re-run job then publishes the same transition id and fan-out's exactly-once
records keep it to one message per channel.

A notice meant for one person (a success action for the customer's success manager) names them
in the annotations ``RECIPIENT_ANNOTATION`` (an email address) and ``SLACK_ANNOTATION`` (a Slack
user or channel id): it is **personal**. Fan-out's ``personal_notices`` routing sends such a notice
to that person alone, one customer per notification (``PERSONAL_GROUP_LABEL`` keeps customers
apart); without it, ``notices_mail_recipient`` mails the address beside the team.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from shared.messages import AlertTransition, Severity

NOTICE_KIND = "notice"
RECIPIENT_ANNOTATION = "contact_email"
SLACK_ANNOTATION = "contact_slack"
# The label that keeps personal notices of different customers out of one notification.
PERSONAL_GROUP_LABEL = "customer"


def recipient_of(transition: AlertTransition) -> str | None:
    """The address a notice names for itself, if it is a notice and names one."""
    if transition.kind != NOTICE_KIND:
        return None
    return transition.annotations.get(RECIPIENT_ANNOTATION) or None


def slack_recipient_of(transition: AlertTransition) -> str | None:
    """The Slack user or channel id a notice names for itself, if any."""
    if transition.kind != NOTICE_KIND:
        return None
    return transition.annotations.get(SLACK_ANNOTATION) or None


def is_personal(transition: AlertTransition) -> bool:
    """A notice for one named person (by email or Slack id)."""
    return bool(recipient_of(transition) or slack_recipient_of(transition))


def notice_transition(
    *,
    notice_id: str,
    source: str,
    name: str,
    severity: Severity,
    summary: str,
    at: datetime,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    value: float | None = None,
    threshold: float | None = None,
    metric: str = "",
    dashboard_url: str | None = None,
) -> AlertTransition:
    """Build the transition announcing one notice. ``source`` is the capability (``scaling``),
    ``name`` the kind of event (``scale-change``); both become labels and name the rule."""
    if not notice_id:
        raise ValueError("notice_id must identify the event (it makes redelivery harmless)")
    rule = f"{source}-{name}"
    all_labels = {"source": source, "notice": name, **(labels or {})}
    fingerprint = hashlib.sha256(f"{rule}|{sorted(all_labels.items())}".encode()).hexdigest()[:32]
    transition_id = hashlib.sha256(f"notice|{notice_id}".encode()).hexdigest()[:32]
    return AlertTransition(
        transition_id=transition_id,
        fingerprint=fingerprint,
        rule=rule,
        kind=NOTICE_KIND,
        state="firing",
        previous_state="inactive",
        severity=severity,
        metric=metric or rule,
        labels=all_labels,
        annotations={"summary": summary, **(annotations or {})},
        value=value,
        threshold=threshold,
        starts_at=at,
        ends_at=at,
        evaluated_at=at,
        dashboard_url=dashboard_url,
    )


def publish_notice(transition: AlertTransition) -> str:
    """Publish a notice built by :func:`notice_transition` on the ``alerts`` topic."""
    from shared.pubsub import publish

    return publish("alerts", transition, attributes={"kind": NOTICE_KIND, "severity": transition.severity})
