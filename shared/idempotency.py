"""Idempotency by event id: a Firestore marker claimed in a transaction, so a redelivered Pub/Sub
event (or two instances handling the same one at once) does its work once.

A claim is a lease: the marker says ``processing`` until the work succeeds (``done``). If the work
raises, the marker is removed so the retry runs it again; if the instance dies mid-way, the lease
expires and a later delivery takes over. Markers expire by Firestore TTL on ``expire_at``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from shared.clock import utcnow
from shared.firestore import get_firestore, run_transaction

COLLECTION = "idempotency"


class InFlight(Exception):
    """Another instance holds the lease; raising lets Pub/Sub redeliver later."""


class Marker(BaseModel):
    scope: str
    key: str
    state: Literal["processing", "done"]
    lease_until: datetime
    expire_at: datetime


def marker_id(scope: str, key: str) -> str:
    # Hashed: event ids grow monotonically, and monotonic document ids hotspot Firestore.
    return hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()[:40]


@contextmanager
def once(
    scope: str,
    key: str,
    *,
    lease: timedelta = timedelta(minutes=5),
    keep: timedelta = timedelta(days=7),
) -> Iterator[bool]:
    """``with once("fanout", event_id) as first: if not first: return`` — first is False when done before."""
    from google.cloud import firestore

    client = get_firestore()
    ref = client.collection(COLLECTION).document(marker_id(scope, key))

    def claim(transaction: firestore.Transaction) -> bool:
        now = utcnow()
        snapshot = ref.get(transaction=transaction)
        if snapshot.exists:
            marker = Marker.model_validate(snapshot.to_dict())
            if marker.state == "done":
                return False
            if marker.lease_until > now:
                raise InFlight(f"{scope}/{key} is being processed elsewhere until {marker.lease_until}")
        transaction.set(
            ref,
            Marker(
                scope=scope, key=key, state="processing", lease_until=now + lease, expire_at=now + keep
            ).model_dump(),
        )
        return True

    first = run_transaction(claim)
    if not first:
        yield False
        return
    try:
        yield True
    except BaseException:
        ref.delete()
        raise
    ref.update({"state": "done"})
