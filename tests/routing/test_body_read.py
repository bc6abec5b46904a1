"""Bodies read without werkzeug's stream: a Content-Length within the limit is read from the
server's input and kept where werkzeug keeps what ``get_data`` read, so functions-framework's
read of every body after the answer finds it; anything else goes through the bound as before."""

from __future__ import annotations

import io

import flask
import pytest

from shared.http import Problem, body_read_so_far, drain_unread_body, read_body

BODY = b'{"resonance_key": "calm-medium-learning"}'


class _CountingInput(io.BytesIO):
    """The server's input: counts what is asked of it."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.asked: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


def _with_input(body: bytes, length: str | None) -> tuple[flask.Request, _CountingInput]:
    app = flask.Flask(__name__)
    raw = _CountingInput(body)
    context = app.test_request_context("/v2/route", method="POST", data=b"", content_type="application/json")
    request = context.request
    request.environ["wsgi.input"] = raw
    if length is None:
        request.environ.pop("CONTENT_LENGTH", None)
        request.environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        request.environ["wsgi.input_terminated"] = True  # as gunicorn says of a chunked body
    else:
        request.environ["CONTENT_LENGTH"] = length
    return request, raw


def test_a_body_with_its_length_is_read_once_from_the_input_and_get_data_finds_it() -> None:
    request, raw = _with_input(BODY, str(len(BODY)))
    assert read_body(request) == BODY
    assert raw.asked == [len(BODY)]  # exactly its length, from the server's input
    assert "stream" not in request.__dict__  # werkzeug's stream never made
    assert request.get_data() == BODY  # as functions-framework reads it after the answer
    assert raw.asked == [len(BODY)]  # and not read again
    assert body_read_so_far(request) == BODY


def test_an_unread_body_is_drained_for_the_framework_but_stays_unread_for_us() -> None:
    request, raw = _with_input(BODY, str(len(BODY)))
    drain_unread_body(request)
    assert body_read_so_far(request) == b""  # an answer before the route did not read it
    assert request.get_data() == BODY
    assert raw.asked == [len(BODY)]
    assert "stream" not in request.__dict__


def test_a_body_over_the_limit_or_chunked_is_left_to_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ION_MAX_BODY_BYTES", "1024")
    from shared.settings import get_settings

    get_settings.cache_clear()
    try:
        big = b"x" * 2000
        request, raw = _with_input(big, str(len(big)))
        drain_unread_body(request)
        assert raw.asked == []  # not read: functions-framework reads it through the bound
        with pytest.raises(Problem) as refused:
            read_body(request)
        assert refused.value.status == 413
        assert raw.asked == []  # refused by its declared length, nothing read
        chunked, raw = _with_input(big, None)
        drain_unread_body(chunked)
        assert raw.asked == []
        with pytest.raises(Problem) as refused:
            read_body(chunked)
        assert refused.value.status == 413
        assert sum(raw.asked) <= 1025 + 64 * 1024  # read through the bound, at most the limit + 1
    finally:
        get_settings.cache_clear()
