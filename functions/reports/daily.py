"""The daily operations summary's own part: the month's cost so far, read from the latest cost
snapshot (``cost_snapshots/<date>``, as the weekly cost section reads it), against the budget and
savings target prorated over the days it covers. The billing export lags by up to a day, so the
latest snapshot of the last three local days is used and its date said; none is a note, never a
zero."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from functions.reports.business import Part, graded_against_budget
from functions.reports.documents import DocumentSource
from functions.reports.panels import Status
from functions.reports.period import Period, zone
from functions.reports.views import Figure, format_value

SNAPSHOT_LOOKBACK_DAYS = 3


def _figure(
    ref: str, title: str, target: str, status: Status, value: float, *, currency: str | None
) -> Figure:
    return Figure(
        ref=ref,
        title=title,
        unit="usd",
        currency=currency,
        target=target,
        status=status,
        value=value,
        text=format_value(value, "usd", currency),
        previous=None,
        previous_text="",
        change="",
        direction="none",
    )


def cost_so_far_part(source: DocumentSource, period: Period) -> Part:
    last_day = (period.end - timedelta(microseconds=1)).astimezone(zone(period.time_zone)).date()
    days = [last_day - timedelta(days=i) for i in reversed(range(SNAPSHOT_LOOKBACK_DAYS))]
    snapshot = source.cost_snapshot(days)
    if snapshot is None or snapshot.month_to_date is None:
        return Part(
            notes=[
                f"No cost snapshot from {days[0]} to {days[-1]}: the cost so far is unknown (is the "
                "cost-snapshot job running and the billing export configured?)."
            ]
        )
    as_of: date = snapshot.as_of
    currency = snapshot.currency

    def money(value: float) -> str:
        return format_value(value, "usd", currency)

    month_days = calendar.monthrange(as_of.year, as_of.month)[1]
    covered = snapshot.month_to_date_days or as_of.day
    target = snapshot.target * covered / month_days
    budget = snapshot.budget * covered / month_days
    figures = [
        _figure(
            "cost.month_to_date",
            f"Cost so far in {as_of:%B} ({covered} day{'s' if covered != 1 else ''}, "
            f"to {as_of:%b} {as_of.day})",
            f"<= {money(target)} (the {money(snapshot.target)} monthly target over "
            f"{covered} of {month_days} days); budget so far {money(budget)}",
            graded_against_budget(snapshot.month_to_date, target, budget),
            snapshot.month_to_date,
            currency=currency,
        ),
        _figure(
            "cost.forecast_month_end",
            "Month-end forecast",
            f"<= {money(snapshot.target)} target; budget {money(snapshot.budget)}",
            graded_against_budget(snapshot.forecast_month_end, snapshot.target, snapshot.budget),
            snapshot.forecast_month_end,
            currency=currency,
        ),
    ]
    notes = []
    if as_of != last_day:
        notes.append(
            f"The latest cost snapshot is of {as_of.isoformat()}, not {last_day.isoformat()}: the billing "
            "export lags by up to a day, so today's cost is not in it yet."
        )
    if snapshot.fallback:
        notes.append(
            f"The cost snapshot was built from {snapshot.source or 'a local fallback'}, "
            "not the billing export: these are not billed figures."
        )
    return Part(figures=figures, notes=notes)
