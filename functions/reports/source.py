"""Where panels read from: two small ports and their Firestore implementations.

- ``MetricSource``: the common query API (``shared.metrics.query.run_query``), memoised per
  build so that panels asking the same question (availability and error rate read the same
  request counts) cost one read.
- ``AlertSource``: the alert evaluator's documents, read directly (the reports capability does
  not import the alerts capability): ``alert_states/<fingerprint>`` (``state: firing`` is an
  active alert) and the transition outbox ``alert_transitions/<id>`` (kept 30 days), whose
  firing / resolved pairs are the incidents.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import AwareDatetime, BaseModel

from shared.metrics.query_model import MetricQuery, QueryResult

ALERT_STATES = "alert_states"
ALERT_TRANSITIONS = "alert_transitions"
# An incident that started this long before a window and resolved inside it still shows.
INCIDENT_LOOKBACK = timedelta(days=7)


class ActiveAlert(BaseModel):
    rule: str
    kind: str = "threshold"
    severity: str = "low"
    labels: dict[str, str] = {}
    firing_since: AwareDatetime | None = None
    value: float | None = None
    threshold: float | None = None


class Transition(BaseModel):
    """The fields of an alert transition the incidents need."""

    fingerprint: str
    rule: str
    kind: str = "threshold"
    state: str
    severity: str = "low"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    value: float | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    evaluated_at: AwareDatetime


class MetricSource(Protocol):
    def query(self, query: MetricQuery) -> QueryResult: ...


class AlertSource(Protocol):
    def active(self) -> list[ActiveAlert]: ...

    def transitions(self, start: datetime, end: datetime) -> list[Transition]: ...


class StoreMetricSource:
    """The metric store through the query API's own code."""

    def query(self, query: MetricQuery) -> QueryResult:
        from shared.metrics.query import run_query

        return run_query(query)


class MemoisedMetricSource:
    """Answers each distinct query once (one build: a dashboard, or one report period)."""

    def __init__(self, inner: MetricSource) -> None:
        self.inner = inner
        self._answers: dict[str, Future[QueryResult]] = {}
        self._lock = threading.Lock()
        self.queries = 0

    def query(self, query: MetricQuery) -> QueryResult:
        """Thread-safe: panels built side by side asking the same query wait for one answer."""
        key = query.model_dump_json()
        with self._lock:
            answer = self._answers.get(key)
            asking = answer is None
            if answer is None:
                answer = self._answers[key] = Future()
                self.queries += 1
        if asking:
            try:
                answer.set_result(self.inner.query(query))
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter, raised below
                answer.set_exception(exc)
        return answer.result()


class FirestoreAlertSource:
    def __init__(self, client: Any = None) -> None:
        from shared.firestore import get_firestore

        self.client = client or get_firestore()

    def active(self) -> list[ActiveAlert]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        docs = (
            self.client.collection(ALERT_STATES).where(filter=FieldFilter("state", "==", "firing")).stream()
        )
        return [ActiveAlert.model_validate(doc.to_dict() or {}) for doc in docs]

    def transitions(self, start: datetime, end: datetime) -> list[Transition]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        docs = (
            self.client.collection(ALERT_TRANSITIONS)
            .where(filter=FieldFilter("created_at", ">=", start - INCIDENT_LOOKBACK))
            .where(filter=FieldFilter("created_at", "<", end))
            .stream()
        )
        out = []
        for doc in docs:
            body = (doc.to_dict() or {}).get("transition")
            if isinstance(body, dict):
                out.append(Transition.model_validate(body))
        return out


class MemoryAlertSource:
    """Alerts held in lists (tests of the pure building code, the bench)."""

    def __init__(self, active: list[ActiveAlert] | None = None, transitions: list[Transition] | None = None):
        self._active = active or []
        self._transitions = transitions or []

    def active(self) -> list[ActiveAlert]:
        return list(self._active)

    def transitions(self, start: datetime, end: datetime) -> list[Transition]:
        low = start - INCIDENT_LOOKBACK
        return [t for t in self._transitions if low <= t.evaluated_at < end]
