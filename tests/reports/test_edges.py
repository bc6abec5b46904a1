"""Charts honest at the edges: the last step of a window ending now has only partly elapsed, and
a gauge with one series per revision and state is their total, not their mean. Answered by the
query module's own Fold over in-memory samples (the store's semantics without the emulator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from functions.reports.build import PanelBuilder
from functions.reports.panels import Panel, load_catalog
from functions.reports.source import MemoryAlertSource
from shared.metrics.fold import Accumulator, Fold
from shared.metrics.query_model import MetricQuery, QueryResult

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class SampleSource:
    """Samples (labels, at, value) folded by the query module itself."""

    def __init__(self, samples: list[tuple[dict[str, str], datetime, float]]) -> None:
        self.samples = samples

    def query(self, query: MetricQuery) -> QueryResult:
        fold = Fold(query.agg, query.start, query.end, query.step, query.labels, query.group_by, query.across)
        for labels, at, value in self.samples:
            if not (query.start <= at < query.end) or not fold.accepts(labels):
                continue
            steps = fold.group(labels).steps
            index = fold.index((at - query.start).total_seconds())
            steps.setdefault(index, Accumulator()).add_samples([value], increment=False)
        return QueryResult(metric=query.metric, agg=query.agg, series=fold.series())


def per_minute_panel() -> Panel:
    return Panel.model_validate(
        {
            "id": "requests_per_minute",
            "title": "Requests per minute",
            "kind": "timeseries",
            "query": {"metric": "http.server.request.duration", "agg": "count"},
            "transform": "per_minute",
            "by": "region",
            "unit": "count",
        }
    )


def test_the_partly_elapsed_last_step_is_scaled_by_the_time_it_covers() -> None:
    end = START + timedelta(minutes=70)  # at 10:10 the 10:00 step covers 10 minutes, not 60
    samples = [({"region": "us-central1"}, START + timedelta(minutes=m, seconds=s), 1.0)
               for m in range(70) for s in range(0, 60, 2)]  # fmt: skip
    builder = PanelBuilder(SampleSource(samples), MemoryAlertSource(), start=START, end=end, step=3600)
    view = builder.build(per_minute_panel())
    [series] = view.series
    assert [value for _, value in series.points] == [30.0, 30.0]  # was [30.0, 5.0]: a sixth


def test_instances_by_region_sum_revisions_and_states() -> None:
    _, panel = load_catalog().panel("infrastructure.instances")
    end = START + timedelta(minutes=70)
    running = {("us-central1", "r1", "active"): 10.0, ("us-central1", "r1", "idle"): 2.0,
               ("us-central1", "r2", "active"): 4.0, ("europe-west1", "r9", "active"): 3.0}  # fmt: skip
    samples = [
        ({"region": region, "revision": revision, "state": state}, START + timedelta(minutes=m), value)
        for (region, revision, state), value in running.items()
        for m in range(70)
    ]
    builder = PanelBuilder(SampleSource(samples), MemoryAlertSource(), start=START, end=end, step=3600)
    view = builder.build(panel)
    by_region = {s.label: [v for _, v in s.points] for s in view.series}
    assert by_region == {"europe-west1": [3.0, 3.0], "us-central1": [16.0, 16.0]}


def test_a_flat_full_percentage_stays_on_a_0_to_100_axis() -> None:
    from functions.reports.svg import value_bounds

    low, high = value_bounds([1.0, 1.0, 1.0], "percent", floor_zero=False)
    assert high == 1.0
    assert 0.0 <= low < 1.0
    assert value_bounds([0.2, 0.5], "percent", floor_zero=False) == (0.2, 0.5)
    assert value_bounds([3.0, 3.0], "count", floor_zero=True) == (0.0, 3.0)


def test_time_axes_are_in_the_readers_zone() -> None:
    from zoneinfo import ZoneInfo

    from functions.reports.svg import line_chart
    from functions.reports.views import SeriesView

    at = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # 10:00 in New York (EDT since 8 March)
    series = [SeriesView(label="p95", points=[(at, 0.08), (at + timedelta(hours=2), 0.09)])]
    chart = line_chart(series, "seconds", "Latency", zone=ZoneInfo("America/New_York"))
    assert "10:00 EDT" in chart
    assert "12:00 EDT" in chart
    assert "14:00 UTC" in line_chart(series, "seconds", "Latency")


def test_a_gap_in_a_series_is_drawn_as_a_gap_and_the_axis_starts_at_the_earliest_point() -> None:
    """A p95 with no data from 09:11 to 09:29 (steps without samples are absent) was one polyline
    from 09:10 straight to 09:30, drawing values nobody measured; and the axis' first time was the
    first series' first point, though another series started earlier at the left edge."""
    import re

    from functions.reports.svg import line_chart
    from functions.reports.views import SeriesView

    minute = timedelta(minutes=1)
    before = [(START + i * minute, 0.08) for i in range(11)]
    after = [(START + i * minute, 0.09) for i in range(30, 41)]
    alone = [(START + 20 * minute, 0.5)]
    series = [SeriesView(label="p95", points=[*before, *alone, *after])]
    chart = line_chart(series, "seconds", "Latency")
    assert len(re.findall(r"<polyline", chart)) == 2
    assert len(re.findall(r"<circle", chart)) == 1  # the lone point between the gaps
    regular = line_chart([SeriesView(label="p95", points=[*before, *after[:0]])], "seconds", "Latency")
    assert len(re.findall(r"<polyline", regular)) == 1
    # Daily steps of a local day are 23 to 25 hours: not a gap.
    days = [(START + timedelta(hours=h), 1.0) for h in (0, 24, 47, 71, 96)]
    assert len(re.findall(r"<polyline", line_chart([SeriesView(label="d", points=days)], "count", "D"))) == 1
    late = SeriesView(label="europe-west1", points=after)
    early = SeriesView(label="us-central1", points=before)
    both = line_chart([late, early], "seconds", "Latency")
    labels = re.findall(r'font-size="11" fill="#444">(\d\d:\d\d UTC)</text>', both)
    assert labels == ["09:00 UTC", "09:40 UTC"]


def test_a_percentage_under_its_target_shows_the_target_line() -> None:
    """Availability at 95-98% against a 99.9% target: the axis stopped at 98% and the target line,
    above it, was left out, so a breach looked like any wiggle (a target under the values was
    already drawn)."""
    from functions.reports.svg import line_chart
    from functions.reports.views import SeriesView

    points = [(START + timedelta(hours=h), 0.95 + h * 0.01) for h in range(4)]
    chart = line_chart([SeriesView(label="availability", points=points)], "percent", "A", threshold=0.999)
    assert 'stroke="#B00020"' in chart
    assert ">99.900%</text>" in chart  # the axis reaches the target
    above = line_chart([SeriesView(label="a", points=points)], "percent", "A", threshold=0.9)
    assert 'stroke="#B00020"' in above
    assert ">90.0%</text>" in above
    # The mailed PNG's axis alike.
    from functions.reports.charts import percent_limits
    from functions.reports.panels import Band
    from functions.reports.views import PanelView

    view = PanelView(
        id="availability", title="A", kind="timeseries", unit="percent", status="breach",
        band=Band(better="higher", ok=0.999, breach=0.99), series=[SeriesView(label="a", points=points)],
    )  # fmt: skip
    low, high = percent_limits(view)  # type: ignore[misc]
    assert low < 0.95
    assert 0.999 <= high <= 1.0
