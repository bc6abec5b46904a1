"""A listing's next page over HTTP. Where the answer is an object, the cursor is its ``next``
field; where it is a bare array (whose shape cannot change), an RFC 8288 ``Link: <...>;
rel="next"`` header carries the next page's address: the same query with ``after`` set to the
last item's id. A cursor that names nothing the listing holds is a 422 naming ``after``."""

from __future__ import annotations

from urllib.parse import urlencode

import flask
from pydantic import BaseModel

from shared.http.operations import Reply
from shared.http.problems import Problem
from shared.http.responses import ReadyResponse

CURSOR = "after"
NEXT_HEADER = "Link"


def array_page(model: type[BaseModel], description: str) -> dict[int, Reply]:
    """The ``responses`` of a route answering a page of a bare array, its next page in ``Link``."""
    return {200: Reply(model, description=description, headers=(NEXT_HEADER,))}


def bad_cursor(exc: LookupError) -> Problem:
    """The 422 of an ``after`` that names nothing the listing holds (``exc`` says what)."""
    text = str(exc).strip("'\"")
    return Problem(422, text, errors=[{"field": CURSOR, "message": text}])


def next_link(request: flask.Request, cursor: str) -> str:
    """The ``Link`` header value of the next page: this request's path and query with ``after``
    set to ``cursor``."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k != CURSOR]
    args.append((CURSOR, cursor))
    return f'<{request.path}?{urlencode(args)}>; rel="next"'


def json_array_page(request: flask.Request, parts: list[bytes], cursor: str | None) -> flask.Response:
    """A bare JSON array of already serialised ``parts``, with a next-page ``Link`` when ``cursor``."""
    headers = [(NEXT_HEADER, next_link(request, cursor))] if cursor is not None else []
    return ReadyResponse(b"[" + b",".join(parts) + b"]", headers=headers)
