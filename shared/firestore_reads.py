"""Bulk reads of documents' fields, without a snapshot per document.

The client's ``Query.stream()`` and ``Client.get_all()`` build a ``DocumentSnapshot`` for every
document, and its constructor deep-copies the decoded fields; the decoder also checks every map
for the vector and BSON encodings. Metric rollups are maps of maps of numbers, read by the hundred
for one dashboard: the copy was a fifth of a cold 7-day build's CPU and the generic decoding a
third. These read the same requests through the same client (its retry and timeout defaults,
its channel, the emulator) and decode the common value kinds directly; anything else (references,
geo points, vectors, BSON maps) goes through the library's own decoder, so the values are those
``to_dict()`` would give (tested against it value kind by value kind).

Both rely on the client's request-building helpers (``_get_stream_iterator``, ``_prep_get_all``,
``_firestore_api``), which are not public: ``tests/test_firestore_reads.py`` fails if they change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

# Vectors and BSON values are stored as maps: one with a ``__type__`` key, or one whose only key
# is dunder-named (``__int__``, ``__oid__``...).
_SPECIAL = "__"


def _decode_map(fields: Any, client: Any) -> Any:
    decoded = {key: _decode(value, client) for key, value in fields.items()}
    special = len(decoded) == 1 or "__type__" in decoded
    if special and any(key.startswith(_SPECIAL) and key.endswith(_SPECIAL) for key in decoded):
        from google.cloud.firestore_v1 import _helpers

        return _helpers.decode_dict(fields, client)
    return decoded


def _decode(value: Any, client: Any) -> Any:
    kind = value.WhichOneof("value_type")
    if kind == "double_value":
        return value.double_value
    if kind == "integer_value":
        return value.integer_value
    if kind == "map_value":
        return _decode_map(value.map_value.fields, client)
    if kind == "string_value":
        return value.string_value
    if kind == "timestamp_value":
        from google.api_core.datetime_helpers import DatetimeWithNanoseconds

        return DatetimeWithNanoseconds.from_timestamp_pb(value.timestamp_value)
    if kind == "array_value":
        return [_decode(element, client) for element in value.array_value.values]
    if kind == "boolean_value":
        return value.boolean_value
    if kind == "null_value":
        return None
    if kind == "bytes_value":
        return value.bytes_value
    from google.cloud.firestore_v1 import _helpers

    return _helpers.decode_value(value, client)


def document_fields(document_pb: Any, client: Any) -> dict[str, Any]:
    """A raw ``Document`` message's fields as ``to_dict()`` gives them."""
    return _decode_map(document_pb.fields, client)


def stream_fields(query: Any, *, restarts: int = 3) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(document id, fields)`` of every document ``query.stream()`` would yield, in its order.

    A stream broken by an error a retry can cure (``shared.transient``) is read again from the
    start after a jittered pause, skipping the documents already given, at most ``restarts``
    times; then the error is raised. (The client's own resume after such an error fails on this
    transport: it looks for a retry policy the streaming call does not have.)
    """
    from google.api_core import exceptions, gapic_v1

    from shared.firestore import backoff
    from shared.transient import is_transient

    client = query._client
    given: set[str] = set()
    for attempt in range(restarts + 1):
        responses, _ = query._get_stream_iterator(None, gapic_v1.method.DEFAULT, None)
        try:
            for response in responses:
                raw = response._pb
                if not raw.HasField("document"):
                    continue
                name = raw.document.name.rsplit("/", 1)[-1]
                if name not in given:
                    given.add(name)
                    yield name, document_fields(raw.document, client)
            return
        except exceptions.GoogleAPICallError as error:
            if attempt == restarts or not is_transient(error):
                raise
            backoff(attempt + 1, base_delay=0.05, max_delay=1.0)


def get_all_fields(
    client: Any, references: Iterable[Any], field_paths: list[str] | None = None
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """``(document id, fields)`` for every reference, ``None`` for a document that does not exist;
    in the order the server answers, as ``client.get_all()``."""
    from google.api_core import gapic_v1

    request, _, kwargs = client._prep_get_all(list(references), field_paths, None, gapic_v1.method.DEFAULT)
    responses = client._firestore_api.batch_get_documents(
        request=request, metadata=client._rpc_metadata, **kwargs
    )
    for response in responses:
        raw = response._pb
        result = raw.WhichOneof("result")
        if result == "found":
            yield raw.found.name.rsplit("/", 1)[-1], document_fields(raw.found, client)
        elif result == "missing":
            yield raw.missing.rsplit("/", 1)[-1], None
