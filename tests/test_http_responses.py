"""``ReadyResponse`` answers exactly what werkzeug's own Response answers for the same content."""

from __future__ import annotations

import json
from typing import Any

import flask
import pytest

from shared.http import Problem
from shared.http.responses import ReadyResponse, set_headers


def _environ(method: str = "POST") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }


def _answer(response: flask.Response, method: str = "POST") -> tuple[str, list[tuple[str, str]], bytes]:
    started: list[Any] = []
    body = b"".join(response(_environ(method), lambda status, headers: started.append((status, headers))))
    ((status, headers),) = started
    return status, list(headers), body


def _werkzeug(body: bytes, status: int, headers: dict[str, str], mimetype: str) -> flask.Response:
    response = flask.Response(body, status=status, mimetype=mimetype)
    response.headers.update(headers)
    return response


@pytest.mark.parametrize("status", [200, 201, 401, 404, 422, 429, 503, 599])
@pytest.mark.parametrize("method", ["POST", "GET", "HEAD"])
def test_the_same_answer_as_werkzeug(status: int, method: str) -> None:
    body = json.dumps({"status": status, "detail": "é ünïcode"}, ensure_ascii=False).encode()
    headers = {"Retry-After": "3", "RateLimit-Limit": "100"}
    for mimetype in ("application/json", "application/problem+json"):
        ready = ReadyResponse(body, status, headers.items(), mimetype)
        assert _answer(ready, method) == _answer(_werkzeug(body, status, headers, mimetype), method)


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses_are_answered_by_werkzeug(status: int) -> None:
    ready = ReadyResponse(b"", status)
    assert _answer(ready) == _answer(_werkzeug(b"", status, {}, "application/json"))


def test_it_is_a_flask_response_and_changes_through_its_api_are_answered() -> None:
    ready = ReadyResponse(b'{"a": 1}', 200, [("X-One", "1")])
    assert isinstance(ready, flask.Response)
    assert ready.get_json() == {"a": 1}
    assert ready.headers["content-type"] == "application/json"
    assert ready.headers["Content-Length"] == "8"
    ready.status_code = 201
    ready.set_data(b'{"a": 22}')
    ready.headers["X-Two"] = "2"
    status, headers, body = _answer(ready)
    assert (status, body) == ("201 CREATED", b'{"a": 22}')
    assert dict(headers) == {
        "Content-Type": "application/json",
        "Content-Length": "9",
        "X-One": "1",
        "X-Two": "2",
    }


def test_set_headers_replaces_like_update_and_refuses_newlines() -> None:
    ready = ReadyResponse(b"{}", 429, [("RateLimit-Limit", "100")])
    set_headers(ready, {"ratelimit-limit": "50", "RateLimit-Remaining": "0"})
    plain = _werkzeug(b"{}", 429, {"RateLimit-Limit": "100"}, "application/json")
    set_headers(plain, {"ratelimit-limit": "50", "RateLimit-Remaining": "0"})
    assert _answer(ready) == _answer(plain)
    assert ready.headers.getlist("RateLimit-Limit") == ["50"]
    with pytest.raises(ValueError, match="newline"):
        set_headers(ready, {"X-Bad": "a\r\nSet-Cookie: x"})
    with pytest.raises(ValueError, match="newline"):
        ReadyResponse(b"{}", 200, [("X-Bad", "a\nb")])


def test_a_problem_answers_as_before() -> None:
    problem = Problem(429, "Slow down.", headers={"Retry-After": "2"}, retry_after=2)
    body = {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Slow down.",
        "instance": "/v2/route",
        "retry_after": 2,
    }
    werkzeug = _werkzeug(json.dumps(body).encode(), 429, {"Retry-After": "2"}, "application/problem+json")
    assert _answer(problem.to_response("/v2/route")) == _answer(werkzeug)
