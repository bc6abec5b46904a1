"""Where a customer's data lives: every Firestore collection that holds a customer's documents or
entries, and how to find them, in one list. Erasure (health's ``DELETE /v1/customers/{id}``) works
from it, and a test scans the emulator after a customer's whole lifecycle for any collection that
holds the customer and is not listed here, so a new collection cannot be forgotten silently.

Capabilities never import each other, so the names are spelled here (a test checks them against
each owner's constant). How a customer is found in each:

- ``document_id``: the document id is the customer id.
- ``field``: documents whose ``field`` (a dotted path into maps) equals the customer id.
- ``array``: documents whose array ``field`` contains the customer id; the entry is removed, the
  document (a run's summary, about every customer) is kept.
- ``usage_map``: the customer usage store's day documents of the customer's shard; the customer's
  entries in ``field``s (maps keyed by customer) are removed.

Not here, on purpose (README of health, "Erasure"): Redis key cache entries (deleted with each
key's revocation), logs (the operations bucket keeps 30 days, the audit bucket 90). Dead letters
(a personal notice whose delivery was given up) are redacted, not deleted, by their own path:
on-call keeps that a delivery failed, the message goes (``functions/health/dead_letter_erasure.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Finder = Literal["document_id", "field", "array", "usage_map"]
# The route's own collections live in a database of their own (``ION_ROUTE_DATABASE``).
Database = Literal["default", "route"]


@dataclass(frozen=True)
class CustomerCollection:
    collection: str
    finder: Finder
    fields: tuple[str, ...] = ()
    owner: str = ""  # the capability that writes it
    what: str = ""
    database: Database = "default"


CUSTOMER_COLLECTIONS: tuple[CustomerCollection, ...] = (
    CustomerCollection(
        "customer_keys", "field", ("customer_id",), "health", "API keys (hashes), revoked first"
    ),
    CustomerCollection(
        "customer_events", "field", ("customer_id",), "health", "imported tickets, payments, NPS"
    ),
    CustomerCollection("health_scores", "field", ("id",), "health", "daily scores"),
    CustomerCollection("health_runs", "array", ("usage_unknown_customers",), "health", "run summaries"),
    CustomerCollection(
        "routing_feedback", "field", ("customer_id",), "routing", "feedback with user ids", database="route"
    ),
    CustomerCollection("customer_usage", "usage_map", ("c", "refused"), "ingestion", "daily usage counters"),
    CustomerCollection(
        "fanout_transitions", "field", ("transition.labels.customer",), "fanout", "notices received"
    ),
    CustomerCollection("fanout_alerts", "field", ("labels.customer",), "fanout", "notice state"),
    CustomerCollection("fanout_groups", "field", ("labels.customer",), "fanout", "a customer's notice group"),
    CustomerCollection(
        "fanout_notifications", "field", ("notification.group_labels.customer",), "fanout", "notices sent"
    ),
    CustomerCollection(
        "fanout_slack_messages", "field", ("notification.group_labels.customer",), "fanout", "Slack posts"
    ),
    # Last: while it exists, a retried erasure knows there is something left to do.
    CustomerCollection("customers", "document_id", (), "health", "the customer: name, plan, contact, health"),
)


def customer_collections() -> tuple[CustomerCollection, ...]:
    return CUSTOMER_COLLECTIONS
