"""Experiment mode: Thompson sampling over named weight sets, sticky per user, learning from feedback.

Each arm's chance of a helpful answer has a Beta(1 + helpful, 1 + not helpful) posterior, read
from the feedback totals in Firestore every ``ION_EXPERIMENT_REFRESH_SECONDS`` (on a request; no
background thread) and moved at once by feedback this instance receives. A new user gets the arm
whose posterior draw is highest; the draw is seeded by the user id, so the same posteriors give
the same arm on every instance, and the choice is then stored in Redis (SET NX, 30 days) so it
stays put while the posteriors move. Without Redis the seeded draw alone keeps users on their arm
between posterior refreshes. A request without ``user_id`` draws afresh.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cachetools import TTLCache

from functions.routing.config import Experiment
from functions.routing.feedback import Totals, read_arm_totals
from shared.logging import get_logger
from shared.redis import get_redis

if TYPE_CHECKING:
    import redis

log = get_logger("routing.experiment")

ASSIGNMENT_TTL_SECONDS = 30 * 24 * 3600
TotalsReader = Callable[[str, list[str]], dict[str, Totals]]


class Bandit:
    def __init__(
        self,
        experiment: Experiment,
        *,
        refresh_seconds: float,
        redis_client: Callable[[], redis.Redis | None] = get_redis,
        read_totals: TotalsReader = read_arm_totals,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = experiment.name
        self.arms = list(experiment.arms)
        self._refresh_seconds = refresh_seconds
        self._redis_client = redis_client
        self._read_totals = read_totals
        self._timer = timer
        self._lock = threading.Lock()
        # Learnt counts per arm: [helpful, not helpful]. The posterior adds the Beta(1, 1) prior.
        self._counts: list[list[int]] = [[0, 0] for _ in self.arms]
        self._assignments: TTLCache[str, int] = TTLCache(maxsize=20_000, ttl=3600)
        self._next_refresh = 0.0
        self._rng = random.Random()

    # Learning ----------------------------------------------------------------------------------

    def refresh_if_due(self) -> None:
        if self._timer() < self._next_refresh:
            return
        self._next_refresh = self._timer() + self._refresh_seconds
        try:
            totals = self._read_totals(self.name, self.arms)
        except Exception as exc:  # noqa: BLE001 - keep the posteriors we have; retried next period
            log.warning("could not refresh experiment posteriors", extra={"error": repr(exc)})
            return
        with self._lock:
            for index, arm in enumerate(self.arms):
                found = totals.get(arm)
                if found is not None:
                    self._counts[index] = [found.helpful, found.not_helpful]

    def refresh_now(self) -> None:
        """Feedback handled by this instance moves its posteriors at once."""
        self._next_refresh = 0.0
        self.refresh_if_due()

    def posteriors(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {
                arm: {"alpha": 1 + h, "beta": 1 + n, "mean": round((1 + h) / (2 + h + n), 4)}
                for arm, (h, n) in zip(self.arms, self._counts, strict=True)
            }

    # Choosing ----------------------------------------------------------------------------------

    def _draw(self, rng: random.Random) -> int:
        with self._lock:
            draws = [rng.betavariate(1 + h, 1 + n) for h, n in self._counts]
        return max(range(len(draws)), key=draws.__getitem__)

    def _seed(self, user_id: str) -> int:
        digest = hashlib.blake2b(f"{self.name}\x00{user_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def assign(self, user_id: str | None) -> int:
        """The arm index for this request (sticky for a user)."""
        self.refresh_if_due()
        if user_id is None:
            return self._draw(self._rng)
        with self._lock:
            known = self._assignments.get(user_id)
        if known is not None:
            return known
        chosen = self._draw(random.Random(self._seed(user_id)))
        client = self._redis_client()
        if client is not None:
            name = f"ion:routing:arm:{self.name}:{self._seed(user_id):016x}"
            try:
                previous = client.set(name, self.arms[chosen], nx=True, get=True, ex=ASSIGNMENT_TTL_SECONDS)
            except Exception as exc:  # noqa: BLE001 - Redis down: the seeded draw stands
                log.warning("experiment assignment store unavailable", extra={"error": repr(exc)})
            else:
                if previous is not None and previous.decode() in self.arms:
                    chosen = self.arms.index(previous.decode())
        with self._lock:
            self._assignments[user_id] = chosen
        return chosen
