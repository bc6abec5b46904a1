"""Errors as problem+json (RFC 9457): what was wrong and what is allowed; a transient dependency
failure as a 503 to retry."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import flask
from pydantic import BaseModel, ValidationError

from shared.http.responses import ReadyResponse
from shared.logging import get_logger
from shared.transient import is_transient
from shared.validation import validation_errors

M = TypeVar("M", bound=BaseModel)
Handler = Callable[..., Any]

PROBLEM_JSON = "application/problem+json"
CHANGE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ENDPOINT_KEY = "ion.endpoint"
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
        return ReadyResponse(json.dumps(body).encode(), self.status, self.headers.items(), PROBLEM_JSON)


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


def _allowed(model: type[BaseModel], name: str) -> str | None:
    """What the field ``name`` of ``model`` allows, in words, from its JSON Schema."""
    from shared.openapi import describe_allowed

    return describe_allowed(model, name)


def field_problem(exc: ValidationError, model: type[BaseModel], *, status: int, what: str) -> Problem:
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
