"""Where usage comes from: a port and two implementations.

``MetricUsage`` reads routing's per-customer counters through the query API's own code
(``shared.metrics.query``): a whole run costs three queries for every customer together (daily
requests over two windows, requests by feature and outcome, feedback answers), plus one for the
persona mix of the weeks compared and one Firestore range read of the week's feedback answers.
``MemoryUsage`` holds the same data in memory (tests, the bench, replays).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from functions.health.personas import Answer
from functions.health.signals import Usage
from shared.customer_keys import CUSTOMER_FEEDBACK_METRIC, CUSTOMER_REQUESTS_METRIC

PERSONA_METRIC = "ion.routing.persona.selected"
ROUTING_FEEDBACK_COLLECTION = "routing_feedback"
DAY = 86400


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


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
        from shared.metrics.query import MetricQuery, run_query

        self.queries += 1
        return run_query(
            MetricQuery(metric=metric, agg="sum", start=start, end=end, step=step, group_by=group_by)
        )

    def customers_usage(self, as_of: date, window_days: int) -> dict[str, Usage]:
        end = midnight(as_of)
        window_start = end - timedelta(days=window_days)
        found: dict[str, Usage] = defaultdict(Usage)
        daily = self._query(
            CUSTOMER_REQUESTS_METRIC, end - timedelta(days=2 * window_days), end, ["customer"], DAY
        )
        for series in daily.series:
            customer = series.labels.get("customer")
            if customer:
                found[customer].daily = {at.date(): value for at, value in series.points if value}
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

        from shared.firestore import get_firestore

        query = (
            get_firestore()
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
