"""OTLP/HTTP metrics decoded: protobuf or JSON, optionally gzip or deflate, into an
``ExportMetricsServiceRequest``; a payload that can never be stored is a ``RejectedPayload``
saying why. ``points.py`` aggregates the decoded request."""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import TYPE_CHECKING, Any, Literal

from google.protobuf.message import DecodeError

if TYPE_CHECKING:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest


class RejectedPayload(ValueError):
    """A payload that can never be stored: ``malformed`` (400), ``too_large`` (413) or
    ``unsupported`` (415, with what is ``allowed``)."""

    def __init__(
        self,
        reason: Literal["malformed", "too_large", "unsupported"],
        detail: str,
        *,
        allowed: list[str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.allowed = allowed


PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPES = ("application/json",)


# --- decoding ---------------------------------------------------------------------------------


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip`` (or deflate) without inflating past ``limit`` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise RejectedPayload(
            "unsupported",
            f"Content-Encoding {encoding} is not supported.",
            allowed=["gzip", "deflate", "identity"],
        )
    wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RejectedPayload("malformed", f"Body is not valid {encoding}: {exc}.") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise RejectedPayload("too_large", f"Decompressed body exceeds the limit of {limit} bytes.")
    if not inflater.eof:
        raise RejectedPayload("malformed", f"Body is truncated {encoding} data.")
    return data


def decode_request(body: bytes, content_type: str | None) -> Any:
    """An ``ExportMetricsServiceRequest`` from OTLP protobuf or OTLP JSON, with data point
    attributes as their wire bytes (``wire.py``); 400 saying what is wrong."""
    from functions.ingestion.wire import raw_request_class

    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype in PROTOBUF_TYPES:
        try:
            request = raw_request_class().FromString(body)
        except (DecodeError, ValueError, RecursionError) as exc:
            raise RejectedPayload(
                "malformed", f"Body is not a valid OTLP ExportMetricsServiceRequest protobuf: {exc}."
            ) from None
        return request
    if mimetype in JSON_TYPES:
        return raw_request_class().FromString(decode_json(body).SerializeToString())
    raise RejectedPayload(
        "unsupported",
        f"Content-Type {mimetype or '(none)'} is not supported; send OTLP as "
        "application/x-protobuf or application/json.",
        allowed=["application/x-protobuf", "application/json"],
    )


def decode_json(body: bytes) -> ExportMetricsServiceRequest:
    from google.protobuf.json_format import ParseDict, ParseError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RejectedPayload("malformed", f"Body is not valid JSON: {exc}.") from None
    if not isinstance(document, dict):
        raise RejectedPayload("malformed", "OTLP JSON must be an object with `resourceMetrics`.")
    _drop_exemplars(document)
    try:
        return ParseDict(document, ExportMetricsServiceRequest(), ignore_unknown_fields=True)
    except (ParseError, ValueError, TypeError, RecursionError) as exc:
        raise RejectedPayload(
            "malformed", f"Body is not a valid OTLP JSON ExportMetricsServiceRequest: {exc}."
        ) from None


def _drop_exemplars(node: Any) -> None:
    """OTLP JSON writes trace and span ids as hex, protobuf's JSON mapping expects base64; the
    ingestion does not use exemplars, so they are removed before parsing."""
    if isinstance(node, dict):
        node.pop("exemplars", None)
        for value in node.values():
            _drop_exemplars(value)
    elif isinstance(node, list):
        for value in node:
            _drop_exemplars(value)


def content_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def sniff_media_type(body: bytes) -> str:
    """A Pub/Sub message without ``content_type``: JSON when it parses as JSON, else protobuf. Not
    by its first byte alone: a protobuf request starts with 0x0A (field 1), JSON's newline."""
    import orjson

    if body.lstrip(b" \t\r\n")[:1] == b"{":
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return "application/x-protobuf"
        return "application/json"
    return "application/x-protobuf"
