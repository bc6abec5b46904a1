"""Which errors a retry can cure: shared by the HTTP layer (503 and ``Retry-After``) and by domain
modules that tell a store that is down for now from one that refuses for good."""

from __future__ import annotations


def is_transient(exc: BaseException) -> bool:
    """Whether the same request may succeed later: a Google API's UNAVAILABLE, DEADLINE_EXCEEDED,
    RESOURCE_EXHAUSTED, ABORTED or INTERNAL (HTTP 429, 500, 502, 503, 504), a retry that gave up
    on those, a timeout or a lost connection (before or during the answer). INVALID_ARGUMENT,
    PERMISSION_DENIED, NOT_FOUND, FAILED_PRECONDITION and the other API errors are not: retrying
    cannot cure them, so they are a bug or a misconfiguration of ours (``Api`` logs them and
    answers 500; a Pub/Sub handler raises them, and the bounded redeliveries end in the
    dead-letter topic)."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import TransportError

    return isinstance(
        exc,
        gexc.ServiceUnavailable
        | gexc.InternalServerError
        | gexc.BadGateway
        | gexc.GatewayTimeout  # DeadlineExceeded is one
        | gexc.TooManyRequests  # ResourceExhausted is one
        | gexc.Aborted
        | gexc.RetryError
        | TransportError
        | requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.ChunkedEncodingError  # a connection lost mid-answer
        | TimeoutError
        | ConnectionError,
    )
