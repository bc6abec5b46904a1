"""Which Firestore index a query needs, by Firestore's documented rules; pure (no I/O).

Production Firestore refuses a query no index serves (FailedPrecondition "The query requires an
index"); the emulator serves every query, so the tests check the queries they ran here instead
(the recorder keeps each query's shape, ``shared/api_calls.py``; the session's end checks them).

- Automatic single-field indexes (ascending and descending per field, collection scope) serve a
  query with equality filters only, ordered by document id or not (merged), and a query whose
  range filters and order are on one field alone, with the document id in that field's direction.
- Anything else needs a composite index: the equality fields, then the order (explicit orders,
  then range fields not ordered, ascending, by field name), then ``__name__`` in the direction of
  the last order. Firestore merges composite indexes that share that order across equality
  fields: ``a == 1 and b == 2 order by s`` is served by ``(a, s)`` and ``(b, s)``.
- An index exemption (a TTL field too: its ``index_config`` is empty) removes a field's
  single-field indexes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.api_calls import ApiCall
from shared.topology import CompositeIndex, IndexedField, Topology

NAME = "__name__"
Direction = Literal["ASCENDING", "DESCENDING"]


class QueryShape(BaseModel):
    """What of a structured query decides its index (values and limits do not)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database: Literal["(default)", "route"] = "(default)"
    collection: str
    all_descendants: bool = False  # a collection group query
    equalities: tuple[str, ...] = ()  # ==, in, is null, is NaN
    array_contains: tuple[str, ...] = ()  # array-contains, array-contains-any
    inequalities: tuple[str, ...] = ()  # <, <=, >, >=, !=, not-in, is not null / NaN
    order_by: tuple[IndexedField, ...] = ()


def index_order(shape: QueryShape) -> tuple[IndexedField, ...]:
    """The order Firestore reads the query in: explicit orders (an equality field's order is moot),
    then the range fields not ordered (ascending, by name), then ``__name__``."""
    equal = set(shape.equalities)
    order = [o for o in shape.order_by if o.field not in equal]
    ordered = {o.field for o in order}
    order += [IndexedField(field=f, order="ASCENDING") for f in sorted(set(shape.inequalities) - ordered)]
    if not any(o.field == NAME for o in order):
        order.append(IndexedField(field=NAME, order=order[-1].order if order else "ASCENDING"))
    return tuple(order)


def single_field_served(shape: QueryShape) -> bool:
    """True when the automatic single-field indexes serve the query (exemptions aside)."""
    order = index_order(shape)
    *fields, name = order
    if name.field != NAME:
        return False
    if not fields:  # equality and array-contains filters only, in document id order: merged
        return True
    return (
        len(fields) == 1
        and not shape.equalities
        and not shape.array_contains
        and fields[0].order == name.order
        and set(shape.inequalities) <= {fields[0].field}
    )


def required_index(shape: QueryShape) -> CompositeIndex | None:
    """The composite index the query needs (equality fields first), None when single-field
    indexes serve it. Array-contains fields are left out (they need ``array_config``)."""
    if single_field_served(shape):
        return None
    prefix = [IndexedField(field=f, order="ASCENDING") for f in sorted(set(shape.equalities))]
    return CompositeIndex(
        collection=shape.collection, database=shape.database, fields=(*prefix, *index_order(shape))
    )


def _with_name(index: CompositeIndex) -> tuple[IndexedField, ...]:
    """An index's fields as Firestore keeps them: ``__name__`` last, in the last field's direction."""
    if index.fields[-1].field == NAME:
        return index.fields
    return (*index.fields, IndexedField(field=NAME, order=index.fields[-1].order))


def _uncovered(shape: QueryShape, declared: Iterable[CompositeIndex]) -> set[str] | None:
    """The query's equality fields no declared index (with the query's order after them) covers;
    None when the query has no equality field and no index is its order exactly."""
    order = index_order(shape)
    equal = set(shape.equalities)
    prefixes: list[set[str]] = []
    for index in declared:
        if (index.collection, index.database) != (shape.collection, shape.database):
            continue
        fields = _with_name(index)
        head, tail = fields[: -len(order)], fields[-len(order) :]
        if len(fields) >= len(order) and tail == order and {f.field for f in head} <= equal:
            prefixes.append({f.field for f in head})
    if not equal:
        return set() if any(not prefix for prefix in prefixes) else None
    return {field for field in equal if not any(field in prefix for prefix in prefixes)}


def problem(shape: QueryShape, topology: Topology) -> str | None:
    """Why production Firestore would refuse the query (None: it would not)."""
    where = f"{shape.collection} ({shape.database})"
    if shape.all_descendants:
        # Automatic indexes and the declared ones are of collection scope only.
        return f"{where}: a collection group query needs collection-group indexes, none declared"
    if single_field_served(shape):
        exempt = {e.field for e in topology.index_exemptions if e.collection == shape.collection}
        exempt |= {t.field for t in topology.ttl_policies if t.collection == shape.collection}
        if shape.database == "(default)":  # exemptions are declared on the default database
            used = {*shape.equalities, *shape.array_contains, *shape.inequalities}
            used |= {o.field for o in shape.order_by}
            if used & exempt:
                return f"{where}: queries {sorted(used & exempt)}, exempt from indexing in topology.yaml"
        return None
    if shape.array_contains:
        return (
            f"{where}: array-contains with an order or range needs an index with array_config, not declarable"
        )
    uncovered = _uncovered(shape, topology.composite_indexes)
    if uncovered == set():
        return None
    # The fields no index covers yet (Firestore merges the new index with those that do).
    needed = required_index(shape.model_copy(update={"equalities": tuple(sorted(uncovered or ()))}))
    assert needed is not None
    return f"{where}: no declared composite index serves it; add to topology.yaml:\n  {as_yaml(needed)}"


def as_yaml(index: CompositeIndex) -> str:
    """The index as a ``composite_indexes`` entry of topology.yaml."""
    fields = ", ".join(f"{{field: {f.field}, order: {f.order}}}" for f in index.fields)
    database = "" if index.database == "(default)" else f"database: {index.database}, "
    return f"- {{collection: {index.collection}, {database}fields: [{fields}]}}"


def problems(shapes: Iterable[QueryShape], topology: Topology) -> list[str]:
    """Each distinct problem of the queries, once."""
    found = (problem(shape, topology) for shape in set(shapes))
    return sorted({p for p in found if p is not None})


def recorded_problems(calls: Iterable[ApiCall], topology: Topology) -> list[str]:
    """The problems of the queries recorded with the calls (``shared/api_calls.py``); a call made
    only locally (no deployed function makes it) is left out."""
    shapes = [
        QueryShape.model_validate_json(call.query) for call in calls if call.query and not call.local_only
    ]
    return problems(shapes, topology)
