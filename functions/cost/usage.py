"""Live usage from the metric store: today's cost before the export has it, and routed requests
for the cost per request and per customer.

Today's estimate multiplies usage by the dated price table (``prices.yaml``):

- Cloud Run: instance time from ``cloudrun.container.instance.count`` (each series' hourly average,
  summed across series, x 3,600 s;
  the collector copies it from Cloud Monitoring) x (vCPU and GiB per instance) x price per second,
  plus ``cloudrun.request.count`` x the request price;
- Cloud SQL: the minutes in which ``cloudsql.cpu.utilization`` has samples (the instance was up)
  x its vCPU and memory hourly prices (doubled for high availability);
- Memorystore: the metric store has no Memorystore series, so instances are counted as up for
  the whole time elapsed; the estimate says so in ``basis``.

Routed requests are the count of ``http.server.request.duration`` samples the routing function
records (label ``service`` = routing), every route but ``/health``. Per customer, routing's counter
of requests made with a customer's key, by its ``customer`` label; with no such request in the
window the answer says so instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, Field

REQUEST_METRIC = "http.server.request.duration"
INSTANCE_METRIC = "cloudrun.container.instance.count"
RUN_REQUESTS_METRIC = "cloudrun.request.count"
SQL_UP_METRIC = "cloudsql.cpu.utilization"
NOT_REQUESTS = {"/health"}


class RunPrices(BaseModel):
    vcpu_second: float = Field(ge=0)
    gib_second: float = Field(ge=0)
    million_requests: float = Field(ge=0)


class SqlPrices(BaseModel):
    vcpu_hour: float = Field(ge=0)
    gib_hour: float = Field(ge=0)


class MemorystorePrices(BaseModel):
    standard_gb_hour: float = Field(ge=0)
    basic_gb_hour: float | None = Field(default=None, ge=0)


class PriceTable(BaseModel):
    effective_from: date
    source: str
    cloud_run: RunPrices
    cloud_sql: SqlPrices
    memorystore: MemorystorePrices


class RunResources(BaseModel):
    vcpu_per_instance: float = Field(gt=0)
    gib_per_instance: float = Field(gt=0)


class SqlInstance(BaseModel):
    database: str
    vcpus: float = Field(gt=0)
    gib: float = Field(gt=0)
    high_availability: bool = False


class RedisInstance(BaseModel):
    instance: str
    tier: str = "standard"
    capacity_gb: float = Field(gt=0)


class Resources(BaseModel):
    cloud_run: RunResources
    cloud_sql: list[SqlInstance] = []
    memorystore: list[RedisInstance] = []


class PriceFile(BaseModel):
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    tables: list[PriceTable] = Field(min_length=1)
    resources: Resources

    def table_for(self, day: date) -> PriceTable:
        dated = [t for t in self.tables if t.effective_from <= day]
        if not dated:
            earliest = min(t.effective_from for t in self.tables)
            raise ValueError(f"no price table is in effect on {day} (earliest {earliest})")
        return max(dated, key=lambda t: t.effective_from)


def load_prices(path: Path) -> PriceFile:
    with path.open(encoding="utf-8") as handle:
        return PriceFile.model_validate(yaml.safe_load(handle))


class Metrics(Protocol):
    """The metric store, as far as cost reads it (``shared.metrics.query.run_query``)."""

    def query(
        self,
        metric: str,
        agg: str,
        start: datetime,
        end: datetime,
        *,
        step: int | None = None,
        labels: dict[str, str] | None = None,
        group_by: list[str] | None = None,
        across: str | None = None,
    ) -> list[Any]: ...


class StoreMetrics:
    """The metric store in-process, through the query API's own code."""

    def query(
        self,
        metric: str,
        agg: str,
        start: datetime,
        end: datetime,
        *,
        step: int | None = None,
        labels: dict[str, str] | None = None,
        group_by: list[str] | None = None,
        across: str | None = None,
    ) -> list[Any]:
        from shared.metrics.query import run_query
        from shared.metrics.query_model import MetricQuery

        result = run_query(
            MetricQuery(
                metric=metric,
                agg=agg,  # type: ignore[arg-type]
                start=start,
                end=end,
                step=step,
                labels=labels or {},
                group_by=group_by or [],
                across=across,  # type: ignore[arg-type]
            )
        )
        return result.series


class LiveEstimate(BaseModel):
    date: date
    until: datetime
    total: float
    by_service: dict[str, float]
    basis: dict[str, str]
    prices_effective_from: date
    complete: bool = Field(default=False, description="covers the whole day (the day is over)")
    label: str = "estimate: live usage x list prices (not billed figures)"


def _values(series: list[Any], keep: Callable[[Any], bool] = lambda _s: True) -> Iterator[float]:
    """Every point's value of the series ``keep`` accepts: the one loop over query answers."""
    for one in series:
        if keep(one):
            for _, value in one.points:
                yield float(value)


def _sum_points(series: list[Any]) -> float:
    return sum(_values(series))


def estimate_today(metrics: Metrics, prices: PriceFile, now: datetime, zone: tzinfo = UTC) -> LiveEstimate:
    """Today's cost so far (the day of ``now`` in ``zone``) from live usage."""
    return estimate_day(metrics, prices, now.astimezone(zone).date(), now, zone)


def estimate_day(
    metrics: Metrics, prices: PriceFile, day: date, now: datetime, zone: tzinfo = UTC
) -> LiveEstimate:
    """The cost of ``day`` (in ``zone``, the billing account's) from live usage, up to ``now`` or
    the day's end, whichever is first: the whole day once it is over."""
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    day_over = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    table = prices.table_for(day)
    res = prices.resources
    end = min(max(now, start + timedelta(minutes=1)), day_over)
    by_service: dict[str, float] = {}
    basis: dict[str, str] = {}

    # Each series (service, revision, state, region) averaged over the hour, then summed: the
    # instances running, not the average series.
    hourly = metrics.query(INSTANCE_METRIC, "avg", start, end, step=3600, across="sum")
    instance_seconds = _sum_points(hourly) * 3600
    requests = _sum_points(metrics.query(RUN_REQUESTS_METRIC, "sum", start, end))
    run_cost = (
        instance_seconds
        * (
            res.cloud_run.vcpu_per_instance * table.cloud_run.vcpu_second
            + res.cloud_run.gib_per_instance * table.cloud_run.gib_second
        )
        + requests / 1e6 * table.cloud_run.million_requests
    )
    by_service["Cloud Run"] = run_cost
    basis["Cloud Run"] = f"{instance_seconds:.0f} instance-seconds, {requests:.0f} requests"

    sql_cost = 0.0
    minutes_seen = []
    for inst in res.cloud_sql:
        series = metrics.query(
            SQL_UP_METRIC, "count", start, end, step=60, labels={"database": inst.database}
        )
        minutes = sum(1 for value in _values(series) if value > 0)
        factor = 2 if inst.high_availability else 1
        sql_cost += (
            minutes
            / 60
            * factor
            * (inst.vcpus * table.cloud_sql.vcpu_hour + inst.gib * table.cloud_sql.gib_hour)
        )
        minutes_seen.append(f"{inst.database} up {minutes} min")
    if res.cloud_sql:
        by_service["Cloud SQL"] = sql_cost
        basis["Cloud SQL"] = ", ".join(minutes_seen)

    if res.memorystore:
        hours = (end - start).total_seconds() / 3600
        redis_cost = 0.0
        for inst in res.memorystore:
            price = table.memorystore.standard_gb_hour
            if inst.tier == "basic" and table.memorystore.basic_gb_hour is not None:
                price = table.memorystore.basic_gb_hour
            redis_cost += inst.capacity_gb * hours * price
        by_service["Cloud Memorystore for Redis"] = redis_cost
        basis["Cloud Memorystore for Redis"] = (
            f"assumed up {hours:.2f} h (no Memorystore metrics in the store)"
        )

    return LiveEstimate(
        date=day,
        until=end,
        complete=end >= day_over,
        total=round(sum(by_service.values()), 2),
        by_service={k: round(v, 2) for k, v in by_service.items()},
        basis=basis,
        prices_effective_from=table.effective_from,
    )


class RequestCounts(BaseModel):
    total: float
    by_customer: dict[str, float] | None
    unattributed: float = 0.0
    customer_note: str | None = None


def routed_requests(
    metrics: Metrics, start: datetime, end: datetime, *, service: str, customer_label: str
) -> RequestCounts:
    """Requests the routing function served in ``[start, end)`` (its request-duration histogram),
    and per customer (routing's counter of requests made with a customer's key, labelled with the
    customer); the rest were made with operator keys or none."""
    from shared.customer_keys import CUSTOMER_REQUESTS_METRIC

    series = metrics.query(
        REQUEST_METRIC, "count", start, end, labels={"service": service}, group_by=["http.route"]
    )
    total = sum(_values(series, lambda s: s.labels.get("http.route") not in NOT_REQUESTS))
    by_customer: dict[str, float] = {}
    for s in metrics.query(CUSTOMER_REQUESTS_METRIC, "sum", start, end, labels={}, group_by=[customer_label]):
        customer = s.labels.get(customer_label)
        if customer:
            by_customer[customer] = by_customer.get(customer, 0.0) + _sum_points([s])
    unattributed = max(0.0, total - sum(by_customer.values()))
    if not by_customer:
        return RequestCounts(
            total=total,
            by_customer=None,
            unattributed=unattributed,
            customer_note="no request was made with a customer API key in this window; cost per "
            "customer is not computed rather than guessed",
        )
    return RequestCounts(total=total, by_customer=by_customer, unattributed=unattributed)
