"""Firestore access that runs unchanged on the emulator (FIRESTORE_EMULATOR_HOST) and in the cloud.

The client is created on first use and kept for the life of the instance, so a cold start that
never touches Firestore never imports it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar

from shared.settings import get_settings

if TYPE_CHECKING:
    from google.cloud import firestore

T = TypeVar("T")


@lru_cache(maxsize=1)
def get_firestore() -> firestore.Client:
    from google.cloud import firestore

    return firestore.Client(project=get_settings().project)


@lru_cache(maxsize=1)
def get_route_firestore() -> firestore.Client:
    """The route database's client (``ION_ROUTE_DATABASE``): the public route's own collections,
    apart from everything that decides paging or access."""
    from google.cloud import firestore

    settings = get_settings()
    return firestore.Client(project=settings.project, database=settings.route_database)


def reset_clients() -> None:
    """Forget cached clients (tests switch emulators and projects between sessions)."""
    get_firestore.cache_clear()
    get_route_firestore.cache_clear()


def backoff(round_: int, base_delay: float, max_delay: float) -> None:
    """Sleep before retry round ``round_`` (1, 2, ...): full jitter, capped."""
    time.sleep(random.uniform(0, min(max_delay, base_delay * 2**round_)))


def run_transaction(
    work: Callable[[firestore.Transaction], T],
    *,
    client: firestore.Client | None = None,
    rounds: int = 6,
    attempts_per_round: int = 3,
    base_delay: float = 0.025,
    max_delay: float = 0.8,
) -> T:
    """Run ``work(transaction)`` in a Firestore transaction, bounded retries on contention.

    Within a round the client retries an aborted commit at once, keeping the transaction's place
    in line (what Firestore in the cloud honours). Between rounds we sleep with full jitter: the
    emulator's locks can livelock a handful of writers retrying in lockstep, and instances racing
    for one document in the cloud behave better spread out too. At most ``rounds`` times
    ``attempts_per_round`` attempts; then the last ``Aborted`` is raised (callers retry the event).
    """
    from google.api_core.exceptions import Aborted
    from google.cloud import firestore

    transactional = firestore.transactional(work)
    client = client or get_firestore()
    last: Aborted | None = None
    for round_ in range(rounds):
        if round_:
            backoff(round_, base_delay, max_delay)
        try:
            return transactional(client.transaction(max_attempts=attempts_per_round))
        except Aborted as exc:  # aborted on a read inside the transaction
            last = exc
        except ValueError as exc:  # the client's "failed to commit in N attempts"
            if not isinstance(exc.__cause__, Aborted):
                raise
            last = exc.__cause__
    assert last is not None
    raise last
