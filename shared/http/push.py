"""Pub/Sub push entry points: the envelope checked, then a CloudEvent for the handler; raise to
retry, return to drop."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import flask

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent


from shared.http.authorization import authorize_request
from shared.http.bodies import json_response, read_body
from shared.http.problems import Problem, log

PUSH_ENVELOPE = (
    '{"message": {"data": "<base64>", "attributes": {...}, "messageId": "...", '
    '"publishTime": "<RFC 3339>"}, "subscription": "projects/P/subscriptions/S"}'
)
# Pub/Sub's message limit is 10 MB; base64 in the JSON envelope makes that at most ~13.4 MB.
MAX_PUSH_BYTES = 14 * 1024 * 1024
_TOPIC_PATH = re.compile(r"projects/[^/?]+/topics/[^/?]+")
_JSON_TYPES = {
    str: "string",
    list: "array",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def pubsub_push(handler: Callable[[CloudEvent], None]) -> Callable[[flask.Request], Any]:
    """Register ``handler`` with functions-framework as the Pub/Sub push entry point of the same
    name. It is served as a plain HTTP function so that the raw body is ours to check first
    (``push_event``): functions-framework's own CloudEvent parsing answers 500 to a body that is
    not UTF-8 JSON, and a 400 page echoing the request's headers to one that is no event.
    The handler gets the CloudEvent functions-framework would have built; it raises to have
    Pub/Sub redeliver (answered 500, logged) and returns to acknowledge (200)."""
    import functions_framework

    @functools.wraps(handler)
    def entry(request: flask.Request) -> Any:
        return serve_push(request, handler)

    return functions_framework.http(entry)  # type: ignore[no-any-return]


def serve_push(request: flask.Request, handler: Callable[[CloudEvent], None]) -> flask.Response:
    if request.method == "GET" and request.path == "/health":
        # Deployed, a push entry point is a service of its own: its /health checks what it uses.
        from shared.health import HealthBusy, push_function_health, status_code
        from shared.roles import PUBLIC

        try:
            authorize_request(request, (PUBLIC,))  # as every /health (HEALTH_ROUTE)
            report = push_function_health(handler.__name__)
        except Problem as problem:
            return problem.to_response("/health")
        except HealthBusy as busy:
            return Problem(429, str(busy), headers={"Retry-After": str(busy.retry_after)}).to_response(
                "/health"
            )
        return json_response(report, status=status_code(report))
    try:
        from shared.roles import PUSH

        authorize_request(request, (PUSH,))
        event = push_event(request)
    except Problem as problem:
        log.warning("refused a push request: %s", problem.detail, extra={"path": request.path})
        return problem.to_response(request.path)
    try:
        handler(event)
    except Exception:  # noqa: BLE001 - raise to retry: logged here, answered 500 without its text
        log.exception("push handler failed; Pub/Sub redelivers", extra={"event_id": str(event["id"])})
        return Problem(500, "Processing failed; it has been logged and Pub/Sub will redeliver.").to_response(
            request.path
        )
    return flask.Response("OK", status=200, mimetype="text/plain")


def push_event(request: flask.Request) -> CloudEvent:
    """The Pub/Sub CloudEvent of a push request, built from its raw body as functions-framework
    builds it (id = messageId, time = publishTime, source names the topic of the push path, data =
    the envelope). 400 when the body is no push envelope; what is inside ``message`` is
    ``read_pubsub``'s to judge (a bad field there drops the message rather than retrying it)."""
    from cloudevents.http import CloudEvent

    if request.method != "POST":
        raise Problem(
            405, f"{request.method} is not allowed on a push path; Pub/Sub pushes with POST.",
            headers={"Allow": "POST"}, allowed=["POST"],
        )  # fmt: skip
    raw = read_body(request, max_bytes=MAX_PUSH_BYTES)
    expected = f"a Pub/Sub push body is a UTF-8 JSON envelope {PUSH_ENVELOPE}."
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(
            400, f"Body is not UTF-8 (byte {exc.start}); {expected}", expected=PUSH_ENVELOPE
        ) from None
    try:
        envelope = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise Problem(400, f"Body is not JSON; {expected}", expected=PUSH_ENVELOPE) from None
    if not isinstance(envelope, dict):
        kind = _JSON_TYPES.get(type(envelope), "value")
        raise Problem(400, f"Body is a JSON {kind}, not a JSON object; {expected}", expected=PUSH_ENVELOPE)
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise Problem(400, f'Body has no "message" object; {expected}', expected=PUSH_ENVELOPE)
    topic = _TOPIC_PATH.search(request.path)
    attributes = {
        "id": str(message.get("messageId") or message.get("message_id") or ""),
        "source": f"//pubsub.googleapis.com/{topic.group(0) if topic else ''}",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "specversion": "1.0",
        "datacontenttype": "application/json",
    }
    publish_time = message.get("publishTime") or message.get("publish_time")
    if publish_time:  # else the CloudEvent's time is now, as functions-framework does
        attributes["time"] = publish_time
    return CloudEvent(attributes, envelope)
