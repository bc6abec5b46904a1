"""Retrier: exponential backoff with jitter, Retry-After honoured, bounded by attempts and time."""

from __future__ import annotations

import pytest

from functions.fanout.channels.base import DeliveryError, DeliveryFailed, Retrier, parse_retry_after


class FakeTime:
    """A deterministic monotonic clock whose sleep advances it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def flaky(failures: list[DeliveryError]):  # type: ignore[no-untyped-def]
    def call() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    return call


def make(time: FakeTime, attempts: int = 4, budget: float = 20) -> Retrier:
    return Retrier(
        max_attempts=attempts,
        budget_seconds=budget,
        base_delay=0.5,
        max_delay=8,
        sleep=time.sleep,
        monotonic=time.monotonic,
    )


def test_retry_after_is_honoured_exactly() -> None:
    time = FakeTime()
    result = make(time).call("x", flaky([DeliveryError("429", retryable=True, retry_after=3)]))
    assert result == "ok"
    assert time.sleeps == [3]


def test_backoff_grows_exponentially_and_is_capped() -> None:
    time = FakeTime()
    errors = [DeliveryError("503", retryable=True) for _ in range(5)]
    with pytest.raises(DeliveryFailed, match="gave up after 6 attempts"):
        make(time, attempts=6, budget=1000).call("x", flaky([*errors, DeliveryError("503", retryable=True)]))
    caps = [0.5, 1, 2, 4, 8]
    assert len(time.sleeps) == 5
    assert all(0 <= s <= cap for s, cap in zip(time.sleeps, caps, strict=True))


def test_total_time_is_bounded_even_when_the_vendor_asks_for_more() -> None:
    time = FakeTime()
    with pytest.raises(DeliveryFailed, match="exceed the time budget"):
        make(time, budget=10).call("x", flaky([DeliveryError("429", retryable=True, retry_after=30)]))
    assert time.sleeps == []


def test_a_permanent_error_is_not_retried() -> None:
    time = FakeTime()
    with pytest.raises(DeliveryFailed, match="not retryable"):
        make(time).call("x", flaky([DeliveryError("400", retryable=False)]))
    assert time.sleeps == []


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 1.0
