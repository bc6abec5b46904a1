"""OTLP attributes as labels: an ``AnyValue`` as the string stored, a data point's attributes as
its sorted label pairs, the resource attributes that become labels, and the identity of a
cumulative stream (resource, scope and attributes)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

RESOURCE_LABELS = {"service.name": "service", "cloud.region": "region"}


def any_value(value: Any) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return str(value.string_value)
    if kind is None:
        return ""
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return json.dumps(_any_json(value), sort_keys=True)


def _any_json(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_json(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_json(kv.value) for kv in value.kvlist_value.values}
    return any_value(value)


def point_attrs(dp: Any) -> tuple[tuple[str, str], ...]:
    """A decoded data point's attributes as sorted label pairs."""
    return label_pairs(dp.attributes)


def raw_point_attrs(raw: tuple[bytes, ...]) -> tuple[tuple[str, str], ...]:
    """Attributes kept as the bytes of their ``KeyValue`` (``wire.py``) as sorted label pairs;
    ``ValueError`` when one is not a valid ``KeyValue``."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    try:
        return label_pairs([KeyValue.FromString(item) for item in raw])
    except (DecodeError, RecursionError) as exc:
        raise ValueError(f"data point attributes are not valid OTLP KeyValue messages: {exc}") from None


def label_pairs(attributes: Any) -> tuple[tuple[str, str], ...]:
    out = []
    for kv in attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            out.append((kv.key, value.string_value))
        elif kind == "int_value":  # e.g. http.response.status_code, as the SDKs send it
            out.append((kv.key, str(value.int_value)))
        else:
            out.append((kv.key, any_value(value)))
    if len(out) > 1:
        out.sort()
    return tuple(out)


def stream_id(metric: str, resource_key: str, scope_key: str, attrs: tuple[tuple[str, str], ...]) -> str:
    text = "\x1d".join((metric, resource_key, scope_key, repr(attrs)))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def origin_id(resource_key: str, scope_key: str) -> str:
    """The sender of a stream (its resource and scope: one SDK process and meter): the streams of
    one origin in one bucket share a state document (``writer.py``)."""
    text = "\x1d".join((resource_key, scope_key))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
