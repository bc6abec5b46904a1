"""Ports the decision reads through: the request history and capacity samples of each region
(from the metric store via the query API), and the rollback triggers that are firing (from the
alert states the alert evaluation keeps). Each port is a small Protocol with a production
implementation here and an in-memory one for tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from functions.scaling.forecast import RECENT_MINUTES, ForecastConfig, History
from functions.scaling.time_grid import MINUTE, floor_hour, floor_minute
from shared.logging import get_logger

log = get_logger("scaling.sources")

# Requests as the services count them in their own OTel export (a histogram: count = requests):
# each region's persona service, and routing in the region it runs in.
ROUTE_METRIC = "http.server.request.duration"
CLOUD_RUN_REQUESTS = "cloudrun.request.count"  # collected from Cloud Monitoring (a sum per minute)
CLOUD_RUN_INSTANCES = "cloudrun.container.instance.count"
CLOUD_RUN_CPU = "cloudrun.container.cpu.utilization"
# An hour whose collector minutes are fewer than this has no mean (as the forecast's own rule).
MIN_MINUTES_PER_HOUR = ForecastConfig().min_served_minutes


@dataclass
class RegionInputs:
    history: History
    capacity_samples: list[tuple[float, float, float]] = field(default_factory=list)


# What a decision off the forecast grid reads: the last minute's load and the busiest minute of
# the last ten (the max's floor), nothing hourly.
LATEST_MINUTES = 15
# One query: metric, aggregation, start, end, step (s), labels, services counted (per region), across.
Read = tuple[str, str, datetime, datetime, int, dict[str, str], Mapping[str, Sequence[str]], str | None]


class HistorySource(Protocol):
    def inputs(
        self, regions: Iterable[str], services: Mapping[str, str], at: datetime, days: int
    ) -> dict[str, RegionInputs]: ...

    def latest(
        self, regions: Iterable[str], services: Mapping[str, str], at: datetime
    ) -> dict[str, RegionInputs]: ...


class GuardSource(Protocol):
    def firing(self, region: str, rules: Iterable[str]) -> list[str]: ...


class QueryApiHistory:
    """Eight queries for every region at once (grouped by region and service): hourly and
    per-minute request counts from the services' own request metric (the region's persona service,
    and routing where it runs: exported every few seconds) and the Cloud Run collector (minutes
    late: Monitoring's delay), the larger per step, as either can lag or be missing; the
    collector's data points, hourly instances and CPU for learning the capacity; between forecast
    refreshes the three per-minute ones only (``latest``)."""

    def __init__(self, route_service: str) -> None:
        self.route_service = route_service

    def _series(
        self,
        metric: str,
        agg: str,
        start: datetime,
        end: datetime,
        *,
        step: int,
        labels: dict[str, str],
        services: Mapping[str, Sequence[str]],
        across: str | None = None,
    ) -> dict[str, dict[datetime, float]]:
        """Per region: step start -> value, of the region's ``services`` only (the region also runs
        other services, ION Ops' own functions among them); of several, the largest per step: they
        count the same requests at different hops (routing, then the persona service)."""
        from shared.metrics.query import run_query
        from shared.metrics.query_model import MetricQuery, QueryError

        try:
            result = run_query(
                MetricQuery(
                    metric=metric,
                    agg=agg,
                    start=start,
                    end=end,
                    step=step,
                    labels=labels,
                    group_by=["region", "service"],
                    across=across,  # type: ignore[arg-type]
                )
            )
        except QueryError as exc:
            log.warning("query failed", extra={"metric": metric, "error": str(exc)})
            return {}
        out: dict[str, dict[datetime, float]] = {}
        for series in result.series:
            region = series.labels.get("region", "")
            if series.labels.get("service") not in services.get(region, ()):
                continue
            points = out.setdefault(region, {})
            for at, value in series.points:
                points[at] = max(points.get(at, 0.0), value)
        return out

    def hourly_requests(
        self, start: datetime, end: datetime, services: Mapping[str, str]
    ) -> dict[str, dict[datetime, float]]:
        """Per region: UTC hour -> mean requests per minute over the minutes with data (see
        ``hourly_means``); an hour with too few minutes of data is left out, never read as quiet."""
        own, serving = _own(services), self._serving(services)
        route = self._series(ROUTE_METRIC, "count", start, end, step=3600, labels={}, services=serving)
        run = self._series(CLOUD_RUN_REQUESTS, "sum", start, end, step=3600, labels={}, services=own)
        minutes = self._series(
            CLOUD_RUN_REQUESTS, "count", start, end, step=3600, labels={}, services=own, across="max"
        )
        return {
            region: hourly_means(route.get(region, {}), run.get(region, {}), minutes.get(region, {}))
            for region in {*route, *run}
        }

    def _serving(self, services: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
        """Per region, the services whose own request metric counts its requests: the region's
        persona service, and routing (which also counts the requests it answers from its cache)."""
        return {region: (service, self.route_service) for region, service in services.items()}

    def _minute_reads(self, start: datetime, now: datetime, services: Mapping[str, str]) -> dict[str, Read]:
        """Per minute: the services' own request counts, the collector's, and the collector's data
        points (the query answers 0 for a step without data: a point tells a missing minute from a
        quiet one)."""
        own, serving = _own(services), self._serving(services)
        return {
            "minute_route": (ROUTE_METRIC, "count", start, now, 60, {}, serving, None),
            "minute_run": (CLOUD_RUN_REQUESTS, "sum", start, now, 60, {}, own, None),
            "minute_run_points": (CLOUD_RUN_REQUESTS, "count", start, now, 60, {}, own, None),
        }

    def _read_all(self, reads: Mapping[str, Read]) -> dict[str, dict[str, dict[datetime, float]]]:
        """The reads wait on Firestore, not on this CPU: side by side, a run costs the slowest."""
        with ThreadPoolExecutor(max_workers=len(reads)) as pool:
            futures = {
                name: pool.submit(
                    self._series,
                    metric,
                    agg,
                    start,
                    end,
                    step=step,
                    labels=labels,
                    services=only,
                    across=across,
                )
                for name, (metric, agg, start, end, step, labels, only, across) in reads.items()
            }
            return {name: future.result() for name, future in futures.items()}

    @staticmethod
    def _recent(got: Mapping[str, dict[str, dict[datetime, float]]], region: str) -> dict[datetime, float]:
        return recent_minutes(
            got["minute_route"].get(region, {}),
            got["minute_run"].get(region, {}),
            got["minute_run_points"].get(region, {}),
        )

    def latest(
        self, regions: Iterable[str], services: Mapping[str, str], at: datetime
    ) -> dict[str, RegionInputs]:
        """The last ``LATEST_MINUTES`` per minute: the three per-minute reads, nothing hourly."""
        now = floor_minute(at)
        got = self._read_all(self._minute_reads(now - LATEST_MINUTES * MINUTE, now, services))
        return {
            region: RegionInputs(History(hourly={}, recent=self._recent(got, region), first_seen=None))
            for region in regions
        }

    def inputs(
        self, regions: Iterable[str], services: Mapping[str, str], at: datetime, days: int
    ) -> dict[str, RegionInputs]:
        end_hour = floor_hour(at)
        start_hour = end_hour - timedelta(days=days)
        now = floor_minute(at)
        own, serving = _own(services), self._serving(services)
        reads: dict[str, Read] = {
            "hourly_route": (ROUTE_METRIC, "count", start_hour, end_hour, 3600, {}, serving, None),
            "hourly_run": (CLOUD_RUN_REQUESTS, "sum", start_hour, end_hour, 3600, {}, own, None),
            # The collector's data points (one per series and minute) tell an hour's minutes with data.
            "hourly_run_minutes": (
                CLOUD_RUN_REQUESTS,
                "count",
                start_hour,
                end_hour,
                3600,
                {},
                own,
                "max",
            ),
            # Cloud Run has one instance-count series per revision and state (active, idle): each
            # averaged over the hour, then summed (pooling them would average the series).
            "instances": (CLOUD_RUN_INSTANCES, "avg", start_hour, end_hour, 3600, {}, own, "sum"),
            "cpu": (CLOUD_RUN_CPU, "avg", start_hour, end_hour, 3600, {}, own, None),
            **self._minute_reads(now - RECENT_MINUTES * MINUTE, now, services),
        }
        got = self._read_all(reads)
        hourly_route, hourly_run = got["hourly_route"], got["hourly_run"]
        instances, cpu = got["instances"], got["cpu"]
        out: dict[str, RegionInputs] = {}
        for region in regions:
            route_hours, run_hours = hourly_route.get(region, {}), hourly_run.get(region, {})
            hourly_rpm = hourly_means(route_hours, run_hours, got["hourly_run_minutes"].get(region, {}))
            recent = self._recent(got, region)
            # An hour with data but no mean (too few minutes known) still dates the history.
            with_data = [h for h, total in _larger(route_hours, run_hours).items() if total > 0]
            seen = sorted([*with_data, *(m for m, v in recent.items() if v > 0)])
            samples = [
                (hourly_rpm[hour], instances[region][hour], cpu[region][hour])
                for hour in hourly_rpm
                if hour in instances.get(region, {}) and hour in cpu.get(region, {})
            ]
            out[region] = RegionInputs(
                history=History(hourly=hourly_rpm, recent=recent, first_seen=seen[0] if seen else None),
                capacity_samples=samples,
            )
        return out


def hourly_means(
    route: Mapping[datetime, float],
    run: Mapping[datetime, float],
    run_minutes: Mapping[datetime, float],
    least: int = MIN_MINUTES_PER_HOUR,
) -> dict[datetime, float]:
    """Per hour, mean requests per minute over the minutes with data: the collector's sum over
    its minutes with data (its data points per series, at most 60), or routing's sum over 60 when
    larger (routing's minutes are not counted, so its sum / 60 is a floor of its mean). An hour
    with fewer than ``least`` collector minutes is unknown (left out): a metric outage is missing
    data, not a quiet hour (sum / 60 read it as one, and the forecast under-provisioned after).
    Hours without the collector are recorded by the decisions from their per-minute reads."""
    out: dict[datetime, float] = {}
    for hour, total in run.items():
        minutes = min(60.0, run_minutes.get(hour, 0.0))
        if minutes < least or total <= 0:
            continue
        out[hour] = max(total / minutes, route.get(hour, 0.0) / 60)
    return out


def recent_minutes(
    route: Mapping[datetime, float], run: Mapping[datetime, float], run_points: Mapping[datetime, float]
) -> dict[datetime, float]:
    """Per minute, the larger of the two sources' requests, for the minutes with data only (a
    collector data point or a routing request): the query's 0 for an empty step is no quiet minute."""
    return {
        minute: max(route.get(minute, 0.0), run.get(minute, 0.0))
        for minute in {*route, *run, *run_points}
        if route.get(minute, 0.0) > 0 or run_points.get(minute, 0.0) > 0
    }


def _own(services: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Per region, its own Cloud Run service only (the collector's series of that service)."""
    return {region: (service,) for region, service in services.items()}


def _larger(a: Mapping[datetime, float], b: Mapping[datetime, float]) -> dict[datetime, float]:
    return {key: max(a.get(key, 0.0), b.get(key, 0.0)) for key in {*a, *b}}


class MemoryHistory:
    def __init__(self, inputs: dict[str, RegionInputs]) -> None:
        self.data = inputs

    def inputs(
        self, regions: Iterable[str], services: Mapping[str, str], at: datetime, days: int
    ) -> dict[str, RegionInputs]:
        return {
            r: self.data.get(r, RegionInputs(History(hourly={}, recent={}, first_seen=None))) for r in regions
        }

    def latest(
        self, regions: Iterable[str], services: Mapping[str, str], at: datetime
    ) -> dict[str, RegionInputs]:
        return self.inputs(regions, services, at, 0)


class FirestoreGuard:
    """Rollback triggers from the alert evaluation's own states (collection ``alert_states``):
    a trigger counts when its rule is firing for this region or for no region in particular."""

    COLLECTION = "alert_states"

    def firing(self, region: str, rules: Iterable[str]) -> list[str]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        from shared.firestore import get_firestore

        wanted = set(rules)
        if not wanted:
            return []
        found = []
        query = get_firestore().collection(self.COLLECTION).where(filter=FieldFilter("state", "==", "firing"))
        for doc in query.stream():
            data = doc.to_dict() or {}
            rule = data.get("rule")
            labels = data.get("labels") or {}
            if rule in wanted and labels.get("region", region) == region:
                found.append(f"{rule}[{labels['region']}]" if "region" in labels else str(rule))
        return sorted(set(found))


class MemoryGuard:
    def __init__(self, firing: dict[str, list[str]] | None = None) -> None:
        self.by_region = firing or {}

    def firing(self, region: str, rules: Iterable[str]) -> list[str]:
        return sorted(self.by_region.get(region, []))
