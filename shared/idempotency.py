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
) -> Iterator[Claim]:
    """``with once("fanout", event_id) as first: if not first: return`` — first is false when done
    before; ``first.settle()`` makes the work done even if what follows it fails."""
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

    if not run_transaction(claim):
        yield Claim(ref, first=False)
        return
    held = Claim(ref, first=True)
    try:
        yield held
    except BaseException:
        if not held.settled:
            ref.delete()
        raise
    if not held.settled:
        ref.update({"state": "done"})


class Claim:
    """What ``once`` yields: true for the first claimant. ``settle()`` marks the work done at
    once, for work that cannot be taken back (a message a vendor accepted): whatever fails after
    it, the claim is not released, so a retry does not do the work again."""

    def __init__(self, ref: object, *, first: bool) -> None:
        self._ref = ref
        self.first = first
        self.settled = not first

    def __bool__(self) -> bool:
        return self.first

    def settle(self) -> None:
        if not self.settled:
            self._ref.update({"state": "done"})  # type: ignore[attr-defined]
            self.settled = True
