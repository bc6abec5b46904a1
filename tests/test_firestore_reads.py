"""``shared.firestore_reads`` on the emulator: the same documents and the same values as the client's
``stream()`` / ``get_all()`` and ``to_dict()``, for every kind of value Firestore stores; a stream
broken by a transient error is read again without losing or repeating a document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud.firestore_v1 import GeoPoint
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.vector import Vector

from shared.firestore_reads import get_all_fields, stream_fields

pytestmark = pytest.mark.emulators


def _every_kind(fs: Any, n: int) -> dict[str, Any]:
    return {
        "n": n,
        "none": None,
        "flag": n % 2 == 0,
        "count": 2**40 + n,
        "ratio": n / 7,
        "at": datetime(2026, 3, 8, 9, 59, 59, 123456, tzinfo=UTC),
        "text": f"doc {n} é",
        "blob": bytes([0, 1, 255, n]),
        "ref": fs.collection("elsewhere").document(f"d{n}"),
        "where": GeoPoint(48.85, 2.35),
        "list": [1, "two", {"three": [3.0]}, None],
        "groups": {"route=/v2/route": {"count": n, "sum": 0.5, "max": {"nested": [n, None]}}},
        "empty_map": {},
        "one_key": {"only": 1},
        "embedding": Vector([0.5, 1.5]),
    }


def _library(snapshots: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(snapshot.id, snapshot.to_dict()) for snapshot in snapshots]


def test_a_query_reads_what_stream_and_to_dict_read(fs) -> None:  # type: ignore[no-untyped-def]
    rollups = fs.collection("metrics").document("m").collection("rollups")
    for n in range(12):
        rollups.document(f"r-{n:02d}").set(_every_kind(fs, n))
    query = rollups.where(filter=FieldFilter("n", ">=", 3)).where(filter=FieldFilter("n", "<", 9))

    fast = list(stream_fields(query))

    assert [name for name, _ in fast] == [f"r-{n:02d}" for n in range(3, 9)]
    assert fast == _library(query.stream())
    assert isinstance(fast[0][1]["ref"], type(fs.collection("x").document("y")))
    assert fast[0][1]["embedding"] == Vector([0.5, 1.5])
    selected = rollups.select(["n", "groups"]).where(filter=FieldFilter("n", "<", 2))
    assert list(stream_fields(selected)) == _library(selected.stream())
    assert next(iter(stream_fields(selected)))[1].keys() == {"n", "groups"}


def test_reads_by_id_give_what_get_all_gives_missing_ones_as_none(fs) -> None:  # type: ignore[no-untyped-def]
    rollups = fs.collection("rollups")
    for n in range(4):
        rollups.document(f"r{n}").set(_every_kind(fs, n))
    refs = [rollups.document(name) for name in ("r0", "gone", "r3", "r1")]

    fast = dict(get_all_fields(fs, refs))
    library = {s.id: (s.to_dict() if s.exists else None) for s in fs.get_all(refs)}
    assert fast == library
    assert fast["gone"] is None
    assert fast["r3"]["n"] == 3

    masked = dict(get_all_fields(fs, refs, ["n", "groups"]))
    assert masked == {s.id: s.to_dict() for s in fs.get_all(refs, field_paths=["n", "groups"])}
    assert masked["r1"] == {"n": 1, "groups": _every_kind(fs, 1)["groups"]}


def test_a_stream_broken_by_a_transient_error_gives_every_document_once(fs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rollups = fs.collection("rollups")
    for n in range(6):
        rollups.document(f"r{n}").set({"n": n})
    query = rollups.where(filter=FieldFilter("n", ">=", 0))
    real = query._get_stream_iterator
    calls = []

    def breaks_after(*args: Any, **kwargs: Any) -> Any:
        responses, prefix = real(*args, **kwargs)
        calls.append(1)
        limit = 2 * len(calls)  # each attempt gets two documents further

        def broken() -> Any:
            for given, response in enumerate(responses):
                if given == limit:
                    raise exceptions.ServiceUnavailable("connection reset")
                yield response

        return broken(), prefix

    monkeypatch.setattr(query, "_get_stream_iterator", breaks_after)
    assert [fields["n"] for _, fields in stream_fields(query)] == [0, 1, 2, 3, 4, 5]
    assert len(calls) == 3

    calls.clear()
    with pytest.raises(exceptions.ServiceUnavailable):
        list(stream_fields(query, restarts=1))
    assert len(calls) == 2


def test_an_error_the_client_would_not_retry_is_raised(fs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rollups = fs.collection("rollups")
    rollups.document("r0").set({"n": 0})
    query = rollups.where(filter=FieldFilter("n", ">=", 0))

    def refused(*args: Any, **kwargs: Any) -> Any:
        def stream() -> Any:
            raise exceptions.PermissionDenied("no read on rollups")
            yield  # a generator, as the client's

        return stream(), ""

    monkeypatch.setattr(query, "_get_stream_iterator", refused)
    with pytest.raises(exceptions.PermissionDenied):
        list(stream_fields(query))
