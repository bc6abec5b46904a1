"""One HTTP shape for every function: routing by path and method, bounded JSON bodies, and
errors as problem+json (RFC 9457) that say what was wrong and what is allowed.

Bad input never becomes a 500: it is a ``Problem`` with a 4xx status. Only a bug in our own
code reaches the 500 handler, which logs it with its trace.
"""

from shared.http.api import Api
from shared.http.bodies import (
    body_read_so_far,
    bound_body,
    drain_unread_body,
    json_response,
    read_body,
    read_json,
    read_params,
    read_query,
)
from shared.http.operations import (
    HEALTH_ROUTE,
    Handler,
    Operation,
    Reply,
    ReplySpec,
    caller_of,
    scheduled_time,
)
from shared.http.paging import NEXT_HEADER, array_page, bad_cursor, json_array_page, next_link
from shared.http.problems import PROBLEM_JSON, Problem, unavailable_when_transient
from shared.http.push import MAX_PUSH_BYTES, PUSH_ENVELOPE, pubsub_push, push_event, serve_push
from shared.http.responses import ReadyResponse, set_headers
from shared.transient import is_transient
from shared.validation import validation_errors

__all__ = [
    "HEALTH_ROUTE",
    "MAX_PUSH_BYTES",
    "NEXT_HEADER",
    "PROBLEM_JSON",
    "PUSH_ENVELOPE",
    "Api",
    "Handler",
    "Operation",
    "Problem",
    "ReadyResponse",
    "Reply",
    "ReplySpec",
    "array_page",
    "bad_cursor",
    "body_read_so_far",
    "bound_body",
    "caller_of",
    "drain_unread_body",
    "is_transient",
    "json_array_page",
    "json_response",
    "next_link",
    "pubsub_push",
    "push_event",
    "read_body",
    "read_json",
    "read_params",
    "read_query",
    "scheduled_time",
    "serve_push",
    "set_headers",
    "unavailable_when_transient",
    "validation_errors",
]
