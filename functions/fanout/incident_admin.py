"""Opening an incident on demand for an alert group whose severity does not open one by itself
(medium, low): in one transaction with the group, so the group's later alerts join it and its
acknowledgement stops the group's repeats, as for an incident opened by the pipeline."""

from __future__ import annotations

from functions.fanout.incident_policy import get_policy
from functions.fanout.incident_record import Incident, on_demand_id
from functions.fanout.incident_store import INCIDENTS, incident_document
from functions.fanout.incidents import add_note, open_incident
from functions.fanout.models import doc_id
from functions.fanout.records import ALERTS, GROUPS, AlertRecord, GroupRecord, group_document
from functions.fanout.records import collection as _col
from shared.clock import utcnow
from shared.firestore import get_firestore, run_transaction


class NoSuchGroup(LookupError):
    pass


class GroupHasIncident(Exception):
    def __init__(self, incident_id: str) -> None:
        super().__init__(incident_id)
        self.incident_id = incident_id


def open_for_group(group_id: str, by: str, note: str | None) -> tuple[Incident, bool]:
    from google.cloud import firestore

    client = get_firestore()
    gref = client.collection(GROUPS).document(group_id)
    snapshot = gref.get()
    if not snapshot.exists:
        raise NoSuchGroup(group_id)
    group = GroupRecord.model_validate(snapshot.to_dict())
    snaps = client.get_all([client.collection(ALERTS).document(doc_id(fp)) for fp in group.firing])
    firing = [
        r.latest
        for r in (AlertRecord.model_validate(s.to_dict()) for s in snaps if s.exists)
        if r.state == "firing"
    ]
    now = utcnow()

    def run(tx: firestore.Transaction) -> tuple[Incident, bool]:
        current = GroupRecord.model_validate(gref.get(transaction=tx).to_dict())
        if current.incident_id:
            existing = _col(INCIDENTS).document(current.incident_id).get(transaction=tx)
            if existing.exists and existing.to_dict().get("state") != "resolved":
                raise GroupHasIncident(current.incident_id)
        incident = open_incident(
            on_demand_id(group_id, now),
            group_id=group_id,
            severity=current.severity,
            group_labels=current.labels,
            firing=firing,
            now=now,
            policy=get_policy(),
            by=by,
            on_demand=True,
        )
        if note:
            add_note(incident, by, note, now)
        tx.set(_col(INCIDENTS).document(incident.id), incident_document(incident))
        if current.firing:
            current.incident_id = incident.id  # later alerts join it; it stops the repeats when acked
            tx.set(gref, group_document(current, now))
        return incident, True

    return run_transaction(run)
