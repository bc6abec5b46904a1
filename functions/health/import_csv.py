"""Bulk start from CSV: customers and their ticket, payment and NPS events, written with the
same code (and the same idempotency by event id) as the HTTP API.

    python -m functions.health.import_csv --customers customers.csv --events events.csv

``customers.csv`` header: ``id,name[,plan,segment,contact_email,contact_name,contact_slack,
created_at,first_value_at]`` (dates ISO 8601 with a time zone: an imported customer keeps its
real age, so it is not taken for a new one). ``events.csv`` header: ``customer_id,type,event_id,at``
plus the columns of each type (ticket: ``ticket_id,status,priority``; payment:
``invoice_id,status,amount,currency,days_late``; nps: ``score,respondent``); empty cells are left
out. Files are UTF-8 (Excel: "CSV UTF-8").

Everything is checked before anything is written: the encoding, every row, an id repeated in a
file with other content, a customer stored with other details, an event id stored with other
content, events of customers neither stored nor in the customers file. A file with any of these
writes nothing and exits with status 2, naming the file and line of each problem on stderr. The
summary is printed as JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from functions.health.customer_events import EVENT_ADAPTER
from functions.health.models import CustomerIn, Event
from shared.customer_keys import CUSTOMER_ID_PATTERN

EVENT_FIELDS = {
    "ticket": ("ticket_id", "status", "priority"),
    "payment": ("invoice_id", "status", "amount", "currency", "days_late"),
    "nps": ("score", "respondent"),
}
CUSTOMER_FIELDS = ("id", "name", "plan", "segment", "created_at", "first_value_at")
BATCH = 500


class Unusable(Exception):
    pass


def _decode(path: Path, raw: bytes) -> str:
    """The file's text; a byte that is not UTF-8 names its line (an Excel export in Windows-1252)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise Unusable(
            f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {column}); "
            "save the file as UTF-8 (Excel: CSV UTF-8)"
        ) from None


def _rows(path: Path, required: set[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise Unusable(f"{path}: {exc.strerror or exc}") from None
    reader = csv.DictReader(io.StringIO(_decode(path, raw), newline=""))
    try:
        missing = required - set(reader.fieldnames or [])
        if missing:
            raise Unusable(f"{path}:1: header lacks {', '.join(sorted(missing))}")
        rows = []
        for row in reader:
            # The line a row starts on (a quoted cell may span lines).
            rows.append((reader.line_num, row))
        return rows
    except csv.Error as exc:
        raise Unusable(f"{path}:{reader.line_num}: {exc}") from None


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))


def parse_customers(path: Path) -> list[CustomerIn]:
    customers: dict[str, tuple[int, CustomerIn]] = {}
    problems = []
    for number, row in _rows(path, {"id", "name"}):
        contact = {
            key: row[f"contact_{key}"] for key in ("email", "name", "slack") if row.get(f"contact_{key}")
        }
        body: dict[str, Any] = {k: row[k] for k in CUSTOMER_FIELDS if row.get(k)}
        if contact:
            body["contact"] = contact
        try:
            customer = CustomerIn.model_validate(body)
        except ValidationError as exc:
            problems.append(f"{path}:{number}: {_errors(exc)}")
            continue
        earlier = customers.get(customer.id)
        if earlier is None:
            customers[customer.id] = (number, customer)
        elif earlier[1] != customer:
            problems.append(
                f"{path}:{number}: customer {customer.id} again with other details than on line {earlier[0]}"
            )
    if problems:
        raise Unusable("\n".join(problems))
    return [customer for _, customer in customers.values()]


def parse_events(path: Path) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = defaultdict(list)
    seen: dict[tuple[str, str], tuple[int, Event]] = {}
    problems = []
    for number, row in _rows(path, {"customer_id", "type", "event_id", "at"}):
        customer_id = row.get("customer_id") or ""
        if not re.fullmatch(CUSTOMER_ID_PATTERN, customer_id):
            # Checked here: an empty or slashed id is no document id, and looking it up raised.
            problems.append(
                f"{path}:{number}: customer_id {customer_id!r} does not match {CUSTOMER_ID_PATTERN}"
            )
            continue
        kind = row.get("type", "")
        body: dict[str, Any] = {"type": kind, "event_id": row["event_id"], "at": row["at"]}
        body.update({k: row[k] for k in EVENT_FIELDS.get(kind, ()) if row.get(k)})
        try:
            event = EVENT_ADAPTER.validate_python(body)
        except ValidationError as exc:
            problems.append(f"{path}:{number}: {_errors(exc)}")
            continue
        key = (customer_id, event.event_id)
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = (number, event)
            found[customer_id].append(event)
        elif earlier[1] != event:
            problems.append(
                f"{path}:{number}: event {event.event_id} of {customer_id} again with other "
                f"content than on line {earlier[0]} (use a new event id for a new fact)"
            )
    if problems:
        raise Unusable("\n".join(problems))
    return dict(found)


def check_against_store(
    customers: list[CustomerIn],
    events: dict[str, list[Event]],
    customers_file: Path | None,
    events_file: Path | None,
) -> list[str]:
    """What the store says against the files: customers stored with other details, events of
    unknown customers, event ids stored with other content. Read only."""
    from functions.health import customer_events, registry

    problems = []
    stored = registry.get_customers([c.id for c in customers] + list(events))
    for customer in customers:
        if customer.id in stored and not registry.same_customer(stored[customer.id], customer):
            problems.append(
                f"{customers_file}: customer {customer.id} is stored with other details "
                "(change it with PATCH /v1/customers/{id}, or send the stored details)"
            )
    known = set(stored) | {c.id for c in customers}
    for customer_id in sorted(set(events) - known):
        problems.append(f"{events_file}: events of unknown customer {customer_id} (create it first)")
    for customer_id, items in events.items():
        for event_id in customer_events.stored_conflicts(customer_id, items):
            problems.append(
                f"{events_file}: event {event_id} of {customer_id} is stored with other content "
                "(use a new event id for a new fact)"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m functions.health.import_csv", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--customers", type=Path, help="customers CSV")
    parser.add_argument("--events", type=Path, help="events CSV")
    args = parser.parse_args(argv)
    if not args.customers and not args.events:
        parser.error("give --customers, --events or both")
    problems = []
    customers: list[CustomerIn] = []
    events: dict[str, list[Event]] = {}
    for load in (
        lambda: customers.extend(parse_customers(args.customers)) if args.customers else None,
        lambda: events.update(parse_events(args.events)) if args.events else None,
    ):
        try:
            load()
        except Unusable as exc:
            problems.append(str(exc))
    if not problems:
        problems = check_against_store(customers, events, args.customers, args.events)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print("nothing was written", file=sys.stderr)
        return 2

    from functions.health import customer_events, registry

    summary: dict[str, Any] = {"customers": {"created": 0, "unchanged": 0, "conflict": []}}
    for customer in customers:
        try:
            _, created = registry.create_customer(customer)
        except registry.Conflict:  # changed since the check: reported, never overwritten
            summary["customers"]["conflict"].append(customer.id)
            continue
        summary["customers"]["created" if created else "unchanged"] += 1
    counts = {"created": 0, "unchanged": 0, "conflict": 0}
    conflicts: list[str] = []
    for customer_id, items in events.items():
        for start in range(0, len(items), BATCH):
            for event_id, outcome in customer_events.import_events(customer_id, items[start : start + BATCH]):
                counts[outcome] += 1
                if outcome == "conflict":
                    conflicts.append(f"{customer_id}/{event_id}")
    summary["events"] = {**counts, "conflicts": conflicts}
    print(json.dumps(summary, indent=2))
    return 1 if conflicts or summary["customers"]["conflict"] else 0


if __name__ == "__main__":
    sys.exit(main())
