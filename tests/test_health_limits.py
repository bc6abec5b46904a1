"""/health is cheap and bounded per instance: however many callers arrive, few probe rounds reach
Firestore, Pub/Sub or Redis; callers never queue behind a running probe; before any report exists
the answer beyond the limit is 429 with Retry-After."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from shared.health import HealthBusy, HealthCheck, Probe


def test_a_flood_with_no_cache_starts_only_the_burst_of_probe_rounds() -> None:
    rounds = {"n": 0}
    lock = threading.Lock()

    def slow_store() -> None:
        with lock:
            rounds["n"] += 1
        time.sleep(0.02)

    check = HealthCheck("t", lambda: [Probe("firestore", slow_store)], ttl_seconds=0, max_probes_per_minute=6)
    outcomes: list[object] = []

    def call(_: int) -> None:
        try:
            outcomes.append(check.report()["status"])
        except HealthBusy as busy:
            outcomes.append(busy)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(call, range(400)))
    # The burst plus at most one refill (one every 10 s) in the time the flood takes.
    assert rounds["n"] <= HealthCheck.PROBE_BURST + 1
    assert outcomes.count("ok") + sum(isinstance(o, HealthBusy) for o in outcomes) == 400
    for busy in (o for o in outcomes if isinstance(o, HealthBusy)):
        assert busy.retry_after == 10


def test_before_any_report_a_caller_beyond_the_limit_gets_429_with_retry_after() -> None:
    started, release = threading.Event(), threading.Event()

    def blocking() -> None:
        started.set()
        release.wait(5)

    check = HealthCheck("t", lambda: [Probe("firestore", blocking)], ttl_seconds=0, max_probes_per_minute=60)
    first = threading.Thread(target=check.report)
    first.start()
    started.wait(5)
    with pytest.raises(HealthBusy) as busy:  # does not wait for the running probe
        check.report()
    assert busy.value.retry_after == 1
    release.set()
    first.join()
    assert check.report()["status"] == "ok"


@pytest.mark.emulators
def test_a_live_health_flood_is_answered_without_5xx_beyond_the_probe(fs, serve_capability) -> None:  # type: ignore[no-untyped-def]
    live = serve_capability(
        "reports", env={"ION_HEALTH_CACHE_SECONDS": "0", "ION_HEALTH_MAX_PROBES_PER_MINUTE": "1"}
    )

    def call(_: int) -> requests.Response:
        return requests.get(f"{live.url}/health?deep=true", timeout=30)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(call, range(60)))
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 429}, statuses
    assert 200 in statuses
    for response in responses:
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "60"
            assert response.headers["Content-Type"] == "application/problem+json"
