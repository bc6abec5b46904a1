"""The one interface every channel implements, and the bounded retry every vendor call goes through.

A channel turns a ``Notification`` into vendor calls, each made through ``Retrier.call``. A
vendor error is a ``DeliveryError`` saying whether it is worth retrying and, for 429, how long
the vendor asked us to wait (``Retry-After``). ``Retrier`` retries with capped exponential
backoff and full jitter, honouring ``Retry-After``, bounded by attempts per call and by total time
per delivery; when the bound is hit it raises ``DeliveryFailed`` with the reason, which sends the
delivery to the dead-letter topic.

A call a vendor cannot take twice goes through ``Retrier.step``: its answer is written to the
delivery's ``Journal`` the moment the vendor accepts it, before anything else of ours can fail, so
a retried or re-driven delivery skips it and reuses the answer instead of sending it again.
"""

from __future__ import annotations

import hashlib
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
    """A delivery given up: not retryable, or out of attempts or time. ``retryable`` says whether
    trying again later may succeed (a vendor outage) or cannot (the vendor refused the call)."""

    def __init__(self, reason: str, attempts: int, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts
        self.retryable = retryable


class Journal(Protocol):
    """The vendor calls of one delivery already accepted, with the answers we keep of them."""

    def accepted(self, step: str) -> dict[str, Any] | None: ...

    def record(self, step: str, answer: dict[str, Any]) -> None: ...


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
        journal: Journal | None = None,
    ) -> None:
        self.max_attempts = max_attempts
        self.journal = journal
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
                    raise DeliveryFailed(
                        f"{what}: {exc.reason} (not retryable)", self.attempts, retryable=False
                    ) from exc
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

    def step(self, step: str, what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``call`` for a vendor call made at most once per delivery: skipped when the journal
        says the vendor accepted it before (its answer returned), else recorded as soon as it is
        accepted. ``step`` names the call within the delivery by its content (letters, digits,
        ``_``), so a retry that sends fewer alerts still recognises what went out."""
        if self.journal is not None:
            answer = self.journal.accepted(step)
            if answer is not None:
                log.info("skipping %s: the vendor accepted it before", what, extra={"step": step})
                return answer
        answer = self.call(what, fn)
        if self.journal is not None:
            # The first write after the vendor accepted: failing here is the one window left.
            self.journal.record(step, answer)
        return answer


def step_key(kind: str, *parts: str) -> str:
    """A journal step named by what it sends: ``kind`` and a digest of ``parts``."""
    return f"{kind}_{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:20]}"


class Channel(Protocol):
    """A place notifications go. ``send`` returns a receipt (logged, stored with the delivery)."""

    name: str

    def send(self, notification: Notification, retrier: Retrier) -> dict[str, Any]: ...
