"""Today's estimate reads Cloud Run's instance count as stored by ingestion: one series per service,
revision, state and region. The instances running are the sum of those series (each averaged
over the hour), not their average."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from functions.cost.settings import DEFAULT_PRICES_FILE
from functions.cost.usage import StoreMetrics, estimate_today, load_prices
from shared.clock import FrozenClock, set_clock
from tests.ingest_client import ingest_client
from tests.ingestion.otlp_builders import gauge, request

NOW = datetime(2026, 3, 2, 2, 0, 30, tzinfo=UTC)
SERIES = {  # (service, region, revision, state) -> instances
    ("persona-router", "us-central1", "r-41", "active"): 5.0,
    ("persona-router", "us-central1", "r-41", "idle"): 1.0,
    ("persona-router", "europe-west1", "r-17", "active"): 2.0,
    ("route", "us-central1", "route-00003", "active"): 1.0,
}


@pytest.mark.emulators
def test_the_estimate_counts_every_instance_of_every_series(fs, emulators) -> None:  # type: ignore[no-untyped-def]
    set_clock(FrozenClock(NOW))
    client = ingest_client(emulators.project)
    midnight = NOW.replace(hour=0, minute=0, second=0)
    minutes = [midnight + timedelta(minutes=k, seconds=30) for k in range(120)]
    for (service, region, revision, state), value in SERIES.items():
        points = [(t, value, {"revision": revision, "state": state}) for t in minutes]
        batch = request([gauge("cloudrun.container.instance.count", points)], service=service, region=region)
        answer = client.post(
            "/v1/metrics", data=batch.SerializeToString(), content_type="application/x-protobuf"
        )
        assert answer.status_code == 200, answer.data
    estimate = estimate_today(StoreMetrics(), load_prices(DEFAULT_PRICES_FILE), NOW)
    # 9 instances for 2 hours; averaging the four series would have said 2.25.
    assert estimate.basis["Cloud Run"].startswith(f"{9 * 2 * 3600} instance-seconds")
