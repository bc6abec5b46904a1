"""Precise group timers: each due time of a group (``group_wait``, ``group_interval``,
``repeat_interval``) becomes one Cloud Tasks task that calls ``POST /v1/flush/group`` on
manage_alerts at that time, so a medium alert goes out when its group wait ends, not at the next
minute tick.

The task's name is derived from the group and its due time, so arming the same timer twice (a
Pub/Sub redelivery, two instances, the tick re-arming) is refused by the API as
``ALREADY_EXISTS`` and counts as done. The flush endpoint is safe to call twice or early (it
flushes only what is due). A timer that could not be armed is logged as an error and served by
the flush tick (Cloud Scheduler, every minute), which stays as the safety net.

``Timers`` is the port: ``CloudTasksTimers`` (the real ``google-cloud-tasks`` client, also against
a local stand-in) and ``TickOnlyTimers`` (a local run without a queue: labelled, tick only).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import urlsplit

from functions.fanout.records import GROUPS, GroupRecord
from functions.fanout.settings import FanoutSettings, get_fanout_settings
from shared.firestore import get_firestore
from shared.health import PROBE_TIMEOUT_SECONDS, Probe
from shared.logging import get_logger

log = get_logger("fanout.timers")
FLUSH_PATH = "/v1/flush/group"
# Cloud Tasks refuses a schedule_time more than 30 days ahead; the tick serves such a timer.
MAX_AHEAD = timedelta(days=30)


class Timers(Protocol):
    label: str

    def arm(self, group_id: str, due: datetime) -> None:
        """Have ``group_id`` flushed at ``due``; arming the same timer again changes nothing."""
        ...


def due_ceiling(due: datetime) -> datetime:
    """``due`` rounded up to the millisecond: the timer never fires before the group is due."""
    micros = math.ceil(due.astimezone(UTC).microsecond / 1000) * 1000
    return due.astimezone(UTC).replace(microsecond=0) + timedelta(microseconds=micros)


def task_id(group_id: str, due: datetime) -> str:
    """The task id of a group's timer: the group's hash first (Cloud Tasks spreads load by name
    prefix), its severity, the due time in epoch milliseconds."""
    severity, _, digest = group_id.partition("-")
    return f"{digest}-{severity}-{round(due_ceiling(due).timestamp() * 1000)}"


def flush_body(group_id: str, due: datetime) -> dict[str, str]:
    return {"group_id": group_id, "due_at": due_ceiling(due).isoformat().replace("+00:00", "Z")}


class CloudTasksTimers:
    label = "cloud-tasks"

    def __init__(self, settings: FanoutSettings) -> None:
        if not settings.tasks_queue or not settings.flush_url:
            raise ValueError("Cloud Tasks timers need ION_FANOUT_TASKS_QUEUE and ION_FANOUT_FLUSH_URL")
        self.queue = settings.tasks_queue
        self.url = settings.flush_url
        self.service_account = settings.tasks_service_account
        self.endpoint = settings.tasks_endpoint
        self.timeout = settings.request_timeout_seconds

    def arm(self, group_id: str, due: datetime) -> None:
        from google.api_core import exceptions, retry
        from google.cloud import tasks_v2
        from google.protobuf import timestamp_pb2

        schedule = timestamp_pb2.Timestamp()
        schedule.FromDatetime(due_ceiling(due))
        http: dict[str, Any] = {
            "url": self.url,
            "http_method": tasks_v2.HttpMethod.POST,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(flush_body(group_id, due)).encode(),
        }
        if self.service_account:
            parts = urlsplit(self.url)
            http["oidc_token"] = {
                "service_account_email": self.service_account,
                "audience": f"{parts.scheme}://{parts.netloc}",  # the function's URL, as Cloud Run expects
            }
        task = {
            "name": f"{self.queue}/tasks/{task_id(group_id, due)}",
            "schedule_time": schedule,
            "http_request": http,
        }
        # Creating a named task is idempotent, so transient errors are retried (bounded).
        transient = retry.Retry(
            predicate=retry.if_exception_type(
                exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.InternalServerError
            ),
            initial=0.2,
            maximum=2.0,
            timeout=self.timeout,
        )
        try:
            _client(self.endpoint or "").create_task(
                parent=self.queue, task=task, retry=transient, timeout=self.timeout
            )
        except exceptions.Conflict as exc:
            if not _already_exists(exc):
                raise
            return  # armed before (a redelivery, another instance): the timer is there
        log.info("timer armed", extra={"group_id": group_id, "due_at": flush_body(group_id, due)["due_at"]})


class QueueNotRunning(Exception):
    """The timer queue exists but is paused or disabled: its tasks wait, the tick serves groups."""


def timers_probe() -> Probe | None:
    """``/health``'s probe of the timer queue: one ``GetQueue`` (reachable, known to us, and
    running), through the client that arms the timers. None when the timers are tick-only (then
    Cloud Tasks is no dependency)."""
    timers = get_timers()
    if not isinstance(timers, CloudTasksTimers):
        return None

    def check() -> None:
        from google.cloud import tasks_v2

        queue = _client(timers.endpoint or "").get_queue(
            name=timers.queue, retry=None, timeout=PROBE_TIMEOUT_SECONDS
        )
        if queue.state != tasks_v2.Queue.State.RUNNING:
            raise QueueNotRunning(f"queue {timers.queue} is {queue.state.name}")

    return Probe(f"cloudtasks:{timers.queue.rsplit('/', 1)[1]}", check)


def _already_exists(exc: Any) -> bool:
    """gRPC says ALREADY_EXISTS; REST says 409 with that status (other 409s are ABORTED)."""
    from google.api_core import exceptions

    if isinstance(exc, exceptions.AlreadyExists):
        return True
    response = getattr(exc, "response", None)
    try:
        return response is not None and response.json()["error"]["status"] == "ALREADY_EXISTS"
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


@lru_cache(maxsize=2)
def _client(endpoint: str) -> Any:
    from google.cloud import tasks_v2

    if not endpoint:
        return tasks_v2.CloudTasksClient()
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    # A local stand-in: plain HTTP REST, no Google credentials.
    return tasks_v2.CloudTasksClient(
        transport="rest",
        client_options=ClientOptions(api_endpoint=endpoint),
        credentials=AnonymousCredentials(),
    )


class TickOnlyTimers:
    """A local run without ``ION_FANOUT_TASKS_QUEUE``: the minute tick serves every timer (so a
    medium group waits 30-90 s). Never used deployed: a deployed fan-out without a queue refuses
    to start."""

    label = "tick-only (local fallback)"

    def arm(self, group_id: str, due: datetime) -> None:
        log.debug("no timer queue: the flush tick serves this group", extra={"group_id": group_id})


@lru_cache(maxsize=1)
def get_timers() -> Timers:
    settings = get_fanout_settings()
    if settings.tasks_queue and settings.flush_url:
        return CloudTasksTimers(settings)
    log.warning(
        "ION_FANOUT_TASKS_QUEUE or ION_FANOUT_FLUSH_URL unset: group timers are served by the "
        "minute flush tick only (a local fallback)"
    )
    return TickOnlyTimers()


def reset_timers() -> None:
    get_timers.cache_clear()
    _client.cache_clear()


def arm_group(group: GroupRecord, now: datetime, *, also: tuple[datetime | None, ...] = ()) -> list[datetime]:
    """Arm the group's future due times (its pending flush, its repeat, ``also``: its incident's
    next escalation); returns them. A timer that cannot be armed is logged, never raised: the
    flush tick serves it within a minute."""
    timers = get_timers()
    armed = []
    dues = [group.next_flush_at if group.pending else None, group.repeat_at, *also]
    for due in sorted({d for d in dues if d is not None and now < d <= now + MAX_AHEAD}):
        try:
            timers.arm(group.group_id, due)
            armed.append(due)
        except Exception:
            log.exception(
                "could not arm the timer of group %s at %s; the flush tick serves it",
                group.group_id,
                due.isoformat(),
                extra={"group_id": group.group_id, "timers": timers.label},
            )
    return armed


def arm_stored_group(group_id: str, now: datetime) -> list[datetime]:
    """Arm the timers of a group as stored now (after a flush or a repeat changed them), and the
    next escalation of its incident (the same timer: ``/v1/flush/group`` escalates what is due)."""
    snapshot = get_firestore().collection(GROUPS).document(group_id).get()
    if not snapshot.exists:
        return []
    group = GroupRecord.model_validate(snapshot.to_dict())
    escalation = None
    if group.incident_id:
        from functions.fanout.incident_store import get_store

        incident = get_store().get(group.incident_id)
        escalation = incident.next_escalation_at if incident else None
    return arm_group(group, now, also=(escalation,))
