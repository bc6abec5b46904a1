"""GET /v1/reports a page at a time, on the served report function (functions-framework app,
Firestore emulator). Runs are kept 400 days (five audiences weekly, daily and monthly ones too):
before, every run kept was read and sorted here for each listing, whatever its ``limit``, and
nothing past ``limit`` (500 at most) could be reached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from functions.reports.archive import RUNS
from tests.paging import pages_by_next

pytestmark = pytest.mark.emulators

ROOT = Path(__file__).resolve().parents[2]
AUDIENCES = ("engineering", "leadership", "support")
KEPT = 60  # 20 weeks of three audiences


def seed_runs(fs: Any) -> list[dict[str, Any]]:
    start = datetime(2026, 1, 5, 6, tzinfo=UTC)
    runs = []
    batch = fs.batch()
    for n in range(KEPT):
        audience = AUDIENCES[n % 3]
        week = n // 3 + 1
        run = {
            "id": f"{audience}-2026-W{week:02d}",
            "audience": audience,
            "state": "sent",
            "claimed_at": start + timedelta(weeks=week - 1, minutes=n % 3),
            "html": "<p>report</p>",
        }
        batch.set(fs.collection(RUNS).document(run["id"]), run)
        runs.append(run)
    batch.commit()
    return sorted(runs, key=lambda r: r["claimed_at"], reverse=True)


def listed(client: Any, query: str) -> list[dict[str, Any]]:
    """Every page from ``/v1/reports?query``."""
    return pages_by_next(client, "/v1/reports", query, "reports")


def test_the_archive_is_listed_page_by_page_reading_each_page_only(fs: Any, query_reads: list[int]) -> None:
    newest_first = seed_runs(fs)
    client = functions_framework.create_app("mail_reports", str(ROOT / "main.py"), "http").test_client()

    query_reads[0] = 0
    first = client.get("/v1/reports?limit=5").get_json()
    assert query_reads[0] <= 5  # before: every run kept
    assert [r["id"] for r in first["reports"]] == [r["id"] for r in newest_first[:5]]
    assert first["next"] == newest_first[4]["id"]

    query_reads[0] = 0
    pages = listed(client, "limit=25")
    assert [len(p) for p in pages] == [25, 25, 10]
    assert [r["id"] for p in pages for r in p] == [r["id"] for r in newest_first]
    assert query_reads[0] <= KEPT

    query_reads[0] = 0
    support = listed(client, "audience=support&limit=8")
    assert [r["id"] for p in support for r in p] == [
        r["id"] for r in newest_first if r["audience"] == "support"
    ]
    assert [len(p) for p in support] == [8, 8, 4]
    assert query_reads[0] <= KEPT // 3


def test_a_bad_cursor_is_a_422_naming_after(fs: Any) -> None:
    seed_runs(fs)
    client = functions_framework.create_app("mail_reports", str(ROOT / "main.py"), "http").test_client()
    for query in ("after=engineering-1999-W01", "audience=support&after=engineering-2026-W01"):
        answer = client.get(f"/v1/reports?{query}")
        assert answer.status_code == 422, (query, answer.get_data(as_text=True))
        assert "after" in answer.get_data(as_text=True)


def test_an_audience_no_report_is_for_is_a_422_naming_the_audiences(fs: Any) -> None:
    """`audience=customer-success` (the audience is `customer_success`) listed nothing, a 200 a
    client cannot tell from an audience not mailed yet: a 422 naming the audiences there are."""
    seed_runs(fs)
    client = functions_framework.create_app("mail_reports", str(ROOT / "main.py"), "http").test_client()
    answer = client.get("/v1/reports?audience=customer-success")
    assert answer.status_code == 422, answer.get_data(as_text=True)
    problem = answer.get_json()
    assert problem["errors"][0]["field"] == "audience"
    assert "customer_success" in problem["allowed"]
    assert client.get("/v1/reports?audience=finance").get_json() == {"reports": [], "next": None}
