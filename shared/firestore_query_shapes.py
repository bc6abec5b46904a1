"""The shape of a Firestore RunQuery / RunAggregationQuery request (a raw protobuf message) as
``shared.firestore_indexes`` checks it: collection, filters by kind, order. Pure; the recorder
(``shared/api_call_hooks.py``) keeps it with the call."""

from __future__ import annotations

from typing import Any, Literal

from shared.firestore_indexes import QueryShape
from shared.topology import IndexedField

QUERY_METHODS = {
    "google.firestore.v1.Firestore/RunQuery": "structured_query",
    "google.firestore.v1.Firestore/RunAggregationQuery": "structured_aggregation_query",
}
_EQUALITY = {"EQUAL", "IN", "IS_NULL", "IS_NAN"}
_ARRAY = {"ARRAY_CONTAINS", "ARRAY_CONTAINS_ANY"}


def _enum_name(message: Any, field: str) -> str:
    enum = message.DESCRIPTOR.fields_by_name[field].enum_type
    return str(enum.values_by_number[getattr(message, field)].name)


def _direction(order: Any) -> Literal["ASCENDING", "DESCENDING"]:
    return "DESCENDING" if _enum_name(order, "direction") == "DESCENDING" else "ASCENDING"


def _filters(where: Any) -> list[tuple[str, str]]:
    """(field path, operator) of every filter (an OR's branches too: each needs its index)."""
    kind = where.WhichOneof("filter_type")
    if kind == "composite_filter":
        return [pair for inner in where.composite_filter.filters for pair in _filters(inner)]
    if kind == "field_filter":
        return [(where.field_filter.field.field_path, _enum_name(where.field_filter, "op"))]
    if kind == "unary_filter":
        return [(where.unary_filter.field.field_path, _enum_name(where.unary_filter, "op"))]
    return []


def query_shape(method: str, request: Any) -> QueryShape | None:
    """The shape of a query request; None for any other request (or a query of no collection)."""
    container = QUERY_METHODS.get(method)
    if container is None or not request.HasField(container):
        return None
    query = getattr(request, container)
    if container == "structured_aggregation_query":
        query = query.structured_query
    sources = query.from_
    if not sources:
        return None
    database = str(request.parent).split("/")[3] if str(request.parent).count("/") >= 3 else "(default)"
    filters = _filters(query.where) if query.HasField("where") else []
    return QueryShape(
        database="(default)" if database == "(default)" else "route",
        collection=sources[0].collection_id,
        all_descendants=bool(sources[0].all_descendants),
        equalities=tuple(sorted({f for f, op in filters if op in _EQUALITY})),
        array_contains=tuple(sorted({f for f, op in filters if op in _ARRAY})),
        inequalities=tuple(sorted({f for f, op in filters if op not in _EQUALITY | _ARRAY})),
        order_by=tuple(IndexedField(field=o.field.field_path, order=_direction(o)) for o in query.order_by),
    )
