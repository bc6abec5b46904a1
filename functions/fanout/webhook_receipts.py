"""Signed requests handled before, so a replay of one is refused (401) even within Slack's five
minutes: a receipt per request (Slack: its signature; PagerDuty: its event id) in Firestore
``fanout_webhook_receipts``, written once the request was handled and kept a day. Only reads and
creates (the public function's Firestore role deletes nothing): two copies of one request racing
each other may both run, which the incident's own transaction makes harmless (the second
acknowledgement is a no-op, and a webhook's note is keyed by its event id)."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import timedelta
from typing import Literal

from shared.clock import utcnow
from shared.firestore import get_firestore

RECEIPTS = "fanout_webhook_receipts"
KEEP = timedelta(days=1)
Source = Literal["slack", "pagerduty"]


def _ref(source: Source, key: str) -> object:
    digest = hashlib.sha256(f"{source}\x00{key}".encode()).hexdigest()[:40]
    return get_firestore().collection(RECEIPTS).document(digest)


def handled_before(source: Source, key: str) -> bool:
    return bool(_ref(source, key).get().exists)  # type: ignore[attr-defined]


def remember(source: Source, key: str) -> None:
    from google.api_core.exceptions import AlreadyExists

    now = utcnow()
    # AlreadyExists: a copy of the same request handled at the same moment.
    with contextlib.suppress(AlreadyExists):
        _ref(source, key).create({"source": source, "handled_at": now, "expire_at": now + KEEP})  # type: ignore[attr-defined]
