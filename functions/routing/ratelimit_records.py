"""What the rate limiter (``ratelimit.py``) answers and keeps per key: the verdict, the lease of
tokens taken from Redis ahead of need, and the local bucket spent while Redis is down."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__
class Verdict:
    allowed: bool
    retry_after: float
    remaining: float


REFILLING = -2.0  # a lease's ``refill_at`` while its refill is queued or in flight


class Lease:
    """Tokens taken from Redis ahead of need, spent here until ``expires`` (monotonic). At
    ``refill_at`` tokens or fewer a refill is started in the background; -1 while one is in flight
    or after one found Redis short (then the next request that finds the lease empty asks)."""

    __slots__ = ("expires", "refill_at", "remote_left", "tokens")

    def __init__(self, tokens: float, expires: float, remote_left: float, refill_at: float) -> None:
        self.tokens = tokens
        self.expires = expires
        self.remote_left = remote_left
        self.refill_at = refill_at


def lease_size(rate: float, burst: int, configured: int) -> int:
    """Tokens an instance takes beyond a request's own: ``configured`` when set (1: no lease),
    else a tenth of a second of the rate, at most a tenth of the burst."""
    if configured > 0:
        return configured - 1
    return max(0, int(min(rate * 0.1, burst / 10)) - 1)


class LocalBucket:
    """A key's bucket in this instance alone, spent while Redis is unreachable."""

    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
