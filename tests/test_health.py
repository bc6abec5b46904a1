"""/health checks: real probes of Firestore, the topic and Redis, cached briefly, 503 when one is
down, and never the exception's text."""

from __future__ import annotations

import pytest
import requests

from devtools.processes import free_port
from shared.health import HealthCheck, Probe, status_code

pytestmark = pytest.mark.emulators


def test_a_down_dependency_is_503_by_class_name_only_and_cached() -> None:
    calls = {"n": 0}

    def broken() -> None:
        calls["n"] += 1
        raise ConnectionRefusedError("connect to 10.1.2.3:6379 with password hunter2 refused")

    check = HealthCheck(
        "t", lambda: [Probe("ok", lambda: None), Probe("redis", broken), None], ttl_seconds=60
    )
    report = check.report()
    assert status_code(report) == 503
    assert report["checks"]["redis"] == {"ok": False, "error": "ConnectionRefusedError"}
    assert report["checks"]["ok"]["ok"] is True
    assert "hunter2" not in str(report)
    check.report()
    assert calls["n"] == 1  # cached: a probe storm is not load on the store
    assert status_code(HealthCheck("t", lambda: [Probe("ok", lambda: None)], 0).report()) == 200


@pytest.mark.parametrize(
    "capability", ["ingestion", "alerts", "fanout", "deadletters", "cost", "scaling", "reports", "health"]
)
def test_health_probes_the_real_dependencies(capability: str, fs, emulators, serve_capability) -> None:  # type: ignore[no-untyped-def]
    from devtools.pubsub_setup import create_topics_and_subscriptions
    from shared.topology import load_topology

    create_topics_and_subscriptions(load_topology(), emulators.project, lambda _cap: "http://127.0.0.1:9")
    up = serve_capability(capability)
    healthy = requests.get(f"{up.url}/health", timeout=30)
    assert healthy.status_code == 200, healthy.text
    checks = healthy.json()["checks"]
    assert checks["firestore"]["ok"] is True
    assert capability == "reports" or [name for name in checks if name.startswith("pubsub:")]
    down = serve_capability(capability, {"FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{free_port()}"})
    unhealthy = requests.get(f"{down.url}/health", timeout=30)
    assert unhealthy.status_code == 503
    assert unhealthy.json()["checks"]["firestore"]["ok"] is False
    assert "127.0.0.1" not in unhealthy.text


def test_a_missing_topic_is_down(fs, emulators, serve_capability) -> None:  # type: ignore[no-untyped-def]
    live = serve_capability("alerts", {"ION_ALERTS_TOPIC": "no-such-topic"})
    response = requests.get(f"{live.url}/health", timeout=30)
    assert response.status_code == 503
    assert response.json()["checks"]["pubsub:no-such-topic"] == {"ok": False, "error": "NotFound"}
