"""Synthetic customers for the health bench: customers of every age, their usage as routing's
metrics would give it, and imported ticket and payment events."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

FEATURES = ["route_key", "route_message", "recommend", "bulk", "feedback"]


def synthetic_customers(n: int, as_of: date, seed: int = 1):  # type: ignore[no-untyped-def]
    """Customers, their usage over the 56 days before ``as_of`` and their events: a spread of
    healthy, fading and new customers."""
    from functions.health.models import Customer, PaymentEvent, TicketEvent
    from functions.health.signals import Usage

    rng = random.Random(seed)
    midnight = datetime.combine(as_of, time(0), tzinfo=UTC)
    customers, usage, events = [], {}, {}
    for i in range(n):
        cid = f"c{i:05d}"
        age = rng.choice([3, 10, 40, 200, 400, 700])
        customers.append(
            Customer(
                id=cid,
                name=f"Customer {i}",
                plan="pro",
                created_at=midnight - timedelta(days=age),
            )
        )
        vigour = rng.random()
        per_day = 10 ** (1 + 2.5 * vigour)
        active = max(0, min(28, int(rng.gauss(28 * vigour, 4))))
        daily = {as_of - timedelta(days=d): per_day for d in rng.sample(range(1, 29), active)}
        daily.update(
            {
                as_of - timedelta(days=d): per_day * rng.uniform(0.7, 1.6)
                for d in range(29, 57)
                if rng.random() < 0.8
            }
        )
        used = rng.sample(FEATURES, rng.randint(1, 5))
        total = per_day * active
        bad = rng.betavariate(1, 30)
        usage[cid] = Usage(
            daily=daily,
            features={f: total / len(used) for f in used},
            outcomes={
                "ok": total * (1 - bad),
                "client_error": total * bad * 0.7,
                "rate_limited": total * bad * 0.3,
            },
            feedback={
                "helpful": rng.randint(0, 40),
                "not_helpful": rng.randint(0, 10),
                "rating_4": rng.randint(0, 5),
            },
        )
        mine = []
        if rng.random() < 0.3:
            mine.append(
                TicketEvent(
                    type="ticket",
                    event_id=f"{cid}-t",
                    at=midnight - timedelta(days=10),
                    ticket_id="T1",
                    status="open",
                    priority=rng.choice(["low", "normal", "high"]),
                )
            )
        if rng.random() < 0.5:
            mine.append(
                PaymentEvent(
                    type="payment",
                    event_id=f"{cid}-p",
                    at=midnight - timedelta(days=29),
                    invoice_id="I1",
                    status=rng.choice(["paid", "paid", "paid", "overdue", "failed"]),
                )
            )
        if mine:
            events[cid] = mine
    return customers, usage, events
