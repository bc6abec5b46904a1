"""Which PagerDuty incident is which of ours, by ``dedup_key``: one PagerDuty incident per alert
group's incident, as Alertmanager keeps one per notification group (its key, a hash of the group
key: our group id is that hash).

- An incident the pipeline opens is one PagerDuty incident keyed by the incident's id,
  ``<group id>-i<seq>``: the group, and which of its incidents. A group that resolves and fires
  again opens a new incident of ours and so a new key (PagerDuty would open a new incident for a
  re-trigger of a resolved key anyway): a late or re-driven event of the earlier one, a resolve
  re-driven from the dead-letter store, never touches the new one, and a webhook about the earlier
  one never names the new one.
- A group with no incident of ours (a severity that opens none, routed to PagerDuty) is keyed by
  the group id alone, as Alertmanager keys it; an incident opened on demand for such a group takes
  that key, the PagerDuty incident its notifications opened.
- An incident the previous version opened has no key (``Incident.pagerduty_key`` None): PagerDuty
  holds one incident per alert, by fingerprint, and so it stays to its end: its notifications go
  per alert (``Notification.pagerduty_key`` None), and acknowledging or resolving it here tells
  PagerDuty per fingerprint (``Incident.pagerduty_keys``).
"""

from __future__ import annotations

from functions.fanout.incident_record import Incident
from functions.fanout.models import Notification


def opened_key(incident_id: str, group_id: str, *, on_demand: bool) -> str:
    """The dedup_key of a new incident's PagerDuty incident."""
    return group_id if on_demand else incident_id


def notification_key(group_id: str, incident: Incident | None) -> str | None:
    """The dedup_key a notification of the group triggers or resolves: its incident's (the one it
    opens or joins; or the one resolved by hand, whose resolve sent again is a no-op in PagerDuty
    or closes it if PagerDuty never took the first), the group's when it has none, None (per
    alert) for an incident the previous version opened."""
    if incident is None:
        return group_id
    return incident.pagerduty_key


def as_the_group_is_now(notification: Notification) -> Notification:
    """A notification re-driven to PagerDuty later tells it the group as it is now: how many of
    its alerts fire under the incident it was made for (none once that incident is over), not how
    many fired when it was made; a late trigger would reopen what a later resolve closed."""
    if notification.pagerduty_key is None or notification.group_firing is None:
        return notification
    from functions.fanout.records import GROUPS, GroupRecord, collection

    stored = collection(GROUPS).document(notification.group_id).get().to_dict()
    group = GroupRecord.model_validate(stored) if stored else None
    # Made for no incident of ours, the key is the group's (an incident opened on demand since
    # took that same key): the group's count is the key's.
    same = group is not None and notification.incident_id in (None, group.incident_id)
    firing = len(group.firing) if group is not None and same else 0
    return notification.model_copy(update={"group_firing": firing})
