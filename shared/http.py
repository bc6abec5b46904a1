"""One HTTP shape for every function: routing by path and method, bounded JSON bodies, and
errors as problem+json (RFC 9457) that say what was wrong and what is allowed.

Bad input never becomes a 500: it is a ``Problem`` with a 4xx status. Only a bug in our own
code reaches the 500 handler, which logs it with its trace.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import flask
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from shared.logging import get_logger, parse_trace_header, reset_trace, set_trace
from shared.settings import get_settings
from shared.transient import is_transient
from shared.validation import validation_errors

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

M = TypeVar("M", bound=BaseModel)
Handler = Callable[..., Any]

PROBLEM_JSON = "application/problem+json"
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ENDPOINT_KEY = "ion.endpoint"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

log = get_logger("http")


class Problem(Exception):
    """An error answer: raise it anywhere below a handler to stop and answer with it."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    def to_response(self, instance: str | None = None) -> flask.Response:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        response = flask.Response(json.dumps(body), status=self.status, mimetype=PROBLEM_JSON)
        for key, value in self.headers.items():
            response.headers[key] = value
        return response


@contextmanager
def unavailable_when_transient(
    detail: str, *, logger: logging.Logger, message: str, retry_after: int | None = None
) -> Iterator[None]:
    """A transient error (``is_transient``) inside the block answers 503 with ``detail`` (which may
    name the error's class as ``{exc}``: its text can carry hosts and ids, so it goes to the log
    only) and ``Retry-After`` when given, after logging ``message`` with it as a warning; any
    other error passes through."""
    try:
        yield
    except Exception as exc:
        if not is_transient(exc):
            raise
        logger.warning(message, exc)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        raise Problem(503, detail.format(exc=type(exc).__name__), headers=headers) from None


_BODY_KEY = "ion.body"


class _BoundedStream:
    """A request body stream that yields at most ``cap`` bytes, then ends."""

    def __init__(self, raw: Any, cap: int) -> None:
        self._raw = raw
        self._left = cap

    def read(self, size: int | None = -1) -> bytes:
        want = self._left if size is None or size < 0 else min(size, self._left)
        parts: list[bytes] = []
        while want > 0:  # a stream's read(n) may return less than n before its end
            part = self._raw.read(min(want, 64 * 1024))
            if not part:
                break
            parts.append(part)
            want -= len(part)
            self._left -= len(part)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        return self.read(size)


def bound_body(request: flask.Request, *, max_bytes: int | None = None) -> None:
    """Let nothing read more than the limit + 1 bytes of this request's body, whoever reads it:
    a chunked body has no Content-Length to refuse it by, and functions-framework reads the rest
    of every body into memory after the answer."""
    if isinstance(request.stream, _BoundedStream):
        return
    limit = max_bytes or get_settings().max_body_bytes
    request.stream = _BoundedStream(request.stream, limit + 1)  # type: ignore[misc]


def read_body(request: flask.Request, *, max_bytes: int | None = None) -> bytes:
    """The raw body, refusing more than ``max_bytes`` (413) without reading it all, chunked or
    not. Read bodies only through here, never with ``request.get_data``."""
    limit = max_bytes or get_settings().max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, f"Body of {request.content_length} bytes exceeds the limit of {limit} bytes.")
    data = request.environ.get(_BODY_KEY)
    if data is None:
        bound_body(request, max_bytes=limit)
        data = request.stream.read(limit + 1)
        request.environ[_BODY_KEY] = data
    if len(data) > limit:
        raise Problem(413, f"Body exceeds the limit of {limit} bytes.")
    return data


def body_read_so_far(request: flask.Request) -> bytes:
    """The body as ``read_body`` read it, or nothing if no handler read it (an answer given
    before the body was needed must not read the body afterwards)."""
    data: bytes | None = request.environ.get(_BODY_KEY)
    return data if data is not None else b""


def read_json(request: flask.Request, model: type[M], *, max_bytes: int | None = None) -> M:
    """Parse and validate a JSON body: 415 wrong type, 413 too big, 400 not JSON, 422 invalid."""
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise Problem(
            415,
            f"Content-Type {mimetype or '(none)'} is not supported here; send application/json.",
            allowed=["application/json"],
        )
    data = read_body(request, max_bytes=max_bytes)
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            raise Problem(400, "Body is not valid JSON.", errors=errors) from None
        problem = _field_problem(exc, model, status=422, what="Body fields are")
        problem.detail = "Body does not match the expected shape. " + problem.detail
        raise problem from None


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    if isinstance(payload, BaseModel):
        text = payload.model_dump_json()
    else:
        text = json.dumps(payload, default=_json_default)
    response = flask.Response(text, status=status, mimetype="application/json")
    if headers:
        for key, value in headers.items():
            response.headers[key] = value
    return response


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


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


class Api:
    """A small path router for one HTTP function, on werkzeug's routing (already loaded by Flask).

    Handlers take the Flask request and the path's variables and return a ``flask.Response``,
    a pydantic model or a JSON-serialisable value (answered with 200).

    A route may declare its contract: ``params`` (a model of the path variables: a value that
    fails it is a 404, as no such resource can exist), ``query`` (a model of the query string:
    422 naming the parameter and what is allowed), ``body`` (a JSON body model, read through
    ``read_json``: 415/413/400/422; ``body_required=False`` makes an empty body the model's
    defaults; ``raw_body`` names the media types of a body the handler reads itself through
    ``read_body``), ``response``/``responses`` (what it answers), ``problems`` (the 4xx/5xx it may
    answer besides those) and ``links`` (OpenAPI links, for stateful tests). The validated
    ``query`` and ``body`` reach the handler as keyword arguments of those names. Every Api
    serves its OpenAPI 3.1 document at ``GET /openapi.json``.

    Before a handler runs, the caller is verified and must hold the route's role
    (``shared.roles``): ``role=`` on the route, else the Api's ``role``, else the default rule
    (GET viewer, writes operator, the capability's scheduler job paths the scheduler or an
    operator); 401/403 otherwise, naming the role.
    """

    def __init__(
        self,
        name: str,
        *,
        problems: Iterable[int] = (),
        security: dict[str, Any] | None = None,
        role: str | Iterable[str] | None = None,
    ) -> None:
        from shared.roles import normalize_roles

        self.name = name
        self.role = normalize_roles(role) if role is not None else None
        self._roles: dict[str, tuple[str, ...]] | None = None
        self._map = Map(strict_slashes=False, merge_slashes=True)
        self._operations: dict[str, Operation] = {}
        self._adapter = None
        self._log = get_logger(name)
        self._openapi: dict[str, Any] | None = None
        # Problems every route may answer (e.g. 401/429 of an API key check before the routes).
        self.problems = tuple(problems)
        self.security = security
        self.route(
            "/openapi.json",
            summary="This function's API contract (OpenAPI 3.1), generated from its models.",
            responses={200: Reply(description="The OpenAPI document.")},
        )(self._serve_openapi)

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        *,
        query: type[BaseModel] | None = None,
        body: type[BaseModel] | None = None,
        body_required: bool = True,
        raw_body: Iterable[str] = (),
        params: type[BaseModel] | None = None,
        response: ReplySpec = None,
        responses: dict[int, ReplySpec] | None = None,
        problems: Iterable[int] = (),
        summary: str | None = None,
        links: dict[int, dict[str, dict[str, str]]] | None = None,
        role: str | Iterable[str] | None = None,
    ) -> Callable[[Handler], Handler]:
        from shared.roles import normalize_roles

        declared_role = normalize_roles(role) if role is not None else self.role
        replies = {status: _reply(spec) for status, spec in (responses or {}).items()}
        if response is not None or not replies:
            replies = {200: _reply(response), **replies}

        def register(handler: Handler) -> Handler:
            name = getattr(handler, "__name__", "handler").lstrip("_")
            operation_id = name
            if any(op.operation_id == name for op in self._operations.values()):
                operation_id = f"{name}_{len(self._operations)}"
            endpoint = f"{handler.__module__}.{handler.__qualname__}#{len(self._operations)}"
            self._operations[endpoint] = Operation(
                path=path,
                methods=tuple(methods),
                handler=handler,
                operation_id=operation_id,
                query=query,
                body=body,
                body_required=body_required,
                raw_body=tuple(raw_body),
                params=params,
                responses=replies,
                problems=tuple(problems),
                summary=summary or _first_line(handler.__doc__),
                links=links or {},
                role=declared_role,
            )
            self._map.add(Rule(path, endpoint=endpoint, methods=list(methods)))
            self._adapter = None
            self._openapi = None
            self._roles = None
            return handler

        return register

    def operations(self) -> list[Operation]:
        return list(self._operations.values())

    def roles(self) -> dict[str, tuple[str, ...]]:
        """Endpoint => the roles any one of which may call it (declared, or the default rule)."""
        if self._roles is None:
            from shared.roles import default_roles, scheduled_paths

            adapter = self._map.bind("localhost")
            scheduled: set[str] = set()
            for path in scheduled_paths().get(self.name, ()):
                try:
                    scheduled.add(adapter.match(path, "POST")[0])
                except (NotFound, MethodNotAllowed):
                    continue
            self._roles = {
                endpoint: op.role or default_roles(op.path, op.methods, scheduled=endpoint in scheduled)
                for endpoint, op in self._operations.items()
            }
        return self._roles

    def role_table(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(method, path, roles) of every route, for the README's who-may-call-what table."""
        roles = self.roles()
        return sorted(
            (method, op.path, roles[endpoint])
            for endpoint, op in self._operations.items()
            for method in op.methods
        )

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of this function (built once)."""
        if self._openapi is None:
            from shared.openapi import build_document

            self._openapi = build_document(self)
        return self._openapi

    def _serve_openapi(self, _request: flask.Request) -> flask.Response:
        return json_response(self.openapi())

    def __call__(self, request: flask.Request) -> flask.Response:
        token = set_trace(
            parse_trace_header(
                request.headers.get("traceparent"), request.headers.get("X-Cloud-Trace-Context")
            )
        )
        started = time.monotonic()
        bound_body(request)
        try:
            response = self._dispatch(request)
            if request.method in _CHANGES and response.status_code < 400:
                self._audit_change(request, response.status_code)
            if response.status_code < 300 and request.headers.get("X-CloudScheduler-JobName"):
                self._heartbeat(request, response.status_code, time.monotonic() - started)
            return response
        finally:
            reset_trace(token)

    def _audit_change(self, request: flask.Request, status: int) -> None:
        """An audit entry for a change whose handler wrote none (shared/audit.py)."""
        from shared.audit import AUDITED_KEY, CALLER_KEY, audit
        from shared.roles import PUBLIC, is_job_identity

        endpoint = request.environ.get(_ENDPOINT_KEY)
        caller = request.environ.get(CALLER_KEY)
        if endpoint is None or caller is None or request.environ.get(AUDITED_KEY):
            return
        if self.roles()[endpoint] == (PUBLIC,) or is_job_identity(caller.principal):
            return
        operation = self._operations[endpoint].operation_id
        audit(
            self._log,
            f"{self.name}.{operation}",
            request.headers,
            f"{request.method} {request.path}",
            method=request.method,
            path=request.path,
            status=status,
        )

    def _heartbeat(self, request: flask.Request, status: int, duration: float) -> None:
        """A scheduled job of this capability succeeded: record it for the dead man's switch.
        Failing to record is logged, not answered: the job did its work, and the switch will
        notice the missing record if it keeps failing."""
        from shared import heartbeats

        job = heartbeats.scheduled_job(self.name, request.headers.get(heartbeats.JOB_HEADER), request.path)
        if job is None or request.method != "POST":
            return
        from shared.clock import utcnow

        try:
            heartbeats.record_success(
                heartbeats.Heartbeat(
                    job=job,
                    capability=self.name,
                    last_success_at=utcnow(),
                    scheduled_for=heartbeats.parse_schedule_time(
                        request.headers.get(heartbeats.SCHEDULE_TIME_HEADER)
                    ),
                    duration_seconds=round(duration, 3),
                    status=status,
                )
            )
        except Exception:  # noqa: BLE001 - see the docstring
            self._log.exception("recording the heartbeat of job %s failed", job, extra={"job": job})

    def _dispatch(self, request: flask.Request) -> flask.Response:
        if self._adapter is None:
            self._adapter = self._map.bind("localhost")
        try:
            endpoint, args = self._adapter.match(request.path, request.method)
        except NotFound:
            problem = Problem(404, f"No resource at {request.path}.", paths=self.paths())
            return problem.to_response(request.path)
        except MethodNotAllowed as exc:
            allowed = sorted(exc.valid_methods or [])
            return Problem(
                405,
                f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}.",
                headers={"Allow": ", ".join(allowed)},
                allowed=allowed,
            ).to_response(request.path)
        request.environ[_ENDPOINT_KEY] = endpoint
        try:
            _authorize(request, self.roles()[endpoint])
            result = self._call(self._operations[endpoint], request, args)
        except Problem as problem:
            return problem.to_response(request.path)
        except Exception as exc:  # noqa: BLE001 - a bug of ours: logged, answered 500
            from shared.health import HealthBusy

            if isinstance(exc, HealthBusy):
                headers = {"Retry-After": str(exc.retry_after)}
                return Problem(429, str(exc), headers=headers).to_response(request.path)
            self._log.exception("unhandled error in %s %s", request.method, request.path)
            return Problem(500, "Internal error; it has been logged.").to_response(request.path)
        if isinstance(result, flask.Response):
            return result
        return json_response(result)

    @staticmethod
    def _call(op: Operation, request: flask.Request, args: dict[str, Any]) -> Any:
        """The handler, with the path variables, query and body validated by the route's models."""
        if op.params is not None:
            args = read_params(args, op.params)
        kwargs: dict[str, Any] = {}
        if op.query is not None:
            kwargs["query"] = read_query(request, op.query)
        if op.body is not None:
            if not op.body_required and not read_body(request).strip():
                try:  # no body: the model's defaults, which must make a valid body
                    kwargs["body"] = op.body.model_validate({})
                except ValidationError as exc:
                    raise _field_problem(exc, op.body, status=422, what="Body (empty) fields are") from None
            else:
                kwargs["body"] = read_json(request, op.body)
        return op.handler(request, **args, **kwargs)

    def paths(self) -> list[str]:
        return sorted({rule.rule for rule in self._map.iter_rules()})

    def routes(self) -> list[tuple[str, list[str]]]:
        """Every route as (path rule, methods), e.g. ("/v1/reports/<audience>", ["POST"])."""
        return sorted(
            (rule.rule, sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}))
            for rule in self._map.iter_rules()
        )


def _authorize(request: flask.Request, roles: tuple[str, ...]) -> None:
    """Verify the caller and check it holds one of ``roles``: a 401/403 ``Problem`` if not."""
    from shared.audit import CALLER_KEY
    from shared.roles import AuthProblem, authorize

    try:
        request.environ[CALLER_KEY] = authorize(request.headers, roles)
    except AuthProblem as refused:
        log.warning(
            "refused %s %s: %s",
            request.method,
            request.path,
            refused.detail,
            extra={"status": refused.status, "required_roles": list(roles)},
        )
        headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else None
        raise Problem(refused.status, refused.detail, headers=headers, **refused.extra) from None


def _reply(spec: ReplySpec) -> Reply:
    if isinstance(spec, Reply):
        return spec
    return Reply(model=spec)


def _first_line(doc: str | None) -> str | None:
    if not doc:
        return None
    text = " ".join(doc.strip().split("\n\n")[0].split())
    return text or None


def _allowed(model: type[BaseModel], name: str) -> str | None:
    """What the field ``name`` of ``model`` allows, in words, from its JSON Schema."""
    from shared.openapi import describe_allowed

    return describe_allowed(model, name)


def _field_problem(exc: ValidationError, model: type[BaseModel], *, status: int, what: str) -> Problem:
    """A problem naming each field that failed (as the client spells it) and what it allows."""
    errors = validation_errors(exc)
    parts = []
    for error in errors:
        allowed = _allowed(model, error["field"].split(".")[0])
        if allowed:
            error["allowed"] = allowed
        parts.append(f"{error['field']}: {error['message']}" + (f" (allowed: {allowed})" if allowed else ""))
    extra: dict[str, Any] = {}
    fields = {error["field"].split(".")[0] for error in errors}
    if len(fields) == 1:  # one field with a set of values: the values, as a list
        from shared.openapi import allowed_values

        values = allowed_values(model, fields.pop())
        if values is not None:
            extra["allowed"] = values
    return Problem(status, f"{what} not valid: {'; '.join(parts)}.", errors=errors, **extra)


def read_query(request: flask.Request, model: type[M]) -> M:
    """The query string validated by ``model`` (lax: strings become ints, booleans, dates);
    422 naming each bad parameter and what it allows. A parameter given twice counts once (the
    first), unless its field is a list."""
    values: dict[str, Any] = {}
    lists = {
        (info.alias or name)
        for name, info in model.model_fields.items()
        if getattr(info.annotation, "__origin__", None) is list
    }
    for key in request.args:
        values[key] = request.args.getlist(key) if key in lists else request.args.get(key)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise _field_problem(exc, model, status=422, what="Query parameters are") from None


def read_params(args: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """Path variables validated by ``model``: a value that fails is 404 (no resource can have
    it), naming the variable and what it allows."""
    try:
        parsed = model.model_validate(args)
    except ValidationError as exc:
        raise _field_problem(exc, model, status=404, what="No such resource: path variables are") from None
    return {name: getattr(parsed, name) for name in args}


# --- Pub/Sub push endpoints ---------------------------------------------------------------------

PUSH_ENVELOPE = (
    '{"message": {"data": "<base64>", "attributes": {...}, "messageId": "...", '
    '"publishTime": "<RFC 3339>"}, "subscription": "projects/P/subscriptions/S"}'
)
# Pub/Sub's message limit is 10 MB; base64 in the JSON envelope makes that at most ~13.4 MB.
MAX_PUSH_BYTES = 14 * 1024 * 1024
_TOPIC_PATH = re.compile(r"projects/[^/?]+/topics/[^/?]+")
_JSON_TYPES = {
    str: "string",
    list: "array",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def pubsub_push(handler: Callable[[CloudEvent], None]) -> Callable[[flask.Request], Any]:
    """Register ``handler`` with functions-framework as the Pub/Sub push entry point of the same
    name. It is served as a plain HTTP function so that the raw body is ours to check first
    (``push_event``): functions-framework's own CloudEvent parsing answers 500 to a body that is
    not UTF-8 JSON, and a 400 page echoing the request's headers to one that is no event.
    The handler gets the CloudEvent functions-framework would have built; it raises to have
    Pub/Sub redeliver (answered 500, logged) and returns to acknowledge (200)."""
    import functions_framework

    @functools.wraps(handler)
    def entry(request: flask.Request) -> Any:
        return serve_push(request, handler)

    return functions_framework.http(entry)  # type: ignore[no-any-return]


def serve_push(request: flask.Request, handler: Callable[[CloudEvent], None]) -> flask.Response:
    if request.method == "GET" and request.path == "/health":
        # Deployed, a push entry point is a service of its own: its /health checks what it uses.
        from shared.health import HealthBusy, push_function_health, status_code
        from shared.roles import PUBLIC

        try:
            _authorize(request, (PUBLIC,))  # as every /health (HEALTH_ROUTE)
            report = push_function_health(handler.__name__)
        except Problem as problem:
            return problem.to_response("/health")
        except HealthBusy as busy:
            return Problem(429, str(busy), headers={"Retry-After": str(busy.retry_after)}).to_response(
                "/health"
            )
        return json_response(report, status=status_code(report))
    try:
        from shared.roles import PUSH

        _authorize(request, (PUSH,))
        event = push_event(request)
    except Problem as problem:
        log.warning("refused a push request: %s", problem.detail, extra={"path": request.path})
        return problem.to_response(request.path)
    try:
        handler(event)
    except Exception:  # raise to retry: logged here, answered 500 without its text
        log.exception("push handler failed; Pub/Sub redelivers", extra={"event_id": str(event["id"])})
        return Problem(500, "Processing failed; it has been logged and Pub/Sub will redeliver.").to_response(
            request.path
        )
    return flask.Response("OK", status=200, mimetype="text/plain")


def push_event(request: flask.Request) -> CloudEvent:
    """The Pub/Sub CloudEvent of a push request, built from its raw body as functions-framework
    builds it (id = messageId, time = publishTime, source names the topic of the push path, data =
    the envelope). 400 when the body is no push envelope; what is inside ``message`` is
    ``read_pubsub``'s to judge (a bad field there drops the message rather than retrying it)."""
    from cloudevents.http import CloudEvent

    if request.method != "POST":
        raise Problem(
            405, f"{request.method} is not allowed on a push path; Pub/Sub pushes with POST.",
            headers={"Allow": "POST"}, allowed=["POST"],
        )  # fmt: skip
    raw = read_body(request, max_bytes=MAX_PUSH_BYTES)
    expected = f"a Pub/Sub push body is a UTF-8 JSON envelope {PUSH_ENVELOPE}."
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(
            400, f"Body is not UTF-8 (byte {exc.start}); {expected}", expected=PUSH_ENVELOPE
        ) from None
    try:
        envelope = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise Problem(400, f"Body is not JSON; {expected}", expected=PUSH_ENVELOPE) from None
    if not isinstance(envelope, dict):
        kind = _JSON_TYPES.get(type(envelope), "value")
        raise Problem(400, f"Body is a JSON {kind}, not a JSON object; {expected}", expected=PUSH_ENVELOPE)
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise Problem(400, f'Body has no "message" object; {expected}', expected=PUSH_ENVELOPE)
    topic = _TOPIC_PATH.search(request.path)
    attributes = {
        "id": str(message.get("messageId") or message.get("message_id") or ""),
        "source": f"//pubsub.googleapis.com/{topic.group(0) if topic else ''}",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "specversion": "1.0",
        "datacontenttype": "application/json",
    }
    publish_time = message.get("publishTime") or message.get("publish_time")
    if publish_time:  # else the CloudEvent's time is now, as functions-framework does
        attributes["time"] = publish_time
    return CloudEvent(attributes, envelope)
