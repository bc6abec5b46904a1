"""Bounded request bodies, JSON in and out, and the query string and path variables read into
their models."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import flask
from pydantic import BaseModel, ValidationError

from shared.http.problems import Problem, field_problem
from shared.settings import get_settings
from shared.validation import validation_errors

M = TypeVar("M", bound=BaseModel)

_BODY_KEY = "ion.body"
_BOUNDED_KEY = "ion.body.bounded"


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


def _plain_length(environ: dict[str, Any]) -> int | None:
    """The Content-Length of a body sent without Transfer-Encoding, when it is plain ASCII
    digits (what werkzeug's ``content_length`` answers for it, without its header lookups);
    None for anything else, which werkzeug's own parsing decides."""
    length = environ.get("CONTENT_LENGTH")
    if length and "HTTP_TRANSFER_ENCODING" not in environ and length.isascii() and length.isdigit():
        return int(length)
    return None


def bound_body(request: flask.Request, *, max_bytes: int | None = None) -> None:
    """Let nothing read more than the limit + 1 bytes of this request's body, whoever reads it:
    a chunked body has no Content-Length to refuse it by, and functions-framework reads the rest
    of every body into memory after the answer. A body with a Content-Length within the limit
    needs no bound of ours: the WSGI server (or werkzeug's stream) reads no more than that."""
    environ = request.environ
    if environ.get(_BOUNDED_KEY):  # called by each layer: bounded once, then checked cheaply
        return
    limit = max_bytes or get_settings().max_body_bytes
    length = _plain_length(environ)
    if (length is None or length > limit) and not isinstance(request.stream, _BoundedStream):
        request.stream = _BoundedStream(request.stream, limit + 1)  # type: ignore[misc]
    environ[_BOUNDED_KEY] = True


def read_body(request: flask.Request, *, max_bytes: int | None = None) -> bytes:
    """The raw body, refusing more than ``max_bytes`` (413) without reading it all, chunked or
    not. Read bodies only through here, never with ``request.get_data``."""
    limit = max_bytes or get_settings().max_body_bytes
    length = _plain_length(request.environ)
    if length is None:
        length = request.content_length
    if length is not None and length > limit:
        raise Problem(413, f"Body of {length} bytes exceeds the limit of {limit} bytes.")
    environ = request.environ
    data = environ.get(_BODY_KEY)
    if data is None:
        bound_body(request, max_bytes=limit)
        if length is not None and "stream" not in request.__dict__:
            # A Content-Length within the limit: read from the server's input, which yields no more
            # than that (PEP 3333), without werkzeug's stream wrappers; and kept as werkzeug keeps
            # what ``get_data`` read, so functions-framework's read of the body after the answer
            # (and any ``get_data``) finds it instead of reading an input already at its end.
            data = environ["wsgi.input"].read(length)
            request._cached_data = data  # werkzeug keeps the body it read here
        else:
            # With a Content-Length (checked above) the body is that long: asking for exactly that
            # spares a read that would only find its end. Chunked: up to the limit + 1.
            data = request.stream.read(limit + 1 if length is None else length)
        environ[_BODY_KEY] = data
    if len(data) > limit:
        raise Problem(413, f"Body exceeds the limit of {limit} bytes.")
    return data


def drain_unread_body(request: flask.Request, *, max_bytes: int | None = None) -> None:
    """For an answer given without reading the body (a 401 or 429 before the route): read a body
    with a Content-Length within the limit from the server's input into werkzeug's cache of it.
    functions-framework reads every body after the answer (``get_data``); this spares werkzeug's
    stream for it. The body still counts as unread for ``body_read_so_far``; anything else
    (chunked, over the limit) is left to functions-framework's read through the bound."""
    environ = request.environ
    if _BODY_KEY in environ or "stream" in request.__dict__ or "_cached_data" in request.__dict__:
        return
    length = _plain_length(environ)
    if length is not None and length <= (max_bytes or get_settings().max_body_bytes):
        request._cached_data = environ["wsgi.input"].read(length)  # werkzeug keeps the body here


def body_read_so_far(request: flask.Request) -> bytes:
    """The body as ``read_body`` read it, or nothing if no handler read it (an answer given
    before the body was needed must not read the body afterwards)."""
    data: bytes | None = request.environ.get(_BODY_KEY)
    return data if data is not None else b""


def read_json(request: flask.Request, model: type[M], *, max_bytes: int | None = None) -> M:
    """Parse and validate a JSON body: 415 wrong type, 413 too big, 400 not JSON, 422 invalid."""
    content_type = request.environ.get("CONTENT_TYPE", "")
    # The usual spelling is decided without parsing the header; anything else is parsed.
    plain = content_type == "application/json" or content_type.startswith("application/json;")
    mimetype = "application/json" if plain else request.mimetype
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
        problem = field_problem(exc, model, status=422, what="Body fields are")
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
        raise field_problem(exc, model, status=422, what="Query parameters are") from None


def read_params(args: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """Path variables validated by ``model``: a value that fails is 404 (no resource can have
    it), naming the variable and what it allows."""
    try:
        parsed = model.model_validate(args)
    except ValidationError as exc:
        raise field_problem(exc, model, status=404, what="No such resource: path variables are") from None
    return {name: getattr(parsed, name) for name in args}


# --- Pub/Sub push endpoints ---------------------------------------------------------------------
