"""The one interface every channel implements, and the bounded retry every vendor call goes through.

A channel turns a ``Notification`` into vendor calls, each made through ``Retrier.call``. A
vendor error is a ``DeliveryError`` saying whether it is worth retrying and, for 429, how long
the vendor asked us to wait (``Retry-After``). ``Retrier`` retries with capped exponential
backoff and full jitter, honouring ``Retry-After``, bounded by attempts per call and by total time
per delivery; when the bound is hit it raises ``DeliveryFailed`` with the reason, which sends the
delivery to the dead-letter topic.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from functions.fanout.models import Notification
from shared.logging import get_logger

T = TypeVar("T")
log = get_logger("fanout.retry")


class DeliveryError(Exception):
    """One failed vendor call."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class DeliveryFailed(Exception):
    """A delivery given up: not retryable, or out of attempts or time."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds; an HTTP date counts as 1 s)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


class Retrier:
    def __init__(
        self,
        *,
        max_attempts: int,
        budget_seconds: float,
        base_delay: float,
        max_delay: float,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._monotonic = monotonic
        self.deadline = monotonic() + budget_seconds
        self.attempts = 0

    def call(self, what: str, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            try:
                return fn()
            except DeliveryError as exc:
                if not exc.retryable:
                    raise DeliveryFailed(f"{what}: {exc.reason} (not retryable)", self.attempts) from exc
                if attempt >= self.max_attempts:
                    raise DeliveryFailed(
                        f"{what}: {exc.reason} (gave up after {attempt} attempts)", self.attempts
                    ) from exc
                if exc.retry_after is not None:
                    delay = exc.retry_after
                else:
                    delay = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
                if self._monotonic() + delay > self.deadline:
                    raise DeliveryFailed(
                        f"{what}: {exc.reason} (retry in {delay:.1f}s would exceed the time budget)",
                        self.attempts,
                    ) from exc
                log.warning(
                    "retrying %s in %.2fs: %s",
                    what,
                    delay,
                    exc.reason,
                    extra={"attempt": attempt, "retry_after": exc.retry_after},
                )
                self._sleep(delay)


class Channel(Protocol):
    """A place notifications go. ``send`` returns a receipt (logged, stored with the delivery)."""

    name: str

    def send(self, notification: Notification, retrier: Retrier) -> dict[str, Any]: ...
