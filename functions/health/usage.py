"""Where usage comes from: a port and three implementations.

``StoredUsage`` (the daily run's) reads routing's per-customer counters from the customer usage
store (``shared.metrics.customer_usage``): one range query over the two windows for every
customer together, ``days x shards`` documents whatever the number of customers, with the points
ingestion refused per customer (which make the customer ``usage_unknown``). Days before the
store's first day come from the metric store's rollups, where these counters were kept before.
``MetricUsage`` reads the same counters through the query API's own code
(``shared.metrics.query``): three queries for every customer together (daily requests over two
windows, requests by feature and outcome, feedback answers). Both read the persona mix of the
weeks compared in one metric query and the week's feedback answers in one Firestore range read.
``MemoryUsage`` holds the same data in memory (tests, the bench, replays).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Protocol

from functions.health.personas import Answer
from functions.health.signals import Usage
from shared.customer_keys import CUSTOMER_FEEDBACK_METRIC, CUSTOMER_REQUESTS_METRIC
from shared.metrics.catalogue import CustomerUsage

if TYPE_CHECKING:
    from shared.metrics.customer_usage import UsageDays

PERSONA_METRIC = "ion.routing.persona.selected"
ROUTING_FEEDBACK_COLLECTION = "routing_feedback"
DAY = 86400


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def no_usage(source: object, customer: str) -> Usage:
    """The usage of a customer ``source`` found nothing for (a source may know it is unsure)."""
    missing = getattr(source, "missing", None)
    return missing(customer) if missing is not None else Usage()


class UsageSource(Protocol):
    def customers_usage(self, as_of: date, window_days: int) -> dict[str, Usage]:
        """Every customer's usage before ``as_of``: daily requests over ``2 * window_days``
        days, and features, outcomes and feedback over the last ``window_days``."""
        ...

    def persona_counts(self, start: date, weeks: int) -> list[dict[str, float]]:
        """Routed requests by primary persona, for ``weeks`` weeks from ``start``."""
        ...

    def feedback_answers(self, start: date, end: date) -> list[Answer]:
        """Feedback answers (persona, helpful, rating) given in ``[start, end)``."""
        ...


class MetricUsage:
    """Routing's metrics in the metric store, and its feedback records in Firestore."""

    def __init__(self) -> None:
        self.queries = 0

    def _query(
        self, metric: str, start: datetime, end: datetime, group_by: list[str], step: int | None = None
    ):  # type: ignore[no-untyped-def]
        from shared.metrics.query import run_query
        from shared.metrics.query_model import MetricQuery

        self.queries += 1
        return run_query(
            MetricQuery(metric=metric, agg="sum", start=start, end=end, step=step, group_by=group_by)
        )

    def customers_usage(self, as_of: date, window_days: int) -> dict[str, Usage]:
        end = midnight(as_of)
        window = timedelta(days=window_days)
        return self.usage_between(end - 2 * window, end - window, end)

    def usage_between(self, start: datetime, window_start: datetime, end: datetime) -> dict[str, Usage]:
        """Daily requests over ``[start, end)``; features, outcomes and feedback over
        ``[window_start, end)`` (nothing of them when the window starts at or after ``end``)."""
        found: dict[str, Usage] = defaultdict(Usage)
        if end <= start:
            return {}
        daily = self._query(CUSTOMER_REQUESTS_METRIC, start, end, ["customer"], DAY)
        for series in daily.series:
            customer = series.labels.get("customer")
            if customer:
                found[customer].daily = {at.date(): value for at, value in series.points if value}
        if end <= window_start:
            return dict(found)
        split = self._query(CUSTOMER_REQUESTS_METRIC, window_start, end, ["customer", "feature", "outcome"])
        for series in split.series:
            customer = series.labels.get("customer")
            value = sum(v for _, v in series.points)
            if not customer or not value:
                continue
            usage = found[customer]
            feature, outcome = series.labels.get("feature", "other"), series.labels.get("outcome", "ok")
            usage.features[feature] = usage.features.get(feature, 0) + value
            usage.outcomes[outcome] = usage.outcomes.get(outcome, 0) + value
        answers = self._query(CUSTOMER_FEEDBACK_METRIC, window_start, end, ["customer", "answer"])
        for series in answers.series:
            customer, answer = series.labels.get("customer"), series.labels.get("answer")
            value = sum(v for _, v in series.points)
            if customer and answer and value:
                found[customer].feedback[answer] = found[customer].feedback.get(answer, 0) + value
        return dict(found)

    def persona_counts(self, start: date, weeks: int) -> list[dict[str, float]]:
        begin = midnight(start)
        result = self._query(
            PERSONA_METRIC, begin, begin + timedelta(weeks=weeks), ["persona", "endpoint"], 7 * DAY
        )
        counts: list[dict[str, float]] = [{} for _ in range(weeks)]
        for series in result.series:
            # Routing labels recommend's picks with endpoint=recommend; the mix is of routed requests.
            if series.labels.get("endpoint") or "persona" not in series.labels:
                continue
            persona = series.labels["persona"]
            for at, value in series.points:
                index = (at - begin).days // 7
                if 0 <= index < weeks:
                    counts[index][persona] = counts[index].get(persona, 0) + value
        return counts

    def feedback_answers(self, start: date, end: date) -> list[Answer]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        from shared.firestore import get_route_firestore

        query = (
            get_route_firestore()  # routing's own database
            .collection(ROUTING_FEEDBACK_COLLECTION)
            .where(filter=FieldFilter("updated_at", ">=", midnight(start)))
            .where(filter=FieldFilter("updated_at", "<", midnight(end)))
            .select(["persona", "helpful", "rating"])
        )
        answers = []
        for doc in query.stream():
            data = doc.to_dict() or {}
            if isinstance(data.get("persona"), str) and isinstance(data.get("helpful"), bool):
                answers.append(
                    Answer(persona=data["persona"], helpful=data["helpful"], rating=data.get("rating"))
                )
        return answers


class StoredUsage(MetricUsage):
    """The customer usage store for usage (one range query), the metric store for the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0  # customer usage documents read
        self._days: UsageDays | None = None

    def missing(self, customer: str) -> Usage:
        """A customer with nothing stored: idle, unless its shard overflowed (its points may be
        among those refused without a mark)."""
        points = self._days.refused_of(customer) if self._days is not None else 0.0
        return Usage(refused=points)

    def customers_usage(self, as_of: date, window_days: int) -> dict[str, Usage]:
        from shared.metrics.customer_usage import read_days

        end = as_of
        start = as_of - timedelta(days=2 * window_days)
        window_start = as_of - timedelta(days=window_days)
        fields = {
            _spec(CUSTOMER_REQUESTS_METRIC).field: CUSTOMER_REQUESTS_METRIC,
            _spec(CUSTOMER_FEEDBACK_METRIC).field: CUSTOMER_FEEDBACK_METRIC,
        }
        self.queries += 1
        days = read_days(start, end, fields=list(fields))
        self.reads += days.reads
        found: dict[str, Usage] = defaultdict(Usage)
        requests, feedback = _spec(CUSTOMER_REQUESTS_METRIC), _spec(CUSTOMER_FEEDBACK_METRIC)
        for customer, by_day in days.counters.items():
            usage = found[customer]
            for day, counts in by_day.items():
                if days.since is not None and day < days.since:
                    continue  # read from the rollups below
                per_key = counts.get(requests.field) or {}
                total = sum(per_key.values())
                if total:
                    usage.daily[day] = usage.daily.get(day, 0) + total
                if day < window_start:
                    continue
                for key, value in per_key.items():
                    labels = dict(zip(requests.counted_by, key.split(":"), strict=False))
                    feature, outcome = labels.get("feature", "other"), labels.get("outcome", "ok")
                    usage.features[feature] = usage.features.get(feature, 0) + value
                    usage.outcomes[outcome] = usage.outcomes.get(outcome, 0) + value
                for answer, value in (counts.get(feedback.field) or {}).items():
                    usage.feedback[answer] = usage.feedback.get(answer, 0) + value
        for customer in {*days.refused, *found}:
            points = days.refused_of(customer)
            if points:
                found[customer].refused += points
        self._days = days
        since = days.since
        if since is None or since > start:
            # Days before the store existed: the rollups, where routing's counters were kept.
            until = midnight(min(since or end, end))
            earlier = self.usage_between(midnight(start), midnight(window_start), until)
            for customer, usage in earlier.items():
                found[customer].merge(usage)
        return dict(found)


def _spec(metric: str) -> CustomerUsage:
    from shared.metrics.customer_usage import spec_of

    spec = spec_of(metric)
    assert spec is not None, f"{metric} is not declared customer_usage in the catalogue"
    return spec


@dataclass
class MemoryUsage:
    """The same data held in memory: ``usage`` per customer, ``weeks`` of persona counts keyed by
    each week's Monday, ``answers`` as (day, Answer)."""

    usage: dict[str, Usage] = field(default_factory=dict)
    weeks: dict[date, dict[str, float]] = field(default_factory=dict)
    answers: list[tuple[date, Answer]] = field(default_factory=list)
    queries: int = 0

    def customers_usage(self, as_of: date, window_days: int) -> dict[str, Usage]:
        self.queries += 3
        return self.usage

    def persona_counts(self, start: date, weeks: int) -> list[dict[str, float]]:
        self.queries += 1
        return [dict(self.weeks.get(start + timedelta(weeks=i), {})) for i in range(weeks)]

    def feedback_answers(self, start: date, end: date) -> list[Answer]:
        return [answer for day, answer in self.answers if start <= day < end]
