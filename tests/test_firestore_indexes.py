"""The index rules (shared/firestore_indexes.py) on queries whose answer Firestore's documentation
gives (the `cities` examples of "Index types" and "Manage indexes"), the request shapes the
recorder keeps, and the declared indexes serving what the health listing asks."""

from __future__ import annotations

from typing import Any

import pytest

from shared.firestore_indexes import (
    QueryShape,
    as_yaml,
    problem,
    problems,
    recorded_problems,
    required_index,
)
from shared.topology import IndexedField, load_topology

ASC, DESC = "ASCENDING", "DESCENDING"


def order(*pairs: tuple[str, str]) -> tuple[IndexedField, ...]:
    return tuple(IndexedField(field=f, order=o) for f, o in pairs)  # type: ignore[arg-type]


def cities(**kw: Any) -> QueryShape:
    return QueryShape(collection="cities", **kw)


def fields(shape: QueryShape) -> list[tuple[str, str]] | None:
    index = required_index(shape)
    return None if index is None else [(f.field, f.order) for f in index.fields]


@pytest.mark.parametrize(
    "shape",
    [
        cities(),  # the whole collection
        cities(equalities=("state",)),
        cities(equalities=("country", "state")),  # equalities only: single-field indexes merged
        cities(equalities=("state",), order_by=order(("__name__", ASC))),
        cities(inequalities=("population",)),  # one field's range
        cities(inequalities=("population",), order_by=order(("population", DESC))),
        cities(order_by=order(("population", DESC))),  # one field's order
        cities(array_contains=("regions",)),
        cities(equalities=("state",), order_by=order(("state", ASC))),  # an equality field's order
    ],
)
def test_single_field_indexes_serve(shape: QueryShape) -> None:
    assert required_index(shape) is None


def test_equality_then_range_needs_the_equality_field_first() -> None:
    # where("state", "==", "CA").where("population", "<", 1000000)
    shape = cities(equalities=("state",), inequalities=("population",))
    assert fields(shape) == [("state", ASC), ("population", ASC), ("__name__", ASC)]


def test_equality_then_order_takes_the_orders_direction() -> None:
    # where("country", "==", "USA").orderBy("population", "desc")
    shape = cities(equalities=("country",), order_by=order(("population", DESC)))
    assert fields(shape) == [("country", ASC), ("population", DESC), ("__name__", DESC)]


def test_order_on_two_fields_or_range_and_order_on_another_need_a_composite() -> None:
    assert fields(cities(order_by=order(("country", ASC), ("population", DESC)))) == [
        ("country", ASC),
        ("population", DESC),
        ("__name__", DESC),
    ]
    # Range fields not ordered follow the orders, ascending.
    assert fields(cities(inequalities=("population",), order_by=order(("country", DESC)))) == [
        ("country", DESC),
        ("population", ASC),
        ("__name__", ASC),
    ]


def test_document_id_against_the_fields_direction_needs_a_composite() -> None:
    shape = cities(order_by=order(("population", DESC), ("__name__", ASC)))
    assert fields(shape) == [("population", DESC), ("__name__", ASC)]


def test_a_declared_index_serves_and_merges_across_equality_fields() -> None:
    declared = load_topology().model_validate(
        {
            **load_topology().model_dump(),
            "composite_indexes": [
                {
                    "collection": "cities",
                    "fields": [{"field": "state", "order": ASC}, {"field": "pop", "order": ASC}],
                },
                {
                    "collection": "cities",
                    "fields": [{"field": "size", "order": ASC}, {"field": "pop", "order": ASC}],
                },
            ],
        }
    )
    both = cities(equalities=("size", "state"), order_by=order(("pop", ASC)))
    assert problem(both, declared) is None  # (state, pop) and (size, pop) merged; __name__ implied
    descending = cities(equalities=("state",), order_by=order(("pop", DESC)))
    missing = problem(descending, declared)
    assert missing is not None
    assert (
        "- {collection: cities, fields: [{field: state, order: ASCENDING}, {field: pop, order: DESCENDING}, "
        "{field: __name__, order: DESCENDING}]}" in missing
    )
    other = cities(equalities=("country",), order_by=order(("pop", ASC)))
    assert problem(other, declared) is not None  # no index starts with country
    # With state covered already, only country's index is asked for (merged with state's).
    partly = problem(cities(equalities=("country", "state"), order_by=order(("pop", ASC))), declared)
    assert partly is not None
    assert partly.endswith(
        "- {collection: cities, fields: [{field: country, order: ASCENDING}, {field: pop, order: ASCENDING}, "
        "{field: __name__, order: ASCENDING}]}"
    )


def test_an_exempt_field_is_not_queryable_through_single_field_indexes() -> None:
    shape = QueryShape(collection="metric_minutes", equalities=("series",))
    assert "exempt from indexing" in (problem(shape, load_topology()) or "")
    assert problem(QueryShape(collection="idempotency", inequalities=("expire_at",)), load_topology())


def test_yaml_form_names_a_non_default_database() -> None:
    index = required_index(
        QueryShape(collection="f", database="route", order_by=order(("a", ASC), ("b", ASC)))
    )
    assert index is not None
    assert as_yaml(index).startswith("- {collection: f, database: route, fields: [")


def test_the_health_listings_queries_are_declared() -> None:
    """The shapes listing.py sends (README "Listing at scale"): every equality filter alone or
    together, a score range or not, both score orders."""
    shapes = []
    for equal in [
        (),
        ("status",),
        ("health.category",),
        ("plan",),
        ("segment",),
        ("plan", "segment", "status"),
    ]:
        for direction in (ASC, DESC):
            shapes.append(
                QueryShape(
                    collection="customers",
                    equalities=equal,
                    inequalities=("health.score",),
                    order_by=order(("health.score", direction), ("__name__", ASC)),
                )
            )
        shapes.append(
            QueryShape(
                collection="customers", equalities=(*equal, "health"), order_by=order(("__name__", ASC))
            )
        )
    assert problems(shapes, load_topology()) == []


def test_the_recorder_reads_a_query_requests_shape() -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.firestore_v1 import Client
    from google.cloud.firestore_v1.base_query import FieldFilter
    from google.cloud.firestore_v1.types import RunAggregationQueryRequest, RunQueryRequest

    from shared.firestore_query_shapes import query_shape

    customers = Client(project="p", credentials=AnonymousCredentials()).collection("customers")
    query = (
        customers.where(filter=FieldFilter("status", "==", "active"))
        .where(filter=FieldFilter("health", "==", None))
        .where(filter=FieldFilter("health.score", ">=", 0))
        .order_by("health.score", direction=DESC)
        .order_by("__name__")
    )
    request = RunQueryRequest(
        parent="projects/p/databases/(default)/documents", structured_query=query._to_protobuf()
    )
    shape = query_shape("google.firestore.v1.Firestore/RunQuery", RunQueryRequest.pb(request))
    assert shape == QueryShape(
        collection="customers",
        equalities=("health", "status"),
        inequalities=("health.score",),
        order_by=order(("health.score", DESC), ("__name__", ASC)),
    )
    aggregate = RunAggregationQueryRequest(
        parent="projects/p/databases/route/documents",
        structured_aggregation_query={"structured_query": query._to_protobuf()},
    )
    shape = query_shape(
        "google.firestore.v1.Firestore/RunAggregationQuery", RunAggregationQueryRequest.pb(aggregate)
    )
    assert shape is not None
    assert shape.database == "route"
    assert query_shape("google.firestore.v1.Firestore/Commit", object()) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([{"field": "a", "order": ASC}], "at least 2"),
        (
            [{"field": "__name__", "order": ASC}, {"field": "a", "order": ASC}],
            "__name__ can only be the last",
        ),
        ([{"field": "a", "order": ASC}, {"field": "a", "order": DESC}], "listed twice"),
        ([{"field": "a", "order": "UP"}, {"field": "b", "order": ASC}], "ASCENDING"),
    ],
)
def test_a_malformed_composite_index_is_refused(fields: list[dict[str, str]], message: str) -> None:
    from pydantic import ValidationError

    from shared.topology import CompositeIndex

    with pytest.raises(ValidationError, match=message):
        CompositeIndex(collection="c", fields=fields)  # type: ignore[arg-type]


def test_an_index_declared_twice_is_refused() -> None:
    from pydantic import ValidationError

    raw = load_topology().model_dump()
    raw["composite_indexes"] = [*raw["composite_indexes"], raw["composite_indexes"][0]]
    with pytest.raises(ValidationError, match="declared twice"):
        load_topology().model_validate(raw)


def test_the_session_check_reads_the_recorded_queries() -> None:
    from shared.api_calls import ApiCall

    needing = QueryShape(collection="customers", equalities=("owner",), order_by=order(("health.score", ASC)))
    call = {
        "function": "score_health",
        "api": "firestore.googleapis.com",
        "method": "RunQuery",
        "resource": "r",
    }
    recorded = [
        ApiCall(**call, query=needing.model_dump_json()),
        ApiCall(**call, query=QueryShape(collection="customers", equalities=("status",)).model_dump_json()),
        ApiCall(**call, query=needing.model_dump_json(), local_only="emulator only"),
        ApiCall(**call),
    ]
    found = recorded_problems(recorded, load_topology())
    assert len(found) == 1
    assert "{field: owner, order: ASCENDING}, {field: health.score, order: ASCENDING}" in found[0]
