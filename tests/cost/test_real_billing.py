"""Cost on a real billing account (issue 22 item 2), through the real BigQuery client and the
stand-in: only ION's projects, aggregated in SQL, Pacific days and months, invoice months and cost
types, a bad line set aside, Budgets reconciled, the live estimate checked against the bill.

Expected figures are computed here from the raw rows with zoneinfo and Decimal, independently of
the function's code and of the stand-in's."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devtools.bigquery_standin import StandIn, Table, serve
from devtools.billing_export import ION_PROJECTS, OTHER_PROJECT, SERVING_PROJECT, generate
from functions.cost.service import CostService
from functions.cost.settings import CostSettings
from functions.cost.sources import EXPORT_QUERY, BigQueryBillingSource, NoProjects
from functions.cost.store import MemoryCostStore
from tests.cost.helpers import TABLE

PACIFIC = ZoneInfo("America/Los_Angeles")


@pytest.fixture
def standin() -> Iterator[StandIn]:
    from devtools.processes import free_port

    server = StandIn("billing-admin", Table(TABLE, []), clock=lambda: datetime(2027, 1, 1, tzinfo=UTC))
    httpd = serve(server, free_port())
    server.endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    yield server
    httpd.shutdown()
    httpd.server_close()


def source(standin: StandIn, projects: tuple[str, ...] = ION_PROJECTS) -> BigQueryBillingSource:
    return BigQueryBillingSource(TABLE, projects=projects, endpoint=standin.endpoint)  # type: ignore[attr-defined]


def service(standin: StandIn, now: datetime, store: Any = None, **kw: Any) -> CostService:
    return CostService(
        settings=CostSettings(ION_COST_PROJECTS=",".join(ION_PROJECTS)),
        source=source(standin),
        store=store if store is not None else MemoryCostStore(),
        publish=lambda _t: None,
        now=lambda: now,
        **kw,
    )


def raw(at: str, cost: str, *, project: str = SERVING_PROJECT, service: str = "Cloud Run",
        cost_type: str = "regular", invoice: str | None = None, credits: str | None = None) -> dict[str, Any]:  # fmt: skip
    start = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return {
        "service": {"description": service},
        "sku": {"description": f"{service} usage"},
        "usage_start_time": start.isoformat(),
        "usage_end_time": (start + timedelta(hours=1)).isoformat(),
        "project": {"id": project},
        "location": {"region": "us-central1"},
        "cost": Decimal(cost),
        "currency": "USD",
        "credits": [] if credits is None else [{"name": "CUD", "amount": Decimal(credits)}],
        # The export's invoice month is the billing account's (Pacific) month of the usage.
        "invoice": {"month": invoice or start.astimezone(PACIFIC).strftime("%Y%m")},
        "cost_type": cost_type,
        "export_time": (start + timedelta(hours=3)).isoformat(),
    }


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace(" UTC", "+00:00"))


def expected_days(rows: list[dict[str, Any]], projects: tuple[str, ...]) -> dict[date, Decimal]:
    """Usage (cost type regular) net per Pacific day of the given projects, from raw rows."""
    out: dict[date, Decimal] = defaultdict(Decimal)
    for r in rows:
        if r["project"]["id"] not in projects or r.get("cost_type", "regular") != "regular":
            continue
        if not (r.get("service") or {}).get("description"):
            continue
        net = Decimal(str(r["cost"])) + sum((Decimal(str(c["amount"])) for c in r["credits"]), Decimal(0))
        out[_ts(str(r["usage_start_time"])).astimezone(PACIFIC).date()] += net
    return dict(out)


# --- the stand-in checks the query ---------------------------------------------------------------


def _query(standin: StandIn, sql: str, params: list[Any]) -> list[Any]:
    from google.cloud import bigquery

    client = source(standin).client()
    config = bigquery.QueryJobConfig(query_parameters=params, use_legacy_sql=False)
    return list(client.query_and_wait(sql, job_config=config))


BEFORE_QUERY = """
SELECT service, sku, usage_start_time, usage_end_time, location, CAST(cost AS NUMERIC) AS cost, currency,
  ARRAY(SELECT AS STRUCT c.name, CAST(c.amount AS NUMERIC) AS amount, c.type FROM UNNEST(credits) AS c) AS credits,
  invoice, labels, export_time
FROM `{table}`
WHERE usage_start_time >= @since AND usage_start_time < @until
  AND _PARTITIONTIME >= TIMESTAMP_SUB(@since, INTERVAL 1 DAY)
ORDER BY usage_start_time
"""


def test_the_stand_in_refuses_a_query_without_the_project_filter(standin: StandIn) -> None:
    """The query before this change read every project of the billing account; the stand-in
    served it. Now it is refused (and, allowed for the bench, served but flagged)."""
    from google.api_core.exceptions import BadRequest
    from google.cloud import bigquery

    standin.table = Table(TABLE, generate(date(2026, 11, 1), date(2026, 11, 3), others=True).rows)
    window = [
        bigquery.ScalarQueryParameter("since", "TIMESTAMP", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        bigquery.ScalarQueryParameter("until", "TIMESTAMP", datetime(2026, 11, 4, 8, tzinfo=UTC)),
    ]
    with pytest.raises(BadRequest, match="no project filter"):
        _query(standin, BEFORE_QUERY.format(table=TABLE), window)
    standin.allow_unfiltered = True
    served = _query(standin, BEFORE_QUERY.format(table=TABLE), window)
    assert {r["service"]["description"] for r in served} >= {"Compute Engine"}  # another team's
    assert standin.flags
    assert "project filter" in standin.flags[0]


def test_the_stand_in_checks_parameter_types_and_grouping(standin: StandIn) -> None:
    from google.api_core.exceptions import BadRequest
    from google.cloud import bigquery

    src = source(standin)
    good = src.parameters(date(2026, 11, 1), date(2026, 11, 3), "2026-11", PACIFIC)
    sql = EXPORT_QUERY.format(table=TABLE)
    assert _query(standin, sql, good) == []
    as_string = [p for p in good if p.name != "projects"] + [
        bigquery.ScalarQueryParameter("projects", "STRING", ",".join(ION_PROJECTS))
    ]
    with pytest.raises(BadRequest, match="projects' has type STRING where the query needs ARRAY<STRING>"):
        _query(standin, sql, as_string)
    bad_zone = [p for p in good if p.name != "tz"] + [
        bigquery.ScalarQueryParameter("tz", "STRING", "Pacific")
    ]
    with pytest.raises(BadRequest, match="Invalid time zone"):
        _query(standin, sql, bad_zone)
    ungrouped = sql.replace(
        "GROUP BY usage_day, invoice_month, cost_type,", "GROUP BY usage_day, invoice_month,"
    )
    with pytest.raises(BadRequest, match="cost_type which is neither grouped nor aggregated"):
        _query(standin, ungrouped, good)
    unfiltered = sql.replace("project.id IN UNNEST(@projects)\n  AND ", "").replace("@projects", "")
    with pytest.raises(BadRequest):
        _query(standin, unfiltered, [p for p in good if p.name != "projects"])


def test_the_stand_in_aggregates_as_bigquery_would(standin: StandIn) -> None:
    """Lines summed per Pacific day, invoice month, cost type, service, SKU, region, currency;
    NUMERIC sums exact; a NULL service its own group; far fewer lines than rows."""
    rows = generate(
        date(2026, 10, 25), date(2026, 11, 8), hours=1, others=True, charges=True, late_share=0.0,
        malformed_on=[date(2026, 11, 2)],
    ).rows  # fmt: skip
    standin.table = Table(TABLE, rows)
    parsed = source(standin).lines(date(2026, 10, 26), date(2026, 11, 7), month="2026-11", zone=PACIFIC)
    assert parsed.read < len(rows) / 20
    assert len(parsed.rejected) == 1
    assert "service" in parsed.reasons()[0]
    got: dict[date, Decimal] = defaultdict(Decimal)
    for line in parsed.lines:
        if line.cost_type == "regular":
            got[line.usage_day] += line.net_cost
    want = expected_days(rows, ION_PROJECTS)
    assert dict(got.items()) == {d: want[d] for d in got}
    assert {line.cost_type for line in parsed.lines} == {"regular", "tax", "rounding error"}
    assert sum(line.rows for line in parsed.lines) + 1 == sum(  # + the malformed row set aside
        _ts(r["usage_start_time"]).astimezone(PACIFIC).date() >= date(2026, 10, 26)
        and (
            _ts(r["usage_start_time"]).astimezone(PACIFIC).date() <= date(2026, 11, 7)
            or r["invoice"]["month"] == "202611"
        )
        and r["project"]["id"] in ION_PROJECTS
        for r in rows
    )


# --- the findings, each a test -------------------------------------------------------------------


def test_only_the_configured_projects_are_counted(standin: StandIn) -> None:
    """The query had no project filter: another team's project on the billing account was ION's
    cost. Now month to date is ION Ops' and the serving project's, to the cent."""
    rows = generate(date(2026, 10, 1), date(2026, 11, 18), hours=6, others=True, late_share=0.0).rows
    standin.table = Table(TABLE, rows)
    snap = service(standin, datetime(2026, 11, 19, 17, tzinfo=UTC)).run(date(2026, 11, 18))
    want = expected_days(rows, ION_PROJECTS)
    november = sum((v for d, v in want.items() if d.month == 11 and d.day <= 18), Decimal(0))
    assert Decimal(str(snap["month_to_date"]["total"])) == november.quantize(Decimal("0.01"))
    assert "Compute Engine" not in snap["month_to_date"]["by_service"]  # the other team's
    everything = expected_days(rows, (*ION_PROJECTS, OTHER_PROJECT))
    assert sum(v for d, v in everything.items() if d.month == 11 and d.day <= 18) > 2 * november
    with pytest.raises(NoProjects, match="ION_COST_PROJECTS"):
        source(standin, projects=()).lines(
            date(2026, 11, 1), date(2026, 11, 2), month="2026-11", zone=PACIFIC
        )


def test_a_usage_at_06_utc_on_march_1_belongs_to_february_28_pacific(standin: StandIn) -> None:
    """Days were UTC: the evening of Feb 28 in California was billed to March 1 and its month."""
    standin.table = Table(
        TABLE,
        [
            raw("2026-02-28T20:00:00Z", "3"),
            raw("2026-03-01T06:00:00Z", "10"),
            raw("2026-03-01T09:00:00Z", "1"),
        ],
    )
    feb = service(standin, datetime(2026, 3, 1, 17, tzinfo=UTC)).run(date(2026, 2, 28))
    assert feb["month_to_date"]["total"] == 13
    assert feb["time_zone"] == "America/Los_Angeles"
    assert feb["daily"][-1] == {"date": "2026-02-28", "total": 13.0, "credits": 0.0,
                                "by_service": {"Cloud Run": 13.0}, "charges": {}}  # fmt: skip
    march = service(standin, datetime(2026, 3, 2, 17, tzinfo=UTC)).run(date(2026, 3, 1))
    assert march["month_to_date"]["total"] == 1


def test_month_ends_follow_the_invoice_month(standin: StandIn) -> None:
    """Month to date is by invoice.month: Nov 30 evening in Pacific (Dec 1 05:00 UTC) is November's;
    a correction billed in December for November's usage is December's, not a November day's."""
    standin.table = Table(
        TABLE,
        [
            raw("2026-11-30T12:00:00Z", "50"),
            raw("2026-12-01T05:00:00Z", "7"),  # 21:00 PST Nov 30
            raw("2026-12-01T12:00:00Z", "20"),
            raw("2026-11-20T20:00:00Z", "-4", cost_type="adjustment", invoice="202612"),
        ],
    )
    nov = service(standin, datetime(2026, 12, 1, 17, tzinfo=UTC)).run(date(2026, 11, 30))
    assert nov["month_to_date"]["total"] == 57
    dec = service(standin, datetime(2026, 12, 2, 17, tzinfo=UTC)).run(date(2026, 12, 1))
    assert dec["month_to_date"]["usage"] == 20
    assert dec["month_to_date"]["charges"] == {"adjustment": -4.0}
    assert dec["month_to_date"]["total"] == 16
    assert nov["month_to_date"]["total"] == 57  # the November snapshot does not take December's


def test_tax_adjustments_and_rounding_are_reported_apart_from_usage(standin: StandIn) -> None:
    """cost_type was ignored: a day's tax row was Cloud Run's... or a service of its own named
    Tax, with an anomaly on it. Now usage per service stays usage; charges are apart."""
    rows = generate(date(2026, 9, 1), date(2026, 11, 18), hours=24, charges=True, late_share=0.0).rows
    standin.table = Table(TABLE, rows)
    snap = service(standin, datetime(2026, 11, 19, 17, tzinfo=UTC)).run(date(2026, 11, 18))
    mtd = snap["month_to_date"]
    assert "Tax" not in mtd["by_service"]
    assert "Invoice" not in mtd["by_service"]
    assert set(mtd["charges"]) == {"tax", "adjustment"}  # rounding comes on the month's last day
    assert mtd["charges"]["adjustment"] == -5
    assert mtd["tax"] == mtd["charges"]["tax"] > 0
    assert mtd["total"] == pytest.approx(mtd["usage"] - 5, abs=0.01)
    assert mtd["invoice_total"] == pytest.approx(mtd["total"] + mtd["tax"], abs=0.01)
    assert round(sum(mtd["by_service"].values()), 2) == pytest.approx(mtd["usage"], abs=0.05)
    assert all("Tax" not in d["by_service"] and d["charges"].get("tax", 0) > 0 for d in snap["daily"])
    assert snap["anomalies"] == []


@pytest.mark.parametrize(("first", "short", "long"), [(date(2026, 3, 5), date(2026, 3, 8), None),
                                                       (date(2026, 10, 29), None, date(2026, 11, 1))])  # fmt: skip
def test_dst_weeks_have_23_and_25_hour_days(
    standin: StandIn, first: date, short: date | None, long: date | None
) -> None:
    rows = generate(first, first + timedelta(days=6), hours=1, seed=3, late_share=0.0).rows
    standin.table = Table(TABLE, rows)
    parsed = source(standin).lines(
        first, first + timedelta(days=6), month=first.strftime("%Y-%m"), zone=PACIFIC
    )
    rows_per_day: dict[date, int] = defaultdict(int)
    for line in parsed.lines:
        if line.service == "Cloud Logging":  # one SKU, one region: one row per hour
            rows_per_day[line.usage_day] += line.rows
    hours = dict(rows_per_day.items())
    assert set(hours.values()) <= {23, 24, 25}
    if short:
        assert hours[short] == 23
    if long:
        assert hours[long] == 25
    want = expected_days(rows, ION_PROJECTS)
    got: dict[date, Decimal] = defaultdict(Decimal)
    for line in parsed.lines:
        got[line.usage_day] += line.net_cost
    assert dict(got) == {d: want[d] for d in got}


def test_a_line_that_does_not_parse_is_set_aside_and_reported_not_a_502(standin: StandIn) -> None:
    """One row the parser rejected made every daily run a 502 (BadRows), storing nothing."""
    rows = generate(date(2026, 10, 1), date(2026, 11, 18), hours=24, late_share=0.0,
                    malformed_on=[date(2026, 11, 17)]).rows  # fmt: skip
    standin.table = Table(TABLE, rows)
    store = MemoryCostStore()
    snap = service(standin, datetime(2026, 11, 19, 17, tzinfo=UTC), store).run(date(2026, 11, 18))
    assert snap["rejected"]["count"] == 1
    assert snap["rejected"]["reasons"][0].startswith("row ")
    assert "service" in snap["rejected"]["reasons"][0]
    assert date(2026, 11, 17) in store.day_docs  # the rest stored
    want = expected_days(rows, ION_PROJECTS)
    assert Decimal(store.day_docs[date(2026, 11, 17)]["total"]) == want[date(2026, 11, 17)]


def test_budget_notifications_are_reconciled_with_the_export(standin: StandIn) -> None:
    """The stored budget figures were never compared with the export."""
    standin.table = Table(TABLE, [raw(f"2026-11-{d:02d}T12:00:00Z", "100") for d in range(1, 19)])
    store = MemoryCostStore()
    for budget_id, amount, cost in (("b-ion", "3000", "1790.5"), ("b-other", "500", "120")):
        store.put_budget_notification(
            f"{budget_id}/2026-11",
            {"budget_id": budget_id, "name": budget_id, "month": "2026-11", "cost": cost, "budget": amount,
             "currency": "USD", "published_at": datetime(2026, 11, 19, 10, tzinfo=UTC)},
        )  # fmt: skip
    snap = service(standin, datetime(2026, 11, 19, 17, tzinfo=UTC), store).run(date(2026, 11, 18))
    rec = snap["budget_reconciliation"]
    assert rec["month"] == "2026-11"
    assert rec["export_month_to_date"] == 1800
    ion = next(b for b in rec["budgets"] if b["budget_id"] == "b-ion")
    assert ion["difference"] == 9.5
    assert ion["is_configured_budget"] is True
    assert ion["difference_pct"] == pytest.approx(0.53, abs=0.01)
    assert next(b for b in rec["budgets"] if b["budget_id"] == "b-other")["is_configured_budget"] is False


class _Series:
    def __init__(self, value: float) -> None:
        self.labels: dict[str, str] = {}
        self.points = [(datetime(2026, 11, 1, tzinfo=UTC), value)]


class _Metrics:
    """Cloud Run at 2 instances all day; nothing else."""

    def query(self, metric: str, agg: str, start: datetime, end: datetime, **kw: Any) -> list[Any]:
        if metric == "cloudrun.container.instance.count":
            hours = int((end - start).total_seconds() // 3600)
            return [_Series(2.0 * hours)]
        return []


def test_the_days_live_estimate_is_stored_and_checked_against_the_bill(standin: StandIn) -> None:
    """The live estimate was shown and forgotten: never compared with what was billed."""
    from functions.cost.settings import DEFAULT_PRICES_FILE
    from functions.cost.usage import load_prices

    rows = [raw(f"2026-11-{d:02d}T{h:02d}:00:00Z", "0.20") for d in range(10, 19) for h in range(8, 20)]
    standin.table = Table(TABLE, rows)
    store = MemoryCostStore()
    prices = load_prices(DEFAULT_PRICES_FILE)
    run = service(standin, datetime(2026, 11, 13, 17, tzinfo=UTC), store, metrics=_Metrics(), prices=prices)
    first = run.run(date(2026, 11, 12))
    assert first["estimate_check"]["days"] == []  # Nov 12 is estimated but not settled
    stored = store.estimates(date(2026, 11, 12), date(2026, 11, 13))
    assert stored[date(2026, 11, 12)]["complete"] is True
    assert stored[date(2026, 11, 13)]["complete"] is False  # today so far
    run.now = lambda: datetime(2026, 11, 16, 17, tzinfo=UTC)
    later = run.run(date(2026, 11, 15))
    (checked,) = later["estimate_check"]["days"]
    assert checked["date"] == "2026-11-12"
    cloud_run = checked["by_service"]["Cloud Run"]
    assert cloud_run["billed"] == pytest.approx(12 * 0.20)
    # 2 instances x 24 h x (1 vCPU x 0.000024 + 0.5 GiB x 0.0000025) per second
    assert cloud_run["estimate"] == pytest.approx(2 * 86400 * (0.000024 + 0.5 * 0.0000025), abs=0.01)
    assert cloud_run["error"] == pytest.approx(cloud_run["estimate"] - cloud_run["billed"], abs=0.01)
    assert later["estimate_check"]["mean_abs_error_pct"]["Cloud Run"] == abs(cloud_run["error_pct"])


def test_projects_and_time_zone_settings_are_checked() -> None:
    from pydantic import ValidationError

    settings = CostSettings(ION_COST_PROJECTS=" ion-ops-prod , ion-mentoring-prod ")
    assert settings.project_list == ["ion-ops-prod", "ion-mentoring-prod"]
    assert settings.zone.key == "America/Los_Angeles"
    with pytest.raises(ValidationError, match="not ids: My Project"):
        CostSettings(ION_COST_PROJECTS="ion-ops-prod,My Project")
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        CostSettings(ION_COST_TIME_ZONE="Pacific Time")
