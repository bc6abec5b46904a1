"""What a route declares (its contract, for validation and the OpenAPI document), and the
scheduler's meant-to-run time a job reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import flask
from pydantic import BaseModel

from shared.http.problems import Problem

Handler = Callable[..., Any]


def scheduled_time(request: flask.Request) -> datetime | None:
    """When Cloud Scheduler meant this run (``X-CloudScheduler-ScheduleTime``, UTC), None when the
    header is absent; a value that is no such time is 400 naming the header, never a 500."""
    from shared import heartbeats

    value = request.headers.get(heartbeats.SCHEDULE_TIME_HEADER)
    if not value:
        return None
    try:
        return heartbeats.read_schedule_time(value)
    except ValueError as exc:
        raise Problem(
            400,
            f"{heartbeats.SCHEDULE_TIME_HEADER} {exc}; send an RFC 3339 time with a zone, "
            "e.g. 2026-03-02T08:00:00Z.",
        ) from None


@dataclass(frozen=True)
class Reply:
    """One documented answer of a route: its JSON model (None: any JSON value, or no body when
    ``media`` is empty; ``"module:Name"`` names one imported only when the document is built),
    its media types, and the headers it carries."""

    model: type[BaseModel] | str | None = None
    media: tuple[str, ...] = ("application/json",)
    description: str = ""
    headers: tuple[str, ...] = ()


ReplySpec = type[BaseModel] | str | Reply | None

# What every /health route declares: ``@api.route("/health", **HEALTH_ROUTE)``.
HEALTH_ROUTE: dict[str, Any] = {
    # Any caller Cloud Run lets in (uptime checks, the deployment rehearsal): it changes nothing.
    "role": "public",
    "responses": {200: "shared.health:HealthReport", 503: "shared.health:HealthReport"},
    "problems": (429,),
    "summary": "Health: each dependency probed (cached a few seconds); 503 when one is down.",
}


@dataclass(frozen=True)
class Operation:
    """A route's contract: what ``Api`` validates before the handler runs (path variables, query,
    body) and what it answers. ``shared.openapi`` builds the OpenAPI document from these same
    models, so the document cannot drift from what the code accepts."""

    path: str
    methods: tuple[str, ...]
    handler: Handler
    operation_id: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_required: bool = True
    raw_body: tuple[str, ...] = ()
    params: type[BaseModel] | None = None
    responses: dict[int, Reply] = field(default_factory=dict)
    problems: tuple[int, ...] = ()
    summary: str | None = None
    links: dict[int, dict[str, dict[str, str]]] = field(default_factory=dict)
    # The roles any one of which lets a caller in (shared.roles); None: shared.roles.default_roles.
    role: tuple[str, ...] | None = None


def caller_of(request: flask.Request) -> str:
    """The verified principal who made ``request`` (set by ``Api`` before the handler runs)."""
    from shared.audit import actor

    return actor(request.headers)


def reply_of(spec: ReplySpec) -> Reply:
    if isinstance(spec, Reply):
        return spec
    return Reply(model=spec)


def first_line(doc: str | None) -> str | None:
    if not doc:
        return None
    text = " ".join(doc.strip().split("\n\n")[0].split())
    return text or None
