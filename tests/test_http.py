"""The common HTTP shape, driven through functions-framework's real app."""

from __future__ import annotations

import json

import functions_framework
import pytest
import requests
from werkzeug.test import EnvironBuilder, run_wsgi_app

from shared.settings import get_settings
from tests.conftest import fixture_source


@pytest.fixture
def client():  # type: ignore[no-untyped-def]
    app = functions_framework.create_app("sample_http", fixture_source("sample_functions.py"), "http")
    return app.test_client()


def test_valid_body_is_parsed_and_answered(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/orders", json={"item": "tea", "quantity": 2})
    assert response.status_code == 200
    assert response.get_json() == {"item": "tea", "quantity": 2}


def test_malformed_json_is_400_problem(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/orders", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 400
    assert body["title"] == "Bad Request"
    assert body["instance"] == "/orders"


def test_invalid_fields_are_422_naming_each_field(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/orders", json={"item": "", "quantity": 50})
    assert response.status_code == 422
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert fields == {"item", "quantity"}


def test_wrong_content_type_is_415_naming_the_allowed_one(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/orders", data="item=tea", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.get_json()["allowed"] == ["application/json"]


def test_body_over_the_limit_is_413(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from shared.settings import get_settings

    monkeypatch.setenv("ION_MAX_BODY_BYTES", "64")
    get_settings.cache_clear()
    response = client.post("/orders", json={"item": "x" * 100, "quantity": 1})
    assert response.status_code == 413
    assert "64" in response.get_json()["detail"]


def test_wrong_method_is_405_with_allow_header(client) -> None:  # type: ignore[no-untyped-def]
    response = client.put("/orders/7")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "DELETE"}
    assert "PUT" in response.get_json()["detail"]


def test_unknown_path_is_404_listing_paths(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/nope")
    assert response.status_code == 404
    assert "/orders" in response.get_json()["paths"]


@pytest.fixture
def roles_listed(monkeypatch):  # type: ignore[no-untyped-def]
    """Role lists set (as deployed): a caller not listed holds no role."""
    from shared import roles

    monkeypatch.setenv("ION_ROLE_VIEWERS", "user:viewer@example.com")
    monkeypatch.setenv("ION_ROLE_OPERATORS", "user:oncall@example.com")
    for variable in (
        "ION_ROLE_ADMINS",
        "ION_ROLE_SCHEDULER",
        "ION_ROLE_TASKS",
        "ION_ROLE_PUSH",
    ):
        monkeypatch.setenv(variable, "user:someone-else@example.com")
    roles.reset()
    yield
    roles.reset()


def test_unknown_path_lists_no_paths_to_a_caller_without_a_role(client, roles_listed, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from shared.identity import DEV_HEADER

    stranger = client.get("/nope", headers={DEV_HEADER: "stranger@example.com"})
    assert stranger.status_code == 404
    assert "paths" not in stranger.get_json()
    assert "/orders" not in stranger.get_data(as_text=True)
    viewer = client.get("/nope", headers={DEV_HEADER: "viewer@example.com"})
    assert viewer.status_code == 404
    assert "/orders" in viewer.get_json()["paths"]
    monkeypatch.setenv("K_SERVICE", "sample")  # deployed: an anonymous caller is no one
    anonymous = client.get("/nope")
    assert anonymous.status_code == 404
    assert "paths" not in anonymous.get_json()


def test_wrong_method_on_a_path_needing_a_role_is_401_or_403_before_405(
    client, roles_listed, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from shared.identity import DEV_HEADER

    stranger = client.put("/orders/7", headers={DEV_HEADER: "stranger@example.com"})
    assert stranger.status_code == 403
    assert "Allow" not in stranger.headers
    viewer = client.put("/orders/7", headers={DEV_HEADER: "viewer@example.com"})
    assert viewer.status_code == 403  # its GET and DELETE are one route, an operator's
    operator = client.put("/orders/7", headers={DEV_HEADER: "oncall@example.com"})
    assert operator.status_code == 405  # told which methods it takes
    assert set(operator.headers["Allow"].split(", ")) >= {"GET", "DELETE"}
    monkeypatch.setenv("K_SERVICE", "sample")
    anonymous = client.put("/orders/7")
    assert anonymous.status_code == 401
    assert "Allow" not in anonymous.headers


def test_problem_raised_in_a_handler_keeps_its_status(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/orders/missing").status_code == 404
    assert client.get("/orders/42").get_json() == {"id": "42"}


def test_a_bug_is_a_logged_500_with_trace(client, capsys) -> None:  # type: ignore[no-untyped-def]
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = client.get("/crash", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    assert response.status_code == 500
    assert "a bug" not in response.get_data(as_text=True)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    error = next(line for line in lines if line["severity"] == "ERROR")
    assert error["logging.googleapis.com/trace"] == f"projects/ion-ops-test/traces/{trace}"
    assert "RuntimeError: a bug" in error["stack_trace"]


def test_a_transient_error_becomes_503_and_anything_else_passes_through() -> None:
    import logging

    from shared.http import Problem, unavailable_when_transient

    log = logging.getLogger("test")
    store_down = unavailable_when_transient("Store down: {exc}.", logger=log, message="%s", retry_after=5)
    with pytest.raises(Problem) as caught, store_down:
        raise TimeoutError("read timed out")
    assert caught.value.status == 503
    assert caught.value.detail == "Store down: TimeoutError."  # the text (hosts, ids) stays in the log
    assert caught.value.headers == {"Retry-After": "5"}
    with (
        pytest.raises(ValueError, match="a bug"),
        unavailable_when_transient("Down.", logger=log, message="%s"),
    ):
        raise ValueError("a bug")


def _google_errors(names: list[str]) -> list[BaseException]:
    from google.api_core import exceptions as gexc

    return [getattr(gexc, name)(f"{name} from the API") for name in names]


RETRY_LATER = [
    "ServiceUnavailable", "DeadlineExceeded", "GatewayTimeout", "ResourceExhausted", "TooManyRequests",
    "Aborted", "InternalServerError", "BadGateway",
]  # fmt: skip
PERMANENT = [
    "InvalidArgument", "PermissionDenied", "NotFound", "FailedPrecondition", "AlreadyExists", "OutOfRange",
    "Unauthenticated", "MethodNotImplemented", "DataLoss", "Unknown", "Cancelled", "BadRequest", "Forbidden",
]  # fmt: skip


def test_only_errors_a_retry_can_cure_are_transient() -> None:
    import requests
    from google.api_core.exceptions import RetryError, ServiceUnavailable
    from google.auth.exceptions import TransportError

    from shared.http import is_transient

    for exc in _google_errors(RETRY_LATER):
        assert is_transient(exc), exc
    for exc in _google_errors(PERMANENT):
        assert not is_transient(exc), exc
    gave_up = RetryError("Timeout of 60s exceeded", cause=ServiceUnavailable("down"))
    for exc in (
        gave_up,
        TimeoutError(),
        ConnectionResetError(),
        TransportError("token endpoint unreachable"),
    ):
        assert is_transient(exc), exc
    assert is_transient(requests.ConnectionError("refused"))
    assert is_transient(requests.Timeout("slow"))
    assert is_transient(requests.exceptions.ChunkedEncodingError("connection broken mid-answer"))
    assert not is_transient(ValueError("a bug"))


@pytest.mark.parametrize("name", ["InvalidArgument", "PermissionDenied", "NotFound", "FailedPrecondition"])
def test_a_permanent_google_error_is_a_logged_500_never_503(client, name: str, capsys) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"/dependency/{name}")
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert response.get_json()["detail"] == "Internal error; it has been logged."
    assert "from the API" not in response.text  # the exception text is logged, never answered
    assert f"{name} from the API" in capsys.readouterr().out


def test_a_transient_google_error_is_503_retry_later(client) -> None:  # type: ignore[no-untyped-def]
    for name in RETRY_LATER:
        response = client.get(f"/dependency/{name}")
        assert response.status_code == 503, name
        assert response.headers["Retry-After"] == "5"


def test_a_transient_error_the_handler_let_through_is_503_not_a_bug(client, capsys) -> None:  # type: ignore[no-untyped-def]
    """Contention that outlasted a transaction's retries is retried by the caller (a scheduler,
    Pub/Sub): answered 503 with Retry-After and logged as a warning, not a bug's logged 500."""
    response = client.post("/contended")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert response.get_json()["detail"] == "A dependency failed for now (Aborted); retry later."
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [entry["severity"] for entry in logged if "answered 503" in entry["message"]] == ["WARNING"]
    assert not any(entry["severity"] == "ERROR" for entry in logged)


class _EndlessBody:
    """A chunked request body of ``total`` bytes made on demand, counting what the server read."""

    def __init__(self, total: int) -> None:
        self.remaining = total
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        self.remaining -= size
        self.read_bytes += size
        return b"x" * size


def test_a_chunked_body_over_the_limit_is_413_without_being_read_whole(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ION_MAX_BODY_BYTES", str(64 * 1024))
    get_settings.cache_clear()
    body = _EndlessBody(20 * 1024 * 1024)
    # As a server hands over a chunked body: no Content-Length, the stream ends where the body does.
    environ = EnvironBuilder("/orders", method="POST", content_type="application/json").get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update({"wsgi.input": body, "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"})
    app_iter, status, _ = run_wsgi_app(client.application, environ)
    assert status.startswith("413")
    assert json.loads(b"".join(app_iter))["detail"] == f"Body exceeds the limit of {64 * 1024} bytes."
    assert body.read_bytes <= 64 * 1024 + 1


@pytest.mark.parametrize(
    ("capability", "path", "content_type"),
    [("routing", "/v2/route", "application/json"), ("ingestion", "/v1/metrics", "application/x-protobuf")],
)
def test_a_live_function_answers_413_to_a_20_mib_chunked_body(  # type: ignore[no-untyped-def]
    capability: str, path: str, content_type: str, fs, serve_capability
) -> None:
    live = serve_capability(capability, {"ION_MAX_BODY_BYTES": str(64 * 1024)})
    sent = 0

    def chunks():  # type: ignore[no-untyped-def]
        nonlocal sent
        for _ in range(320):  # 20 MiB in 64 KiB chunks, no Content-Length: sent chunked
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    response = requests.post(
        f"{live.url}{path}", data=chunks(), headers={"Content-Type": content_type}, timeout=60
    )
    assert response.status_code == 413
    assert response.json()["detail"] == f"Body exceeds the limit of {64 * 1024} bytes."
