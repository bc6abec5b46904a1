"""Bulk start from CSV: customers and their ticket, payment and NPS events, written with the
same code (and the same idempotency by event id) as the HTTP API.

    python -m functions.health.import_csv --customers customers.csv --events events.csv

``customers.csv`` header: ``id,name[,plan,segment,contact_email,contact_name,contact_slack]``.
``events.csv`` header: ``customer_id,type,event_id,at`` plus the columns of each type
(ticket: ``ticket_id,status,priority``; payment: ``invoice_id,status,amount,currency,days_late``;
nps: ``score,respondent``); empty cells are left out. Every row is validated before anything is
written: an unusable file exits with status 2 and lists the bad rows on stderr. The summary is
printed as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from functions.health.models import CustomerIn, Event
from functions.health.registry import EVENT_ADAPTER

EVENT_FIELDS = {
    "ticket": ("ticket_id", "status", "priority"),
    "payment": ("invoice_id", "status", "amount", "currency", "days_late"),
    "nps": ("score", "respondent"),
}
BATCH = 500


class Unusable(Exception):
    pass


def _rows(path: Path, required: set[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = required - set(reader.fieldnames or [])
            if missing:
                raise Unusable(f"{path}: header lacks {', '.join(sorted(missing))}")
            return [(number, row) for number, row in enumerate(reader, start=2)]
    except OSError as exc:
        raise Unusable(f"{path}: {exc.strerror or exc}") from None


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))


def parse_customers(path: Path) -> list[CustomerIn]:
    customers, problems = [], []
    for number, row in _rows(path, {"id", "name"}):
        contact = {
            key: row[f"contact_{key}"] for key in ("email", "name", "slack") if row.get(f"contact_{key}")
        }
        body: dict[str, Any] = {k: row[k] for k in ("id", "name", "plan", "segment") if row.get(k)}
        if contact:
            body["contact"] = contact
        try:
            customers.append(CustomerIn.model_validate(body))
        except ValidationError as exc:
            problems.append(f"{path}:{number}: {_errors(exc)}")
    if problems:
        raise Unusable("\n".join(problems))
    return customers


def parse_events(path: Path) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = defaultdict(list)
    problems = []
    for number, row in _rows(path, {"customer_id", "type", "event_id", "at"}):
        kind = row.get("type", "")
        body: dict[str, Any] = {"type": kind, "event_id": row["event_id"], "at": row["at"]}
        body.update({k: row[k] for k in EVENT_FIELDS.get(kind, ()) if row.get(k)})
        try:
            found[row["customer_id"]].append(EVENT_ADAPTER.validate_python(body))
        except ValidationError as exc:
            problems.append(f"{path}:{number}: {_errors(exc)}")
    if problems:
        raise Unusable("\n".join(problems))
    return dict(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m functions.health.import_csv", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--customers", type=Path, help="customers CSV")
    parser.add_argument("--events", type=Path, help="events CSV")
    args = parser.parse_args(argv)
    if not args.customers and not args.events:
        parser.error("give --customers, --events or both")
    try:
        customers = parse_customers(args.customers) if args.customers else []
        events = parse_events(args.events) if args.events else {}
    except Unusable as exc:
        print(str(exc), file=sys.stderr)
        return 2

    from functions.health import registry

    summary: dict[str, Any] = {"customers": {"created": 0, "unchanged": 0, "conflict": []}}
    for customer in customers:
        try:
            _, created = registry.create_customer(customer)
        except registry.Conflict:
            summary["customers"]["conflict"].append(customer.id)
            continue
        summary["customers"]["created" if created else "unchanged"] += 1
    known = {c.id for c in registry.all_customers()} if events else set()
    unknown = sorted(set(events) - known)
    if unknown:
        print(f"events name unknown customers (create them first): {', '.join(unknown)}", file=sys.stderr)
        return 2
    counts = {"created": 0, "unchanged": 0, "conflict": 0}
    conflicts: list[str] = []
    for customer_id, items in events.items():
        for start in range(0, len(items), BATCH):
            for event_id, outcome in registry.import_events(customer_id, items[start : start + BATCH]):
                counts[outcome] += 1
                if outcome == "conflict":
                    conflicts.append(f"{customer_id}/{event_id}")
    summary["events"] = {**counts, "conflicts": conflicts}
    print(json.dumps(summary, indent=2))
    return 1 if conflicts or summary["customers"]["conflict"] else 0


if __name__ == "__main__":
    sys.exit(main())
