"""The CLI: the cost snapshot of one day from a billing-export file.

    python -m functions.cost.snapshot --billing FILE --as-of YYYY-MM-DD [--budget USD]

reads the Cloud Billing export as JSON lines (column names and nesting as in the export) and
prints the snapshot the ``snapshot_cost`` function stores for that day
(:func:`functions.cost.snapshot_build.build_snapshot`). Costs are net of credits and exact sums;
they are rounded to cents only when shown. Days are usage days in the billing account's time zone
(``--time-zone``, default America/Los_Angeles as invoices and Budgets count); only rows with usage
starting before the end of the as-of day count. The month to date is by ``invoice.month``; tax,
adjustments and rounding (``cost_type``) are reported apart from usage. A file with a bad row exits
with status 2 naming each one.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from functions.cost.billing import BadRows, BillingRow, load_jsonl
from functions.cost.cost_lines import aggregate
from functions.cost.ledger import fold, month_cost
from functions.cost.snapshot_build import DEFAULT_BUDGET, DEFAULT_TARGET, SnapshotParams, build_snapshot
from functions.cost.snapshot_models import Snapshot
from shared.clock import iana_time_zone

DEFAULT_TIME_ZONE = "America/Los_Angeles"


def snapshot_from_rows(
    rows: list[BillingRow],
    as_of: date,
    params: SnapshotParams | None = None,
    *,
    currency: str = "USD",
    time_zone: str = DEFAULT_TIME_ZONE,
) -> Snapshot:
    p = params or SnapshotParams()
    lines = aggregate(rows, ZoneInfo(time_zone))
    # Baselines look back up to 8 weeks before the oldest day shown; the forecast 4.
    since = as_of - timedelta(days=p.window_days + 7 * p.anomalies.max_weeks)
    history = fold(lines, until=as_of, since=since)
    month = month_cost(lines, as_of.strftime("%Y-%m"), until=as_of)
    return build_snapshot(
        history,
        as_of,
        currency=rows[0].currency if rows else currency,
        params=p,
        month=month,
        time_zone=time_zone,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m functions.cost.snapshot",
        description="Print the cost snapshot of one day from a Cloud Billing export (JSON lines).",
    )
    parser.add_argument("--billing", required=True, help="billing export rows, one JSON object per line")
    parser.add_argument(
        "--as-of", required=True, type=date.fromisoformat, help="YYYY-MM-DD (a day in --time-zone)"
    )
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="monthly budget (default 3000)")
    parser.add_argument("--target", type=float, default=DEFAULT_TARGET, help="monthly target (default 1800)")
    parser.add_argument(
        "--time-zone",
        default=DEFAULT_TIME_ZONE,
        help=f"the billing account's time zone, of days and months (default {DEFAULT_TIME_ZONE})",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.budget <= 0 or args.target <= 0:
        print("--budget and --target must be positive amounts", file=sys.stderr)
        return 2
    try:
        iana_time_zone(args.time_zone)
    except ValueError:
        print(f"--time-zone {args.time_zone!r} is not an IANA time zone", file=sys.stderr)
        return 2
    try:
        rows = load_jsonl(args.billing)
    except OSError as exc:
        print(f"cannot read {args.billing}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except BadRows as exc:
        print(str(exc), file=sys.stderr)
        return 2
    snapshot = snapshot_from_rows(
        rows, args.as_of, SnapshotParams(budget=args.budget, target=args.target), time_zone=args.time_zone
    )
    sys.stdout.write(json.dumps(snapshot.model_dump(mode="json"), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
