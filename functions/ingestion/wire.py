"""OTLP metrics decoded with data point attributes kept as their wire bytes.

An SDK exports the same series every minute: decoding every attribute of every point into Python
strings costs as much as the rest of the decode together. These message classes are OTLP's own
descriptors (from ``opentelemetry-proto``) with one change: a data point's ``attributes`` and
``exemplars`` are ``repeated bytes`` instead of ``repeated KeyValue`` / ``Exemplar``. A
length-delimited message field and a bytes field share one wire format, so the same payload
parses (in protobuf's C code) with each attribute as the bytes of its encoded ``KeyValue``. The
aggregation keys its series cache on those bytes and decodes them (``KeyValue.FromString``) only
for an identity it has not seen; exemplars, which ingestion does not use, are never decoded.

A histogram point's ``explicit_bounds`` (packed doubles) and ``bucket_counts`` (packed fixed64)
are read the same way, as the bytes of their packed arrays, unpacked by ``struct`` (the bounds
once per distinct array). proto3 packs them, but a parser must also accept them unpacked: such a
point's arrays land in its unknown fields, and ``histogram_arrays`` decodes that point again with
OTLP's own class.
"""

from __future__ import annotations

import math
import struct
from functools import cache
from itertools import pairwise
from typing import Any

REQUEST = "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest"
# Data point messages whose attributes (and exemplars) are read as bytes.
RAW_FIELDS = {
    "NumberDataPoint": ("attributes", "exemplars"),
    "HistogramDataPoint": ("attributes", "exemplars", "explicit_bounds", "bucket_counts"),
    "ExponentialHistogramDataPoint": ("attributes", "exemplars"),
    "SummaryDataPoint": ("attributes",),
}


@cache
def raw_request_class() -> Any:
    """``ExportMetricsServiceRequest`` with data point attributes as bytes (built once)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.metrics.v1 import metrics_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2

    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, metrics_pb2, metrics_service_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        if module is metrics_pb2:
            _attributes_as_bytes(proto)
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(REQUEST))


def _attributes_as_bytes(proto: Any) -> None:
    from google.protobuf.descriptor_pb2 import FieldDescriptorProto

    changed = 0
    for message in proto.message_type:
        for field in message.field:
            if field.name in RAW_FIELDS.get(message.name, ()):
                field.type = FieldDescriptorProto.TYPE_BYTES
                field.ClearField("type_name")
                changed += 1
    # A new opentelemetry-proto that renamed a message must fail loudly, not decode differently.
    expected = sum(len(fields) for fields in RAW_FIELDS.values())
    if changed != expected:
        raise RuntimeError(f"OTLP metrics descriptor changed: {changed} of {expected} raw fields found")


HISTOGRAM_ARRAY_FIELDS = (6, 7)  # bucket_counts, explicit_bounds
# Distinct explicit bounds unpacked (an SDK sends the same few on every point); bounded.
_bounds_unpacked: dict[bytes, tuple[tuple[float, ...], bool]] = {}
BOUNDS_CACHE_SIZE = 1000
# Compiled unpackers of bucket counts by byte length (one per bucket count a sender uses).
_counts_unpackers: dict[int, Any] = {}


def histogram_arrays(dp: Any) -> tuple[tuple[float, ...], tuple[int, ...], bool] | str:
    """A raw histogram point's ``(explicit_bounds, bucket_counts, bounds valid)``, or why they
    cannot be read (bounds are valid when finite and strictly increasing)."""
    # Inlined (this runs per point): one chunk is the rule, several are joined.
    chunks = dp.explicit_bounds
    raw_bounds = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    chunks = dp.bucket_counts
    raw_buckets = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if (not raw_bounds or not raw_buckets) and _has_unpacked_arrays(dp):
        bounds, buckets = _decoded_again(dp)
        return bounds, buckets, bounds_valid(bounds)
    if len(raw_bounds) % 8 or len(raw_buckets) % 8:
        return "explicit_bounds and bucket_counts must be arrays of 64-bit values"
    known = _bounds_unpacked.get(raw_bounds)
    if known is None:
        bounds = struct.unpack(f"<{len(raw_bounds) // 8}d", raw_bounds)
        if len(_bounds_unpacked) >= BOUNDS_CACHE_SIZE:
            _bounds_unpacked.clear()
        known = _bounds_unpacked[raw_bounds] = (bounds, bounds_valid(bounds))
    unpack = _counts_unpackers.get(len(raw_buckets))
    if unpack is None:
        if len(_counts_unpackers) >= BOUNDS_CACHE_SIZE:
            _counts_unpackers.clear()
        unpack = _counts_unpackers[len(raw_buckets)] = struct.Struct(f"<{len(raw_buckets) // 8}Q").unpack
    return known[0], unpack(raw_buckets), known[1]


def bounds_valid(bounds: tuple[float, ...]) -> bool:
    return all(math.isfinite(b) for b in bounds) and all(b < c for b, c in pairwise(bounds))


def _has_unpacked_arrays(dp: Any) -> bool:
    from google.protobuf.unknown_fields import UnknownFieldSet

    return any(field.field_number in HISTOGRAM_ARRAY_FIELDS for field in UnknownFieldSet(dp))


def _decoded_again(dp: Any) -> tuple[tuple[float, ...], tuple[int, ...]]:
    from opentelemetry.proto.metrics.v1.metrics_pb2 import HistogramDataPoint

    point = HistogramDataPoint.FromString(dp.SerializeToString())
    return tuple(point.explicit_bounds), tuple(point.bucket_counts)
