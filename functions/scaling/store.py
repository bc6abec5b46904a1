"""Where decisions and the per-region state live: Firestore ``scaling_state/{region}`` (the state
the next decision needs, the last decisions for the API) and ``scaling_decisions/{region}-{slot}``
(every decision with its inputs and outcome, expiring after ``ION_SCALING_DECISIONS_TTL_DAYS``).
One decision per region and 5-minute slot: a retried or overlapping run finds its slot taken and
changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError, field_validator

from functions.scaling.models import Decision, ScalingState
from shared.logging import get_logger

STATE_COLLECTION = "scaling_state"
DECISIONS_COLLECTION = "scaling_decisions"
KEEP_LAST = 12
log = get_logger("scaling.store")

# "failed": a passing fault, retried in the same slot; "misconfigured": the API refused for good
# (no such service, no permission), reported once and tried again next slot, never retried at once.
Outcome = Literal["applied", "unchanged", "dry-run", "failed", "misconfigured"]


class DecisionRecord(BaseModel):
    decision: Decision
    slot: str
    service: str
    outcome: Outcome
    error: str | None = None
    monthly_cost_change_usd: float
    duration_ms: float


class StoredRegion(BaseModel):
    """The region's document. During a deploy an older instance reads and writes back what a newer
    one stored (``shared/compat.py``): fields it does not know are kept, an outcome it does not
    know reads as a decision made (only ``failed`` is retried), and a recent decision it cannot
    read (a newer binding or outcome) is left out of its list, never a failed cycle."""

    model_config = ConfigDict(extra="allow")

    state: ScalingState = ScalingState()
    last_slot: str | None = None
    last_outcome: Outcome | str | None = None
    recent: list[DecisionRecord] = []
    updated_at: AwareDatetime | None = None

    @field_validator("recent", mode="before")
    @classmethod
    def _readable(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        readable = []
        for item in value:
            try:
                readable.append(DecisionRecord.model_validate(item))
            except ValidationError as exc:
                log.warning(
                    "leaving out a recent decision this version cannot read", extra={"errors": str(exc)[:300]}
                )
        return readable


class DecisionStore(Protocol):
    def load(self, region: str) -> StoredRegion: ...

    def commit(self, region: str, record: DecisionRecord, state: ScalingState, ttl: timedelta) -> bool: ...


def _next(stored: StoredRegion, record: DecisionRecord, state: ScalingState) -> StoredRegion:
    return StoredRegion(
        **(stored.model_extra or {}),
        state=state,
        last_slot=record.slot,
        last_outcome=record.outcome,
        recent=[record, *stored.recent][:KEEP_LAST],
        updated_at=record.decision.at,
    )


def slot_taken(stored: StoredRegion, slot: str) -> bool:
    """Decided already (a failed slot is retried), or a later slot was: a late retry of an older
    slot never overrides a newer decision (slots sort as text)."""
    if stored.last_slot is None:
        return False
    return stored.last_slot > slot or (stored.last_slot == slot and stored.last_outcome != "failed")


class MemoryDecisionStore:
    def __init__(self) -> None:
        self.regions: dict[str, StoredRegion] = {}
        self.records: dict[str, DecisionRecord] = {}

    def load(self, region: str) -> StoredRegion:
        return self.regions.get(region, StoredRegion())

    def commit(self, region: str, record: DecisionRecord, state: ScalingState, ttl: timedelta) -> bool:
        stored = self.load(region)
        if slot_taken(stored, record.slot):
            return False
        self.regions[region] = _next(stored, record, state)
        self.records[f"{region}-{record.slot}"] = record
        return True


class FirestoreDecisionStore:
    def __init__(self) -> None:
        from shared.firestore import get_firestore

        self.client = get_firestore()

    def load(self, region: str) -> StoredRegion:
        snapshot = self.client.collection(STATE_COLLECTION).document(region).get()
        return StoredRegion.model_validate(snapshot.to_dict()) if snapshot.exists else StoredRegion()

    def commit(self, region: str, record: DecisionRecord, state: ScalingState, ttl: timedelta) -> bool:
        from shared.firestore import run_transaction

        state_ref = self.client.collection(STATE_COLLECTION).document(region)
        decision_ref = self.client.collection(DECISIONS_COLLECTION).document(f"{region}-{record.slot}")

        def work(transaction: Any) -> bool:
            snapshot = state_ref.get(transaction=transaction)
            stored = StoredRegion.model_validate(snapshot.to_dict()) if snapshot.exists else StoredRegion()
            if slot_taken(stored, record.slot):
                return False
            transaction.set(state_ref, _next(stored, record, state).model_dump(mode="json"))
            expire_at: datetime = record.decision.at + ttl
            transaction.set(
                decision_ref, {**record.model_dump(mode="json"), "region": region, "expire_at": expire_at}
            )
            return True

        return run_transaction(work, client=self.client)


PEAKS_COLLECTION = "scaling_daily_peaks"  # no TTL: the long history the capacity forecast needs
CAPACITY_COLLECTION = "scaling_capacity"


class FirestoreCapacityStore:
    def __init__(self) -> None:
        from shared.firestore import get_firestore

        self.client = get_firestore()

    def save_peaks(self, peaks: list[Any]) -> None:
        batch = self.client.batch()
        for count, peak in enumerate(peaks, start=1):
            ref = self.client.collection(PEAKS_COLLECTION).document(f"{peak.region}-{peak.date.isoformat()}")
            batch.set(ref, peak.model_dump(mode="json"))
            if count % 400 == 0:
                batch.commit()
                batch = self.client.batch()
        batch.commit()

    def peaks(self, region: str) -> list[dict[str, Any]]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self.client.collection(PEAKS_COLLECTION).where(filter=FieldFilter("region", "==", region))
        return [doc.to_dict() for doc in query.stream()]

    def save_forecast(self, region: str, forecast: dict[str, Any]) -> None:
        self.client.collection(CAPACITY_COLLECTION).document(region).set(forecast)

    def forecasts(self) -> dict[str, dict[str, Any]]:
        return {doc.id: doc.to_dict() for doc in self.client.collection(CAPACITY_COLLECTION).stream()}


class MemoryCapacityStore:
    """The capacity store in memory, for replay and tests."""

    def __init__(self) -> None:
        self.kept: dict[str, dict[str, Any]] = {}
        self.saved: dict[str, dict[str, Any]] = {}

    def save_peaks(self, peaks: list[Any]) -> None:
        for peak in peaks:
            self.kept[f"{peak.region}-{peak.date.isoformat()}"] = peak.model_dump(mode="json")

    def peaks(self, region: str) -> list[dict[str, Any]]:
        return [doc for doc in self.kept.values() if doc["region"] == region]

    def save_forecast(self, region: str, forecast: dict[str, Any]) -> None:
        self.saved[region] = forecast
