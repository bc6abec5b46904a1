"""The router every HTTP function uses: paths and methods, the caller's role checked, bounded
bodies validated into models, problems answered, metrics of its own kept out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import flask
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from shared.audit import CALLER_KEY as _CALLER_KEY
from shared.http.authorization import authorize_request
from shared.http.bodies import bound_body, json_response, read_body, read_json, read_params, read_query
from shared.http.operations import Handler, Operation, Reply, ReplySpec, first_line, reply_of
from shared.http.problems import CHANGE_METHODS, ENDPOINT_KEY, Problem, field_problem
from shared.http.success_records import audit_change, record_heartbeat
from shared.logging import get_logger, parse_trace_header, reset_trace, set_trace
from shared.transient import is_transient

# Retry-After of a 503 for a transient failure a handler let through: contention clears within
# a second or two, and a longer outage is retried again by the caller's own backoff.
TRANSIENT_RETRY_AFTER_SECONDS = 2


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
        # Endpoints any caller may call (role public), with the caller they all get: checked per
        # request without verifying anyone, and never audited.
        self._public: frozenset[str] = frozenset()
        self._anonymous: Any = None
        self._map = Map(strict_slashes=False, merge_slashes=True)
        self._operations: dict[str, Operation] = {}
        self._adapter = None
        # Path => method => endpoint of the rules without variables: looked up before werkzeug's
        # matcher, which answers the same for them at several times the cost.
        self._static: dict[str, dict[str, str]] | None = None
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
        replies = {status: reply_of(spec) for status, spec in (responses or {}).items()}
        if response is not None or not replies:
            replies = {200: reply_of(response), **replies}

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
                summary=summary or first_line(handler.__doc__),
                links=links or {},
                role=declared_role,
            )
            self._map.add(Rule(path, endpoint=endpoint, methods=list(methods)))
            self._adapter = None
            self._static = None
            self._openapi = None
            self._roles = None
            self._public = frozenset()
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
            from shared.roles import PUBLIC, authorize

            roles = {
                endpoint: op.role or default_roles(op.path, op.methods, scheduled=endpoint in scheduled)
                for endpoint, op in self._operations.items()
            }
            self._public = frozenset(endpoint for endpoint, held in roles.items() if held == (PUBLIC,))
            self._anonymous = authorize({}, (PUBLIC,))
            self._roles = roles
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
                # From the environ (HTTP_*, as werkzeug's headers read them), without their lookup.
                request.environ.get("HTTP_TRACEPARENT"),
                request.environ.get("HTTP_X_CLOUD_TRACE_CONTEXT"),
            )
        )
        started = time.monotonic()
        bound_body(request)
        try:
            response = self._dispatch(request)
            if request.method in CHANGE_METHODS and response.status_code < 400:
                self._audit_change(request, response.status_code)
            if response.status_code < 300 and request.environ.get("HTTP_X_CLOUDSCHEDULER_JOBNAME"):
                duration = time.monotonic() - started
                record_heartbeat(request, response.status_code, duration, log=self._log, capability=self.name)
            return response
        finally:
            reset_trace(token)

    def _audit_change(self, request: flask.Request, status: int) -> None:
        # A public route's change is never audited: told here, before anything else is looked up.
        endpoint = request.environ.get(ENDPOINT_KEY)
        if endpoint is None or endpoint in self._public:
            return
        operation, roles = self._operations[endpoint], self.roles()[endpoint]
        audit_change(request, status, operation, roles, log=self._log, capability=self.name)

    def _static_routes(self) -> dict[str, dict[str, str]]:
        static: dict[str, dict[str, str]] = {}
        for rule in self._map.iter_rules():
            if not rule.arguments:
                methods = static.setdefault(rule.rule, {})
                for method in rule.methods or ():
                    methods.setdefault(method, rule.endpoint)
        return static

    def _match(self, path: str, method: str) -> tuple[str, dict[str, Any]]:
        if self._static is None:
            self._static = self._static_routes()
        endpoint = self._static.get(path, {}).get(method)
        if endpoint is not None:
            return endpoint, {}
        if self._adapter is None:
            self._adapter = self._map.bind("localhost")
        return self._adapter.match(path, method)

    def _dispatch(self, request: flask.Request) -> flask.Response:
        try:
            endpoint, args = self._match(request.path, request.method)
        except NotFound:
            # The paths served are told only to a caller who holds a role here.
            listed = {"paths": self.paths()} if self._holds_a_role(request) else {}
            problem = Problem(404, f"No resource at {request.path}.", **listed)
            return problem.to_response(request.path)
        except MethodNotAllowed as exc:
            allowed = sorted(exc.valid_methods or [])
            try:
                self._authorize_path(request, allowed)
            except Problem as refused:
                return refused.to_response(request.path)
            return Problem(
                405,
                f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}.",
                headers={"Allow": ", ".join(allowed)},
                allowed=allowed,
            ).to_response(request.path)
        request.environ[ENDPOINT_KEY] = endpoint
        try:
            roles = self.roles()[endpoint]
            if endpoint in self._public:
                request.environ[_CALLER_KEY] = self._anonymous
            else:
                authorize_request(request, roles)
            result = self._call(self._operations[endpoint], request, args)
        except Problem as problem:
            return problem.to_response(request.path)
        except Exception as exc:  # noqa: BLE001 - a bug of ours: logged, answered 500
            from shared.health import HealthBusy

            if isinstance(exc, HealthBusy):
                headers = {"Retry-After": str(exc.retry_after)}
                return Problem(429, str(exc), headers=headers).to_response(request.path)
            if is_transient(exc):
                # A store or API failing for now (contention that outlasted the transaction's
                # retries, a dependency down) that the handler did not answer itself: the caller
                # may retry (schedulers and Pub/Sub do), so it is a 503, not a bug's 500.
                self._log.warning(
                    "%s %s: %s from a dependency, answered 503",
                    request.method,
                    request.path,
                    type(exc).__name__,
                    exc_info=True,
                )
                return Problem(
                    503,
                    f"A dependency failed for now ({type(exc).__name__}); retry later.",
                    headers={"Retry-After": str(TRANSIENT_RETRY_AFTER_SECONDS)},
                ).to_response(request.path)
            self._log.exception("unhandled error in %s %s", request.method, request.path)
            return Problem(500, "Internal error; it has been logged.").to_response(request.path)
        if isinstance(result, flask.Response):
            return result
        return json_response(result)

    @staticmethod
    def _holds_a_role(request: flask.Request) -> bool:
        """Whether the caller is verified and holds any role (locally, unset roles are everyone's)."""
        from shared.identity import AuthProblem
        from shared.roles import ROLES, authorize

        try:
            authorize(request.headers, ROLES)
        except AuthProblem:
            return False
        return True

    def _authorize_path(self, request: flask.Request, methods: list[str]) -> None:
        """A path served with other methods: the caller must hold a role one of them needs (401 or
        403 as for the right method) before the 405 tells which methods it takes."""
        roles = self.roles()
        needed: set[str] = set()
        for method in methods:
            try:
                endpoint = self._match(request.path, method)[0]
            except (NotFound, MethodNotAllowed):
                continue
            if endpoint in self._public:
                return
            needed.update(roles[endpoint])
        if needed:
            authorize_request(request, tuple(sorted(needed)))

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
                    raise field_problem(exc, op.body, status=422, what="Body (empty) fields are") from None
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
