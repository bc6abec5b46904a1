"""Bad input is a 4xx naming what was wrong, never a 500: the inputs a fuzz of `make run` found
answered 500 (issue 24), each against the function's real WSGI app on the Firestore emulator, and
the body cap on the reports API. A refused request changes nothing stored."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import quote

import pytest

from shared.topology import ROOT

pytestmark = pytest.mark.emulators


def _client(entry_point: str) -> Any:
    import functions_framework

    return functions_framework.create_app(entry_point, str(ROOT / "main.py"), "http").test_client()


@pytest.fixture
def health(fs):  # type: ignore[no-untyped-def]
    from functions.health.settings import get_health_settings

    get_health_settings.cache_clear()
    client = _client("score_health")
    created = client.post("/v1/customers", json={"id": "acme", "name": "Acme"})
    assert created.status_code == 201, created.get_json()
    yield client
    get_health_settings.cache_clear()


@pytest.fixture
def reports(fs):  # type: ignore[no-untyped-def]
    from functions.reports.settings import get_reports_settings

    get_reports_settings.cache_clear()
    yield _client("mail_reports")
    get_reports_settings.cache_clear()


def _problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    if field is not None:
        assert field in body["detail"], body
        assert any(e["field"] == field for e in body.get("errors", [])), body
    return body


@pytest.mark.parametrize("path", ["/v1/customers", "/v1/health/customers"])
@pytest.mark.parametrize("value", ["²", "١٢", "0", "1001", "-1", "1e3", ""])
def test_a_limit_that_is_no_number_in_range_is_422_naming_it(health, path: str, value: str) -> None:
    body = _problem(health.get(path, query_string={"limit": value}), 422, "limit")
    assert "1 to 1000" in body["detail"], body


@pytest.mark.parametrize(("path", "name", "most"), [("/v1/health/personas", "weeks", 52)])
def test_weeks_like_limit(health, path: str, name: str, most: int) -> None:
    body = _problem(health.get(path, query_string={name: "²"}), 422, name)
    assert f"1 to {most}" in body["detail"]


def test_days_like_limit(health) -> None:
    # Validated before the customer is looked up (it has no score yet: 404 otherwise).
    _problem(health.get("/v1/health/customers/acme", query_string={"days": "²"}), 422, "days")


@pytest.mark.parametrize("path", ["/v1/customers", "/v1/health/customers"])
@pytest.mark.parametrize("after", ["a/b", "..", ".", "__x__", "__name__", "a" * 1600, "x\x00y"])
def test_a_cursor_that_is_no_document_id_is_422_naming_it(health, fs, path: str, after: str) -> None:
    body = _problem(health.get(path, query_string={"after": after}), 422, "after")
    assert body["errors"][0]["allowed"], body


def test_a_good_cursor_still_pages(health) -> None:
    health.post("/v1/customers", json={"id": "beta", "name": "Beta"})
    page = health.get("/v1/customers", query_string={"limit": "1"}).get_json()
    assert [c["id"] for c in page["customers"]] == ["acme"]
    assert page["next"] == "acme"
    rest = health.get("/v1/customers", query_string={"after": page["next"]}).get_json()
    assert [c["id"] for c in rest["customers"]] == ["beta"]


@pytest.mark.parametrize("key_id", ["__x__", "..", "a" * 2000, "__keys__"])
def test_a_key_id_that_is_no_document_id_is_404(health, fs, key_id: str) -> None:
    from tests.test_fuzz_http import _documents

    before = _documents(fs)
    _problem(health.delete(f"/v1/customers/acme/keys/{quote(key_id, safe='%')}"), 404)
    assert _documents(fs) == before


@pytest.mark.parametrize("run_id", ["__x__", "%2E%2E", "a" * 3000, "__.__"])
def test_a_report_id_that_is_no_document_id_is_404(reports, run_id: str) -> None:
    _problem(reports.get(f"/v1/reports/{run_id}"), 404)


@pytest.mark.parametrize("audience", ["a" * 3000, "x" * 65, "a\nb"])
def test_a_long_audience_filter_is_422_naming_it(reports, audience: str) -> None:
    _problem(reports.get("/v1/reports", query_string={"audience": audience}), 422, "audience")


@pytest.mark.parametrize("value", ["²", "0", "501", "x"])
def test_a_report_listing_limit_out_of_range_is_422_naming_it(reports, value: str) -> None:
    _problem(reports.get("/v1/reports", query_string={"limit": value}), 422, "limit")


def _chunked(client: Any, path: str, data: bytes) -> Any:
    """A body without Content-Length, as gunicorn hands a chunked one to the app."""
    return client.post(
        path,
        input_stream=io.BytesIO(data),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_chunked_report_body_is_read_once_through_the_cap(reports, monkeypatch) -> None:
    # Read through read_body: the JSON is parsed (422 naming the field), not lost to request.data.
    body = _problem(_chunked(reports, "/v1/reports/engineering", b'{"period": "year"}'), 422, "period")
    assert "week" in body["detail"]


def test_a_chunked_report_body_over_the_cap_is_413(reports, monkeypatch) -> None:
    from shared.settings import get_settings

    monkeypatch.setenv("ION_MAX_BODY_BYTES", "1024")
    get_settings.cache_clear()
    data = json.dumps({"period": "week", "week": "x" * 4096}).encode()
    _problem(_chunked(reports, "/v1/reports/engineering", data), 413)


@pytest.mark.parametrize("as_of", ["0595-04-27", "0001-01-01", "1969-12-31"])
def test_a_health_run_as_of_long_ago_is_422(health, as_of: str) -> None:
    """Found by the contract test: the metric store refused the window (a 500)."""
    _problem(health.post("/v1/health/run", query_string={"as_of": as_of}), 422)


@pytest.mark.parametrize("letter_id", ["__x__", "__name__", "__.__"])
def test_a_dead_letter_id_firestore_reserves_is_404(fs, letter_id: str) -> None:
    client = _client("manage_dead_letters")
    _problem(client.get(f"/v1/dead-letters/{letter_id}"), 404)
    _problem(client.post(f"/v1/dead-letters/{letter_id}/redrive"), 404)


@pytest.mark.parametrize("day", ["0190-06-25", "1969-12-31"])
def test_a_cost_snapshot_of_a_day_long_ago_is_422(fs, day: str, tmp_path, monkeypatch) -> None:
    """Found by the contract test (exploratory run): the usage query refused the window (a 500)."""
    from functions.cost.main import reset

    monkeypatch.setenv("ION_COST_BILLING_FILE", str(tmp_path / "none.jsonl"))
    reset()
    client = _client("snapshot_cost")
    body = _problem(client.post("/", json={"date": day}), 422)
    assert "days ago" in body["detail"]
    reset()


@pytest.mark.parametrize("day", ["9999-12-31", "2999-01-01"])
def test_a_digest_of_a_day_not_over_is_422(fs, day: str, tmp_path, monkeypatch) -> None:
    """9999-12-31 was a 500 (its next day overflows); any day not over yet would be a partial
    digest that, sent once per day, stops the real one."""
    monkeypatch.setenv("ION_FANOUT_OUTBOX", str(tmp_path))
    client = _client("manage_alerts")
    _problem(client.post("/v1/digest", json={"date": day}), 422, "date")
