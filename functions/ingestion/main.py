"""The ingestion function: OTLP/HTTP ``POST /v1/metrics``, ``GET /v1/query``, the scheduled
collector ``POST /v1/collect``, the scheduled downsampler ``POST /v1/downsample`` and
``GET /health`` (entry point ``ingest``), and OTLP batches from Pub/Sub topic ``metrics`` (entry
point ``ingest_pubsub``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import flask
from pydantic import BaseModel, ConfigDict, ValidationError

from functions.ingestion import query_api
from functions.ingestion.aggregate import Batch
from functions.ingestion.ingest import ingest_payload
from functions.ingestion.otlp import PROTOBUF_TYPES, RejectedPayload, decompress, sniff_media_type
from functions.ingestion.query_api import QUERY_PARAMS, QueryAnswer, QueryParams
from functions.ingestion.series_registry import CardinalityExceeded
from functions.ingestion.settings import QUERY_PAST_DAYS, get_ingestion_settings
from shared.clock import format_rfc3339, parse_rfc3339, utcnow
from shared.http import (
    HEALTH_ROUTE,
    Api,
    Problem,
    Reply,
    json_response,
    read_body,
    unavailable_when_transient,
    validation_errors,
)
from shared.logging import get_logger
from shared.metrics.query import run_query
from shared.metrics.query_model import AGGREGATIONS, MetricQuery, QueryError, TooManyDocuments
from shared.settings import get_settings

api = Api("ingestion")
REJECTED_STATUS = {"malformed": 400, "too_large": 413, "unsupported": 415}
log = get_logger("ingestion")


OTLP_MEDIA = ("application/x-protobuf", "application/json")


class OtlpAnswer(BaseModel):
    """OTLP/HTTP's ExportMetricsServiceResponse in JSON (protobuf: the same message)."""

    model_config = ConfigDict(extra="allow")

    partialSuccess: dict[str, Any] | None = None
    rejections: list[dict[str, Any]] | None = None


@api.route(
    "/v1/metrics",
    methods=["POST"],
    raw_body=OTLP_MEDIA,
    responses={
        200: Reply(OtlpAnswer, media=OTLP_MEDIA, description="Stored; refused points in partialSuccess.")
    },
    problems=(400, 415, 503),
)
def post_metrics(request: flask.Request) -> flask.Response:
    limit = get_settings().max_body_bytes
    with unavailable_when_transient(
        "Storage is unavailable; retry later.",
        logger=log,
        message="metric batch not stored, the exporter will retry: %s",
        retry_after=5,
    ):
        try:
            body = decompress(read_body(request), request.headers.get("Content-Encoding"), limit)
            result = ingest_payload(body, request.headers.get("Content-Type"))
        except RejectedPayload as exc:
            raise _rejected(exc) from None
        except CardinalityExceeded as exc:
            raise Problem(
                413,
                f"Refused: {exc}. Drop high-cardinality attributes or raise "
                "ION_METRICS_MAX_SERIES_PER_METRIC.",
                metrics=sorted(exc.metrics),
                limit=exc.limit,
            ) from None
    return _otlp_response(request, result.batch)


def _rejected(exc: RejectedPayload) -> Problem:
    extra = {"allowed": exc.allowed} if exc.allowed is not None else {}
    return Problem(REJECTED_STATUS[exc.reason], exc.detail, **extra)


def _otlp_response(request: flask.Request, batch: Batch) -> flask.Response:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsPartialSuccess,
        ExportMetricsServiceResponse,
    )

    rejected = batch.rejected_count
    message = batch.rejection_message() if rejected else ""
    if request.mimetype in PROTOBUF_TYPES:
        response = ExportMetricsServiceResponse()
        if rejected:
            response.partial_success.CopyFrom(
                ExportMetricsPartialSuccess(rejected_data_points=rejected, error_message=message)
            )
        return flask.Response(response.SerializeToString(), status=200, mimetype="application/x-protobuf")
    payload: dict[str, Any] = {}
    if rejected:
        payload["partialSuccess"] = {"rejectedDataPoints": rejected, "errorMessage": message}
        payload["rejections"] = [
            {"metric": metric, "reason": reason, "points": n}
            for (metric, reason), n in sorted(batch.rejected.items())
        ]
    return json_response(payload)


@api.route("/v1/query", methods=["GET"], query=QueryParams, response=QueryAnswer)
def get_query(request: flask.Request, query: QueryParams) -> flask.Response:
    """Rollups of one metric, aggregated over the labels not given; `label.<name>=<value>` (any
    number, an empty value: the series without it) filters by a label and keeps it."""
    args = request.args
    unknown = sorted(k for k in args if k not in QUERY_PARAMS and not k.startswith("label."))
    if unknown:
        raise Problem(
            422,
            f"Unknown query parameter(s): {', '.join(unknown)}.",
            errors=[{"field": k, "message": "unknown parameter"} for k in unknown],
            allowed=[*QUERY_PARAMS, "label.<name>"],
        )
    # ``by=a&by=b`` means both; any other parameter twice is ambiguous: never the first alone.
    repeated = sorted(k for k in args if k != "by" and len(args.getlist(k)) > 1)
    if repeated:
        raise Problem(
            422,
            f"Query parameter(s) given more than once: {', '.join(repeated)} (only by may repeat).",
            errors=[{"field": k, "message": "given more than once"} for k in repeated],
        )
    missing = [k for k in ("metric", "agg", "start", "end") if not args.get(k)]
    if missing:
        raise Problem(
            422,
            f"Missing query parameter(s): {', '.join(missing)}.",
            errors=[{"field": k, "message": "required"} for k in missing],
        )
    raw: dict[str, Any] = {
        "metric": args["metric"],
        "agg": args["agg"],
        "start": _rfc3339(args["start"], "start"),
        "end": _rfc3339(args["end"], "end"),
        "labels": {k[len("label.") :]: v for k, v in args.items() if k.startswith("label.")},
        "group_by": [k.strip() for by in args.getlist("by") for k in by.split(",") if k.strip()],
    }
    _check_window(raw["start"], raw["end"], get_ingestion_settings().query_max_window_days)
    if args.get("step"):
        raw["step"] = args["step"]
    if args.get("resolution"):
        raw["resolution"] = args["resolution"]
    if args.get("across"):
        raw["across"] = args["across"]
    try:
        query = MetricQuery.model_validate(raw)
    except ValidationError as exc:
        errors = validation_errors(exc, whole="query")
        extra: dict[str, Any] = {}
        if any(e["field"] == "agg" for e in errors):
            extra["allowed"] = list(AGGREGATIONS)
        told = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Problem(422, f"Query parameters are not valid: {told}.", errors=errors, **extra) from None
    limits = get_ingestion_settings()
    steps = query_api.steps_of(query.start, query.end, query.step)
    cap = query_api.series_cap(steps, limits.query_max_series, limits.query_max_points)
    if cap < 1:
        raise _too_many_points(query, cap)
    try:
        result = run_query(query, max_series=cap, max_documents=limits.query_max_documents)
    except TooManyDocuments as exc:
        detail = f"{str(exc)[0].upper()}{str(exc)[1:]} (ION_QUERY_MAX_DOCUMENTS)."
        errors = [{"field": exc.field, "message": str(exc)}]
        raise Problem(422, detail, errors=errors, allowed={"max_documents": exc.limit}) from None
    except QueryError as exc:
        if exc.field == "by" and cap < limits.query_max_series:  # the points, not the series, ran out
            raise _too_many_points(query, cap) from None
        raise Problem(422, str(exc), errors=[{"field": exc.field, "message": str(exc)}]) from None
    answer: dict[str, Any] = {"metric": result.metric, "agg": result.agg, "resolution": result.resolution}
    answer["series"] = [
        {"labels": s.labels, "points": [[_format_time(t), v] for t, v in s.points]} for s in result.series
    ]
    if result.notes:
        answer["notes"] = result.notes
    return json_response(answer)


def _too_many_points(query: MetricQuery, cap: int) -> Problem:
    limits, steps = get_ingestion_settings(), query_api.steps_of(query.start, query.end, query.step)
    least = query_api.least_step(query.start, query.end, query.step or 60, limits.query_max_points)
    detail = query_api.too_many_points(steps, max(cap, 0), limits.query_max_points, least)
    allowed = {"max_points": limits.query_max_points, "max_series": limits.query_max_series}
    allowed |= {"series_at_this_step": max(cap, 0)} | ({"min_step": least} if cap < 1 else {})
    return Problem(
        422,
        f"{detail[0].upper()}{detail[1:]}.",
        errors=[{"field": "step", "message": detail}],
        allowed=allowed,
    )


# How far ahead of the clock a query may end (clock skew, a dashboard's "now + a little").
QUERY_FUTURE = timedelta(days=1)


def _check_window(start: datetime, end: datetime, max_days: int) -> None:
    """Times within the data that can exist, a window at most ``ION_QUERY_MAX_WINDOW_DAYS`` long."""
    now = utcnow()
    earliest, latest = now - timedelta(days=QUERY_PAST_DAYS), now + QUERY_FUTURE
    allowed = {
        "earliest": format_rfc3339(earliest),
        "latest": format_rfc3339(latest),
        "max_window_days": max_days,
    }
    for name, at in (("start", start), ("end", end)):
        if not earliest <= at <= latest:
            detail = (
                f"{name} {format_rfc3339(at)} is out of range: times from {allowed['earliest']} "
                f"({QUERY_PAST_DAYS} days ago: nothing older is kept) to {allowed['latest']} "
                "(a day ahead) are allowed."
            )
            raise Problem(422, detail, errors=[{"field": name, "message": "out of range"}], allowed=allowed)
    if end - start > timedelta(days=max_days):
        detail = (
            f"The window is {(end - start).total_seconds() / 86400:.1f} days long; at most "
            f"{max_days} days (ION_QUERY_MAX_WINDOW_DAYS)."
        )
        raise Problem(422, detail, errors=[{"field": "start", "message": "window too long"}], allowed=allowed)


def _rfc3339(value: str, name: str) -> datetime:
    try:
        parsed = parse_rfc3339(value)
    except ValueError:
        raise Problem(
            422,
            f"{name} must be an RFC 3339 time like 2026-01-01T12:00:00Z.",
            errors=[{"field": name, "message": "not an RFC 3339 time"}],
        ) from None
    if parsed.tzinfo is None:
        raise Problem(
            422,
            f"{name} needs a time zone (Z or an offset).",
            errors=[{"field": name, "message": "time zone missing"}],
        )
    return parsed


def _format_time(at: datetime) -> str:
    return format_rfc3339(at)


@api.route(
    "/v1/collect", methods=["POST"], response="functions.ingestion.collector:CollectResult", problems=(503,)
)
def post_collect(request: flask.Request) -> dict[str, Any]:
    from functions.ingestion.collector import collect

    with unavailable_when_transient(
        "Cloud Monitoring or storage unavailable: {exc}.",
        logger=log,
        message="collector run failed, the next schedule retries: %s",
    ):
        return collect().model_dump()


@api.route(
    "/v1/downsample",
    methods=["POST"],
    response="functions.ingestion.downsample:DownsampleResult",
    problems=(503,),
)
def post_downsample(request: flask.Request) -> dict[str, Any]:
    from functions.ingestion.downsample import downsample

    # Folding is idempotent and resumes from its cursor: the next schedule finishes it.
    with unavailable_when_transient(
        "Storage unavailable: {exc}.",
        logger=log,
        message="downsample run failed, the next schedule resumes it: %s",
    ):
        return downsample().model_dump(mode="json")


@lru_cache(maxsize=1)
def _health() -> Any:
    from shared.health import store_and_topic

    return store_and_topic("ingestion", lambda: get_ingestion_settings().updates_topic)


@api.route("/health", methods=["GET"], **HEALTH_ROUTE)
def health(request: flask.Request) -> flask.Response:
    from shared.health import status_code

    report = _health().report()
    return json_response(report, status_code(report))


def handle(request: flask.Request) -> flask.Response:
    return api(request)


# --- Pub/Sub ----------------------------------------------------------------------------------


def handle_event(event: Any) -> None:
    """One OTLP batch from topic ``metrics``: raise to retry (storage), return to drop (bad input)."""
    from functions.ingestion.topic_filter import confine_to_routing
    from shared.events import dead_letter_unreadable, read_pubsub

    message = read_pubsub(event)
    if message is None:
        return
    event_id, attributes, payload = message.event_id, message.attributes, message.data
    content_type = attributes.get("content_type") or attributes.get("Content-Type")
    encoding = attributes.get("content_encoding")
    try:
        body = decompress(payload, encoding, get_settings().max_body_bytes * 8)
        content_type = content_type or sniff_media_type(body)
        # The public route publishes here: only routing's own metrics are taken (topic_filter).
        result = ingest_payload(body, content_type, confine=confine_to_routing)
    except RejectedPayload as exc:
        log.error(
            "metric batch can never be stored: %s",
            exc.detail,
            extra={"event_id": event_id, "status": REJECTED_STATUS[exc.reason]},
        )
        # Acknowledged, never unread: kept by the dead-letter store, which pages.
        dead_letter_unreadable(message, f"metric batch can never be stored: {exc.detail}")
        return
    except CardinalityExceeded as exc:
        log.error("dropping metric batch: %s", exc, extra={"event_id": event_id})
        return
    if result.rejected:
        log.warning(
            "metric batch partly refused: %s",
            result.batch.rejection_message(),
            extra={"event_id": event_id, "rejected_points": result.rejected},
        )
