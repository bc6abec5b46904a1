"""The dead man's switch of the scheduled jobs: a rule of kind ``heartbeat`` fires for each job of
topology.yaml that has not succeeded within ``factor`` times its interval.

A job's last success is the later of its own heartbeat (written by its function on a successful
answer, ``shared.heartbeats``) and the Cloud Scheduler API's last attempt when that attempt
succeeded. The API also says when a job is paused or its last attempt failed, which goes into the
alert. A job never seen succeeding counts from when this switch first watched it, so a fresh
deployment does not page for a weekly job that has not yet had its first run.

``observe_jobs`` is pure (tested without the emulator); ``JobWatch`` gathers its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from functions.alerts.rules import HeartbeatRule
from functions.alerts.state import Observation
from shared.heartbeats import Heartbeat
from shared.topology import Schedule

WATCHED_SINCE = ("alert_watchdog", "jobs")


@dataclass(frozen=True)
class SchedulerJob:
    """A job as the Cloud Scheduler API reports it."""

    name: str
    state: str
    last_attempt_at: datetime | None
    last_attempt_ok: bool | None
    message: str = ""


@dataclass(frozen=True)
class JobStatus:
    job: str
    function: str
    interval: timedelta
    last_success_at: datetime | None
    counted_from: datetime
    overdue_ratio: float
    scheduler: SchedulerJob | None


class SchedulerJobs(Protocol):
    def jobs(self) -> dict[str, SchedulerJob]: ...


def interval(schedule: Schedule, now: datetime) -> timedelta:
    """The gap between the two fire times around ``now`` in the job's own time zone (a weekly job's
    is a week; a DST change shows up as the hour it adds or removes)."""
    from croniter import croniter

    local = now.astimezone(ZoneInfo(schedule.time_zone))
    previous = croniter(schedule.cron, local).get_prev(datetime)
    following = croniter(schedule.cron, local).get_next(datetime)
    return following.astimezone(UTC) - previous.astimezone(UTC)


# The schedule's gaps walked at most; past them, the rest counts in gaps as long as the last one.
MAX_GAPS = 500


def intervals_elapsed(schedule: Schedule, since: datetime, now: datetime) -> float:
    """How many of the schedule's own intervals lie between ``since`` and ``now``: one per gap
    between two fire times, and the shares of the gaps holding ``since`` and ``now``. A weekday
    job's weekend is one interval, as a daily job's night is, and a short month as much as a long
    one (the interval around ``now`` alone made Monday's run three intervals late when it started)."""
    from croniter import croniter

    if now <= since:
        return 0.0
    fires = croniter(schedule.cron, since.astimezone(ZoneInfo(schedule.time_zone)))
    following = fires.get_next(datetime)
    # The fire time before the next one: ``since`` itself when it is one (get_prev is strict).
    left = croniter(schedule.cron, following).get_prev(datetime).astimezone(UTC)
    right = following.astimezone(UTC)
    total = -(since - left) / (right - left)
    for _ in range(MAX_GAPS):
        if now < right:
            break
        total += 1
        left, right = right, fires.get_next(datetime).astimezone(UTC)
    return total + (now - left) / (right - left)


def job_statuses(
    schedules: dict[str, Schedule],
    heartbeats: dict[str, Heartbeat],
    scheduler: dict[str, SchedulerJob],
    watched_since: dict[str, datetime],
    now: datetime,
) -> list[JobStatus]:
    out = []
    for name, schedule in sorted(schedules.items()):
        beat = heartbeats.get(name)
        seen = scheduler.get(name)
        successes = [beat.last_success_at] if beat else []
        if seen and seen.last_attempt_ok and seen.last_attempt_at:
            successes.append(seen.last_attempt_at)
        last = max(successes) if successes else None
        every = interval(schedule, now)
        counted_from = last or watched_since.get(name, now)
        out.append(
            JobStatus(
                job=name,
                function=schedule.function,
                interval=every,
                last_success_at=last,
                counted_from=counted_from,
                overdue_ratio=intervals_elapsed(schedule, counted_from, now),
                scheduler=seen,
            )
        )
    return out


def observe_jobs(rule: HeartbeatRule, statuses: list[JobStatus]) -> list[Observation]:
    # The labels name the job only: a paused job or a failed attempt is the same alert, whose
    # details GET /v1/schedules shows.
    return [
        Observation(
            {"job": s.job, "function": s.function},
            round(s.overdue_ratio, 3),
            s.overdue_ratio > rule.factor,
            rule.factor,
        )
        for s in statuses
    ]


class CloudSchedulerJobs:
    """The Cloud Scheduler API (``google-cloud-scheduler``), or a stand-in at ``endpoint``."""

    def __init__(self, project: str, location: str, endpoint: str | None = None) -> None:
        self.parent = f"projects/{project}/locations/{location}"
        self.endpoint = endpoint
        self._client = None

    def _get_client(self):  # type: ignore[no-untyped-def]
        if self._client is None:
            from google.cloud import scheduler_v1

            if self.endpoint:
                from google.api_core.client_options import ClientOptions
                from google.auth.credentials import AnonymousCredentials

                self._client = scheduler_v1.CloudSchedulerClient(
                    transport="rest",
                    credentials=AnonymousCredentials(),
                    client_options=ClientOptions(api_endpoint=self.endpoint),
                )
            else:
                self._client = scheduler_v1.CloudSchedulerClient()
        return self._client

    def jobs(self) -> dict[str, SchedulerJob]:
        found = {}
        for job in self._get_client().list_jobs(parent=self.parent):
            name = job.name.rsplit("/", 1)[-1]
            attempted = job.last_attempt_time
            attempted_at = attempted if isinstance(attempted, datetime) and attempted.year > 1970 else None
            found[name] = SchedulerJob(
                name=name,
                state=job.state.name,
                last_attempt_at=attempted_at.astimezone(UTC) if attempted_at else None,
                last_attempt_ok=(job.status.code == 0) if attempted_at else None,
                message=job.status.message,
            )
        return found


class JobWatch:
    """Production inputs of the switch: topology's schedules, the heartbeats in Firestore, the
    Cloud Scheduler API (when configured) and when each job was first watched."""

    def __init__(self, scheduler: SchedulerJobs | None) -> None:
        self.scheduler = scheduler
        self.scheduler_error: str | None = None

    def statuses(self, now: datetime) -> list[JobStatus]:
        from shared.heartbeats import read_heartbeats
        from shared.topology import topology

        schedules = topology().schedules
        scheduler: dict[str, SchedulerJob] = {}
        self.scheduler_error = None
        if self.scheduler is not None:
            try:
                scheduler = self.scheduler.jobs()
            except Exception as exc:  # noqa: BLE001 - the heartbeats alone still decide
                self.scheduler_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        return job_statuses(schedules, read_heartbeats(), scheduler, self._watched_since(schedules, now), now)

    def observe(self, rule: HeartbeatRule, now: datetime) -> list[Observation]:
        return observe_jobs(rule, self.statuses(now))

    @staticmethod
    def _watched_since(schedules: dict[str, Schedule], now: datetime) -> dict[str, datetime]:
        from shared.firestore import get_firestore

        ref = get_firestore().collection(WATCHED_SINCE[0]).document(WATCHED_SINCE[1])
        known = ref.get().to_dict() or {}
        new = {name: now for name in schedules if name not in known}
        if new:
            ref.set(new, merge=True)
        return {**known, **new}
