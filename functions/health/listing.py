"""Customer listings from the registry (``customers/{id}``): in id order or by score, filtered by
status, category, plan and segment in Firestore, by success manager (and, in id order, score
range) here; every page reads a bounded number of customers. Knows nothing of HTTP.

- id order: ordered by document id (= customer id), equality filters only, so the automatic
  single-field indexes serve it (merged). A filter applied here reads at most ``MAX_SCANNED``
  customers a request: a page may then hold fewer than ``limit`` with a ``next`` to go on from.
- score order: ordered by ``health.score`` (then id, ascending both ways), the score range a
  Firestore range filter, the customer ``after`` the cursor; the customers never scored follow,
  in id order (``health`` null), unless a score range leaves them out. With an equality filter,
  or ``-score``, Firestore needs a composite index (README, "Listing at scale"); where one is
  missing (FailedPrecondition) the listing falls back to reading every customer the equality
  filters let through and sorting them here, as before, and logs the index to create.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from functions.health.models import Customer
from shared.customer_keys import CUSTOMERS_COLLECTION
from shared.logging import get_logger

MAX_SCANNED = 2_000  # customers one request reads at most when a filter is applied here
SCAN_PAGE = 300
STATUSES = ("active", "inactive", "deactivated", "all")
log = get_logger("health.listing")


@dataclass
class Page:
    customers: list[Customer]
    next: str | None  # the `after` of the next page; None: nothing more


class UnknownPosition(ValueError):
    """An ``after`` of a score listing that is no customer."""


def stored_status(status: str) -> str | None:
    """The stored ``status`` a filter value asks for (None: any)."""
    return None if status == "all" else "inactive" if status == "deactivated" else status


def _customers() -> Any:
    from shared.firestore import get_firestore

    return get_firestore().collection(CUSTOMERS_COLLECTION)


def _filtered(**equal: str | None) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = _customers()
    for field, value in equal.items():
        if value is not None:
            query = query.where(filter=FieldFilter(field, "==", value))
    return query


def list_customers(
    *, category: str | None = None, status: str = "all", limit: int = 100, after: str | None = None
) -> list[Customer]:
    """Customers in id order, of one health category and status maybe, ``limit`` after id ``after``."""
    query = _filtered(**{"health.category": category, "status": stored_status(status)}).order_by("__name__")
    if after:
        query = query.start_after({"__name__": _customers().document(after)})
    return [Customer.model_validate(doc.to_dict()) for doc in query.limit(limit).stream()]


def find_customers(
    *,
    category: str | None = None,
    plan: str | None = None,
    segment: str | None = None,
    status: str = "all",
    csm: str | None = None,
    min_score: float | None = None,
    max_score: float | None = None,
    sort: str = "id",
    limit: int = 100,
    after: str | None = None,
) -> Page:
    """A page of customers filtered and sorted as the health list asks (see the module)."""
    from google.api_core.exceptions import FailedPrecondition

    equal = {"health.category": category, "plan": plan, "segment": segment, "status": stored_status(status)}
    wanted = csm.lower() if csm else None

    def by_csm(customer: Customer) -> bool:
        contact = customer.contact
        return wanted is None or (
            contact is not None and wanted in {(contact.email or "").lower(), (contact.name or "").lower()}
        )

    def in_range(customer: Customer) -> bool:
        if min_score is None and max_score is None:
            return True
        score = _score(customer)
        return (
            score is not None
            and (min_score is None or score >= min_score)
            and (max_score is None or score <= max_score)
        )

    if sort == "id":
        filtered_here = wanted is not None or min_score is not None or max_score is not None
        keep = _both(by_csm, in_range) if filtered_here else None
        return _scan([(_filtered(**equal).order_by("__name__"), _name(after))], keep, limit)
    try:
        return _by_score(
            equal=equal,
            keep=by_csm if wanted else None,
            min_score=min_score,
            max_score=max_score,
            sort=sort,
            limit=limit,
            after=after,
        )
    except FailedPrecondition as missing:  # a composite index not created yet (README)
        log.warning(
            "score listing without its composite index: reading every customer", extra={"error": str(missing)}
        )
        return _sorted_here(_filtered(**equal), _both(by_csm, in_range), sort, limit, after)


def _both(
    first: Callable[[Customer], bool], second: Callable[[Customer], bool]
) -> Callable[[Customer], bool]:
    return lambda customer: first(customer) and second(customer)


def _name(after: str | None) -> Any:
    """A position in id order from an id alone (a customer since erased still is one)."""
    return {"__name__": _customers().document(after)} if after else None


def _score(customer: Customer) -> float | None:
    return customer.health.score if customer.health else None


def _by_score(
    *,
    equal: dict[str, str | None],
    keep: Callable[[Customer], bool] | None,
    min_score: float | None,
    max_score: float | None,
    sort: str,
    limit: int,
    after: str | None,
) -> Page:
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_query import FieldFilter

    scored = _filtered(**equal)
    # A score range, or every score (0-100): only customers with a score, in score order.
    scored = scored.where(filter=FieldFilter("health.score", ">=", 0 if min_score is None else min_score))
    if max_score is not None:
        scored = scored.where(filter=FieldFilter("health.score", "<=", max_score))
    direction = firestore.Query.ASCENDING if sort == "score" else firestore.Query.DESCENDING
    scored = scored.order_by("health.score", direction=direction).order_by("__name__")
    unscored = _filtered(**equal).where(filter=FieldFilter("health", "==", None)).order_by("__name__")
    phases: list[tuple[Any, Any]] = [(scored, None)]
    if min_score is None and max_score is None:
        phases.append((unscored, None))
    if after:
        position = _customers().document(after).get()
        if not position.exists:
            raise UnknownPosition(f"after {after!r} is no customer (use the `next` of the previous page)")
        if _score(Customer.model_validate(position.to_dict())) is None:
            phases = [(unscored, position)] if len(phases) == 2 else []
        else:
            phases[0] = (scored, position)
    return _scan(phases, keep, limit)


def _scan(phases: list[tuple[Any, Any]], keep: Callable[[Customer], bool] | None, limit: int) -> Page:
    """Read the phases' queries in turn from their positions, a page at a time, keeping what
    ``keep`` lets through, until ``limit`` are found (``next``: the last), the queries end
    (None) or ``MAX_SCANNED`` were read (``next``: the last read, where the next request goes on)."""
    found: list[Customer] = []
    scanned = 0
    last: str | None = None
    for query, start in phases:
        position = start
        while True:
            if keep is not None and scanned >= MAX_SCANNED:
                return Page(found, last)  # the budget ran out: go on from the last one read
            size = limit - len(found) if keep is None else min(max(limit, SCAN_PAGE), MAX_SCANNED - scanned)
            page = list((query.start_after(position) if position is not None else query).limit(size).stream())
            scanned += len(page)
            for snap in page:
                position, last = snap, snap.id
                customer = Customer.model_validate(snap.to_dict())
                if keep is None or keep(customer):
                    found.append(customer)
                    if len(found) == limit:
                        return Page(found, snap.id)
            if len(page) < size:
                break  # this query is read to its end
    return Page(found, None)


def _sorted_here(
    query: Any, keep: Callable[[Customer], bool], sort: str, limit: int, after: str | None
) -> Page:
    """Every customer the equality filters let through, sorted here (no composite index)."""

    def order(customer: Customer) -> tuple[bool, float, str]:
        score = _score(customer)
        signed = (score if sort == "score" else -score) if score is not None else 0.0
        return (score is None, signed, customer.id)

    found = sorted((c for c in _stream(query) if keep(c)), key=order)
    if after:
        ids = [c.id for c in found]
        if after not in ids:
            raise UnknownPosition(
                f"after {after!r} is not in this listing (use the `next` of the previous page)"
            )
        found = found[ids.index(after) + 1 :]
    return Page(found[:limit], found[limit - 1].id if len(found) > limit else None)


def _stream(query: Any) -> Iterator[Customer]:
    for doc in query.stream():
        yield Customer.model_validate(doc.to_dict())
