"""Handlers of the dead-letter store (entry points in /main.py).

Pub/Sub (``store_dead_letters``, pushed from every ``<topic>-dead-letter`` topic): store the
message once, then raise its alert once, unless the alert pipeline re-drives it by itself (then
only a notice when its re-drive failed again). Raise to retry (Firestore or Pub/Sub failing); a
dead letter is never dropped for its age.

HTTP (``manage_dead_letters``): ``GET /v1/dead-letters[?topic=&state=&limit=]``,
``GET /v1/dead-letters/{id}``, ``POST /v1/dead-letters/{id}/redrive``, ``POST /v1/recover``
(scheduler ``deadletters-recover``, every minute), ``GET /health``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any, Literal

import flask
from pydantic import BaseModel, ConfigDict, Field

from functions.deadletters import letters, recovery, store
from functions.deadletters.settings import get_dead_letter_settings
from shared.audit import audit
from shared.clock import utcnow
from shared.http import HEALTH_ROUTE, Api, Problem, json_response
from shared.ids import DocumentId
from shared.logging import get_logger

api = Api("deadletters")
log = get_logger("deadletters")
# A dead letter is old by nature: the usual stale-event cut-off must not drop it.
NEVER_TOO_OLD = timedelta(days=3650)
LETTER_ID = r"^[A-Za-z0-9_-]{1,128}$"


def handle_event(event: Any) -> None:
    from shared.events import read_pubsub

    message = read_pubsub(event, max_age=NEVER_TOO_OLD)
    if message is None:
        return
    try:
        letter = letters.from_message(message, utcnow())
    except ValueError as exc:
        log.error(
            "dropping a push that is not from a dead-letter topic: %s", exc, extra={"topic": message.topic}
        )
        return
    stored = store.store(letters.planned(letter))
    extra = {
        "dead_letter_id": stored.id,
        "topic": stored.topic,
        "attempts": stored.delivery_attempts,
        "redrives": stored.redrives,
    }
    if stored.automatic:
        # No page per letter: the recovery job re-drives it and sends one summary for them all.
        log.warning(
            "dead letter from %s stored, to be re-driven by itself: %s",
            stored.topic,
            stored.reason,
            extra=extra,
        )
        recovery.alert_retrying(stored)
        return
    log.error("dead letter from %s stored: %s", stored.topic, stored.reason, extra=extra)
    store.alert(stored)


def handle(request: flask.Request) -> flask.Response:
    return api(request)


class ListQuery(BaseModel):
    # An empty topic named no letter: every page came back empty, as if none were kept.
    topic: str | None = Field(
        default=None, min_length=1, max_length=255, description="a source topic, e.g. alerts"
    )
    state: Literal["stored", "redriven"] | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    after: (
        DocumentId(  # type: ignore[valid-type]
            max_length=128,
            pattern=LETTER_ID,
            description="the `next` of the previous page: letters older than it",
        )
        | None
    ) = None


class LetterPath(BaseModel):
    letter_id: DocumentId(
        max_length=128, pattern=LETTER_ID, description="a dead letter's id: its Pub/Sub message id"
    )  # type: ignore[valid-type]


class LetterSummary(BaseModel):
    """A dead letter without its data (``GET /v1/dead-letters/{id}`` has it)."""

    model_config = ConfigDict(extra="allow")

    id: str
    topic: str
    state: str


class LetterList(BaseModel):
    dead_letters: list[LetterSummary]
    next: str | None = Field(
        default=None,
        description="pass as `after` for the next page; null once the oldest letter was read. A filtered "
        "page reads a bounded number of letters, so it may hold fewer than `limit` with more to come",
    )


def _summary(letter: letters.DeadLetter) -> dict[str, Any]:
    return letter.model_dump(mode="json", exclude={"data_base64"})


@api.route("/v1/dead-letters", methods=["GET"], query=ListQuery, response=LetterList)
def list_dead_letters(_request: flask.Request, query: ListQuery) -> dict[str, Any]:
    """Dead letters, newest first, a page at a time (``next``)."""
    try:
        letters, following = store.listing(query.topic, query.state, query.limit, query.after)
    except LookupError:
        raise Problem(
            422, f"after {query.after!r} is no dead letter; pass the `next` of the previous page."
        ) from None
    return {"dead_letters": [_summary(letter) for letter in letters], "next": following}


def _gone(letter_id: str, missing: letters.DataMissing) -> Problem:
    # A large letter's parts and the letter expire together, but Firestore's TTL deletes each on
    # its own within a day: in between the letter is there and part of its data is not (a 500).
    log.warning(
        "dead letter %s lost part of its data: %s", letter_id, missing, extra={"dead_letter_id": letter_id}
    )
    keep = get_dead_letter_settings().keep_days
    return Problem(
        410, f"Dead letter {letter_id} is expiring (kept {keep} days): part of its data is deleted already."
    )


@api.route(
    "/v1/dead-letters/<letter_id>",
    methods=["GET"],
    params=LetterPath,
    response=letters.DeadLetter,
    problems=(410,),
)
def get_dead_letter(_request: flask.Request, letter_id: str) -> dict[str, Any]:
    """A dead letter with its data (base64)."""
    try:
        letter = store.get(letter_id)
    except letters.DataMissing as missing:
        raise _gone(letter_id, missing) from None
    if letter is None:
        raise Problem(404, f"No dead letter {letter_id}.")
    return letter.model_dump(mode="json")


@api.route(
    "/v1/dead-letters/<letter_id>/redrive",
    methods=["POST"],
    params=LetterPath,
    response=LetterSummary,
    problems=(409, 410),
)
def redrive_dead_letter(request: flask.Request, letter_id: str) -> dict[str, Any]:
    """Publish a stored dead letter again to its topic."""
    redrivable = _redrivable()
    try:
        letter = store.redrive(letter_id, utcnow(), redrivable)
    except letters.NotRedrivable as exc:
        raise Problem(409, str(exc), allowed=sorted(redrivable)) from None
    except letters.DataMissing as missing:
        raise _gone(letter_id, missing) from None
    except letters.Redacted as redacted:
        raise Problem(410, str(redacted)) from None
    if letter is None:
        raise Problem(404, f"No dead letter {letter_id}.")
    audit(
        log,
        "dead_letter.redrive",
        request.headers,
        f"re-drove dead letter {letter.id} to {letter.topic}",
        dead_letter_id=letter.id,
        topic=letter.topic,
    )
    return _summary(letter)


def _redrivable() -> set[str]:
    from shared.topology import topology

    topo = topology()
    return {name for name in topo.topics if topo.subscribers(name)}


@api.route("/v1/recover", methods=["POST"], problems=(503,))
def recover(request: flask.Request) -> dict[str, Any]:
    """The scheduler's recovery run (every minute): the alert pipeline's letters re-driven by
    themselves, oldest first and bounded per run, then one summary once all are through. While
    Firestore or Pub/Sub is down it fails (503), and the next run tries again."""
    from shared.http import unavailable_when_transient

    with unavailable_when_transient(
        "The dead-letter store or Pub/Sub is unavailable ({exc}); the next run retries.",
        logger=log,
        message="recovery run failed: %s",
        retry_after=60,
    ):
        report = recovery.recover(utcnow(), _redrivable())
    return report.model_dump()


@lru_cache(maxsize=1)
def _health() -> Any:
    from shared.health import store_and_topic

    return store_and_topic("deadletters", lambda: "alerts")


@api.route("/health", methods=["GET"], **HEALTH_ROUTE)
def health(request: flask.Request) -> flask.Response:
    from shared.health import status_code

    report = _health().report()
    return json_response(report, status_code(report))
