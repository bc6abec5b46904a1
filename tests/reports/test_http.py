"""The dashboards over real HTTP (functions-framework): formats by ?format= and Accept, windows,
regions, 4xx naming the allowed values, the cache per refresh interval, /health."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from tests.reports.conftest import minutes
from tests.reports.traffic import seed


@pytest.fixture
def live(fs, serve_capability):  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    seed(minutes(now, 30), error_every=10)
    return serve_capability("reports", env={"ION_REPORTS_OUTBOX": ""})


def test_every_dashboard_in_every_format(live) -> None:
    index = requests.get(f"{live.url}/dashboards?format=json", timeout=10).json()
    names = [d["name"] for d in index["dashboards"]]
    page = requests.get(f"{live.url}/dashboards", timeout=10)
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert names == [
        "overview",
        "performance",
        "reliability",
        "cache",
        "infrastructure",
        "quality",
        "incidents",
        "customer_success",
        "finance",
    ]
    for name in names:
        for fmt, media in (
            ("html", "text/html"),
            ("json", "application/json"),
            ("markdown", "text/markdown"),
            ("text", "text/plain"),
        ):
            answer = requests.get(
                f"{live.url}/dashboards/{name}", params={"format": fmt, "window": "24h"}, timeout=30
            )
            assert answer.status_code == 200, answer.text
            # One charset parameter, not "text/html; charset=utf-8; charset=utf-8".
            charset = "" if fmt == "json" else "; charset=utf-8"
            assert answer.headers["Content-Type"] == media + charset
    overview = requests.get(f"{live.url}/dashboards/overview?format=json", timeout=30).json()
    assert overview["schema_version"] == 1
    assert overview["window"] == "1h"
    availability = next(p for p in overview["panels"] if p["id"] == "availability")
    assert availability["status"] in ("ok", "warning", "breach")
    assert availability["text"].endswith("%")
    html = requests.get(f"{live.url}/dashboards/overview", timeout=30).text
    assert '<meta http-equiv="refresh" content="300">' in html
    assert "<svg" in html
    assert "<script" not in html
    perf = requests.get(f"{live.url}/dashboards/performance", timeout=30).text
    assert '<meta http-equiv="refresh" content="60">' in perf


def test_accept_header_chooses_the_format(live) -> None:
    answer = requests.get(f"{live.url}/dashboards/cache", headers={"Accept": "application/json"}, timeout=30)
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["name"] == "cache"
    text = requests.get(f"{live.url}/dashboards/cache", headers={"Accept": "text/plain"}, timeout=30)
    assert text.text.startswith("CACHE [")


@pytest.mark.parametrize(
    ("path", "status", "allowed"),
    [
        ("/dashboards/overview?window=2h", 422, ["1h", "24h", "7d"]),
        ("/dashboards/overview?format=pdf", 422, ["html", "json", "markdown", "text"]),
        ("/dashboards/overview?region=mars-north1", 422, ["us-central1", "europe-west1", "asia-southeast1"]),
        (
            "/dashboards/costs",
            404,
            [
                "overview",
                "performance",
                "reliability",
                "cache",
                "infrastructure",
                "quality",
                "incidents",
                "customer_success",
                "finance",
            ],
        ),
    ],
)
def test_bad_parameters_are_4xx_listing_what_is_allowed(
    live, path: str, status: int, allowed: list[str]
) -> None:
    answer = requests.get(f"{live.url}{path}", timeout=10)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["allowed"] == allowed


def test_cached_for_the_refresh_interval(live) -> None:
    first = requests.get(f"{live.url}/dashboards/reliability?format=json", timeout=30)
    second = requests.get(f"{live.url}/dashboards/reliability?format=json", timeout=30)
    assert first.headers["X-Cache"] == "miss"
    assert second.headers["X-Cache"] == "hit"
    assert second.headers["Cache-Control"] == "max-age=300"
    assert first.text == second.text


def test_health_checks_what_serving_needs(live) -> None:
    answer = requests.get(f"{live.url}/health", timeout=30).json()
    assert answer["status"] == "ok"
    assert answer["checks"]["firestore"]["ok"]
    assert answer["checks"]["definitions"]["dashboards"] == 9
    assert answer["checks"]["mail"]["mode"].startswith("outbox")


def test_charts_speak_the_readers_zone(live) -> None:  # type: ignore[no-untyped-def]
    """Time axes were UTC under a New York title; ?tz= names the reader's zone, validated."""
    utc = requests.get(f"{live.url}/dashboards/performance", params={"format": "html"}, timeout=30)
    assert utc.status_code == 200
    assert " UTC</text>" in utc.text
    local = requests.get(
        f"{live.url}/dashboards/performance", params={"format": "html", "tz": "America/New_York"}, timeout=30
    )
    assert local.status_code == 200
    assert " UTC</text>" not in local.text
    assert " EST</text>" in local.text or " EDT</text>" in local.text
    # The header and tables too (they stayed UTC under a New York axis), in every text format.
    assert "times in America/New_York" in local.text
    text = requests.get(
        f"{live.url}/dashboards/performance", params={"format": "text", "tz": "America/New_York"}, timeout=30
    )
    assert "times in America/New_York" in text.text
    assert " UTC" not in text.text
    for not_a_zone in ("Mars/Olympus", "America"):
        bad = requests.get(f"{live.url}/dashboards/performance", params={"tz": not_a_zone}, timeout=30)
        assert bad.status_code == 422
        assert "tz" in bad.text
