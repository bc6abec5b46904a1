"""What the router records of a request that succeeded: an audit entry for a change whose handler
wrote none, and a heartbeat for a scheduled job of the capability (the dead man's switch)."""

from __future__ import annotations

import logging

import flask

from shared.http.operations import Operation


def audit_change(
    request: flask.Request,
    status: int,
    operation: Operation,
    roles: tuple[str, ...],
    *,
    log: logging.Logger,
    capability: str,
) -> None:
    """An audit entry for a change of ``operation`` whose handler wrote none (shared/audit.py):
    none for a public route or a scheduled job's identity."""
    from shared.audit import AUDITED_KEY, CALLER_KEY, audit
    from shared.roles import PUBLIC, is_job_identity

    caller = request.environ.get(CALLER_KEY)
    if caller is None or request.environ.get(AUDITED_KEY):
        return
    if roles == (PUBLIC,) or is_job_identity(caller.principal):
        return
    audit(
        log,
        f"{capability}.{operation.operation_id}",
        request.headers,
        f"{request.method} {request.path}",
        method=request.method,
        path=request.path,
        status=status,
    )


def record_heartbeat(
    request: flask.Request, status: int, duration: float, *, log: logging.Logger, capability: str
) -> None:
    """A scheduled job of ``capability`` succeeded: record it for the dead man's switch.
    Failing to record is logged, not answered: the job did its work, and the switch will
    notice the missing record if it keeps failing."""
    from shared import heartbeats

    job = heartbeats.scheduled_job(capability, request.headers.get(heartbeats.JOB_HEADER), request.path)
    if job is None or request.method != "POST":
        return
    from shared.clock import utcnow

    try:
        heartbeats.record_success(
            heartbeats.Heartbeat(
                job=job,
                capability=capability,
                last_success_at=utcnow(),
                scheduled_for=heartbeats.parse_schedule_time(
                    request.headers.get(heartbeats.SCHEDULE_TIME_HEADER)
                ),
                duration_seconds=round(duration, 3),
                status=status,
            )
        )
    except Exception:  # see the docstring
        log.exception("recording the heartbeat of job %s failed", job, extra={"job": job})
