"""Heartbeats of the scheduled jobs: each job's last success, written by the job's own function.

Every HTTP function answers Cloud Scheduler through ``shared.http.Api``; when a request names a
job of topology.yaml (``X-CloudScheduler-JobName``) served by that capability and the answer is a
success, the job's document in ``job_heartbeats`` records it. The alert evaluator's dead man's
switch reads these records (and the Cloud Scheduler API's view of each job) to notice a job that
has stopped succeeding.

One small document per job, overwritten in place: no TTL, nothing grows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.clock import parse_rfc3339

HEARTBEATS = "job_heartbeats"
JOB_HEADER = "X-CloudScheduler-JobName"
SCHEDULE_TIME_HEADER = "X-CloudScheduler-ScheduleTime"


class Heartbeat(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    job: str
    capability: str
    last_success_at: AwareDatetime
    scheduled_for: AwareDatetime | None = None
    duration_seconds: float
    status: int


def scheduled_job(capability: str, job_name: str | None, path: str | None = None) -> str | None:
    """The job's name when it is a schedule of topology.yaml served by ``capability`` (and, given
    ``path``, called on the job's own path), else None: a header naming anything else, or sent
    with some other request (``GET /v1/rules`` naming ``evaluate-alerts``), is no heartbeat."""
    if not job_name or len(job_name) > 200:
        return None
    from shared.topology import topology

    topo = topology()
    schedule = topo.schedules.get(job_name)
    if schedule is None or topo.functions[schedule.function].capability != capability:
        return None
    if path is not None and path.rstrip("/") != schedule.path.rstrip("/"):
        return None
    return job_name


# Cloud Scheduler's schedule times are near now; anything outside these years is not one of its
# values, and a far-off time would overflow the arithmetic of whoever reads it (UTC conversion,
# a day before, a period's end) or Firestore's timestamp encoding.
EARLIEST_SCHEDULE_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_SCHEDULE_TIME = datetime(2100, 1, 1, tzinfo=UTC)


def read_schedule_time(value: str) -> datetime:
    """Cloud Scheduler's RFC 3339 schedule time as an aware UTC datetime. Raises ``ValueError``
    saying what is wrong: not RFC 3339, no time zone, or outside 2000-2099."""
    if len(value) > 64:
        raise ValueError("is longer than any RFC 3339 time")
    try:
        parsed = parse_rfc3339(value)
    except (ValueError, IndexError):
        raise ValueError("is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise ValueError("names no time zone (end it with Z or an offset)")
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside 2000-2099") from None
    if not EARLIEST_SCHEDULE_TIME <= in_utc < LATEST_SCHEDULE_TIME:
        raise ValueError("is outside 2000-2099")
    return in_utc


def parse_schedule_time(value: str | None) -> datetime | None:
    """The schedule time for a heartbeat record: anything unusable is None, never an error (the
    job did its work; its record must not be lost to a header)."""
    if not value:
        return None
    try:
        return read_schedule_time(value)
    except ValueError:
        return None


def record_success(heartbeat: Heartbeat) -> None:
    from shared.firestore import get_firestore

    get_firestore().collection(HEARTBEATS).document(heartbeat.job).set(heartbeat.model_dump(mode="python"))


def read_heartbeats() -> dict[str, Heartbeat]:
    from shared.firestore import get_firestore

    found: dict[str, Heartbeat] = {}
    for snapshot in get_firestore().collection(HEARTBEATS).stream():
        data = snapshot.to_dict() or {}
        try:
            found[snapshot.id] = Heartbeat.model_validate(data)
        except ValueError:
            continue  # a record of an older shape: the next success overwrites it
    return found
