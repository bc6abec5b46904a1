"""The incident records the alert fan-out keeps (``incidents/<id>``), read by the reports: a port
and its Firestore and memory implementations, as ``source.AlertSource`` reads the alert documents.

The reports capability does not import the fan-out capability; it reads the documents it writes
(the fields the shared incident schema names, nothing else). Three reads, each one single-field
query Firestore indexes by itself: incidents opened in a window (``opened_at``), resolved in a
window (``resolved_at``), and those open now (``state``). A document that does not read as an
incident is left out and logged, never guessed at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from shared.logging import get_logger

INCIDENTS = "incidents"
OPEN_STATES = ("triggered", "acknowledged")
PRIORITIES = ("P1", "P2", "P3", "P4")

log = get_logger("reports")


class IncidentRecord(BaseModel):
    """The fields of an incident document the reports measure (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    priority: Literal["P1", "P2", "P3", "P4"]
    severity: str = "high"
    state: Literal["triggered", "acknowledged", "resolved"]
    title: str = ""
    labels: dict[str, str] = {}
    runbook: str | None = None
    opened_at: AwareDatetime
    acknowledged_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    acknowledged_by: str | None = None
    resolved_by: str | None = None
    respond_by: AwareDatetime
    resolve_by: AwareDatetime
    escalation_level: int = 0

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


class IncidentSource(Protocol):
    def opened_between(self, start: datetime, end: datetime) -> list[IncidentRecord]:
        """Incidents with ``start <= opened_at < end``."""
        ...

    def resolved_between(self, start: datetime, end: datetime) -> list[IncidentRecord]:
        """Incidents with ``start <= resolved_at < end``."""
        ...

    def open_now(self) -> list[IncidentRecord]:
        """Incidents triggered or acknowledged, not resolved."""
        ...


def record_of(doc_id: str, doc: dict[str, Any]) -> IncidentRecord | None:
    """The document as a record, or None (logged) when it lacks what the reports measure."""
    try:
        return IncidentRecord.model_validate({"id": doc_id, **doc})
    except ValidationError as exc:
        log.warning(
            "incident document left out of the reports: it does not read as an incident",
            extra={"incident": doc_id, "errors": [".".join(map(str, e["loc"])) for e in exc.errors()]},
        )
        return None


class FirestoreIncidentSource:
    def __init__(self, client: Any = None) -> None:
        from shared.firestore import get_firestore

        self.client = client or get_firestore()

    def _where(self, *conditions: tuple[str, str, Any]) -> list[IncidentRecord]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query: Any = self.client.collection(INCIDENTS)
        for field, op, value in conditions:
            query = query.where(filter=FieldFilter(field, op, value))
        records = [record_of(doc.id, doc.to_dict() or {}) for doc in query.stream()]
        return [r for r in records if r is not None]

    def opened_between(self, start: datetime, end: datetime) -> list[IncidentRecord]:
        return self._where(("opened_at", ">=", start), ("opened_at", "<", end))

    def resolved_between(self, start: datetime, end: datetime) -> list[IncidentRecord]:
        return self._where(("resolved_at", ">=", start), ("resolved_at", "<", end))

    def open_now(self) -> list[IncidentRecord]:
        return self._where(("state", "in", list(OPEN_STATES)))


class MemoryIncidentSource:
    """Incident records held in a list (tests of the pure building code, the bench)."""

    def __init__(self, records: list[IncidentRecord] | None = None) -> None:
        self.records = list(records or [])

    def opened_between(self, start: datetime, end: datetime) -> list[IncidentRecord]:
        return [r for r in self.records if start <= r.opened_at < end]

    def resolved_between(self, start: datetime, end: datetime) -> list[IncidentRecord]:
        return [r for r in self.records if r.resolved_at is not None and start <= r.resolved_at < end]

    def open_now(self) -> list[IncidentRecord]:
        return [r for r in self.records if r.is_open]
