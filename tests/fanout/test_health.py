"""Fan-out's /health, served as deployed locally (functions-framework over real HTTP): with the
group timers on Cloud Tasks, the timer queue is a dependency probed through the real
google-cloud-tasks client against the Cloud Tasks stand-in: up, paused, deleted, and its server
process stopped."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from devtools.cloudtasks_standin import CloudTasksStandIn, CloudTasksState
from tests.conftest import PROJECT
from tests.fanout.conftest import Fanout
from tests.fanout.test_timers import timer_env

pytestmark = pytest.mark.emulators

PROBE = "cloudtasks:fanout-timers"
# Every /health call probes afresh, within the per-instance limit.
FRESH = {"ION_HEALTH_CACHE_SECONDS": "0", "ION_HEALTH_MAX_PROBES_PER_MINUTE": "600"}


def _health(url: str) -> tuple[int, dict[str, Any], str]:
    response = requests.get(f"{url}/health", timeout=30)
    return response.status_code, response.json(), response.text


def test_the_timer_queue_is_probed_and_its_failures_are_503(fanout: Fanout, serve_capability) -> None:  # type: ignore[no-untyped-def]
    state = CloudTasksState(PROJECT, "us-central1", {"fanout-timers"})
    standin = CloudTasksStandIn(state).start()
    try:
        live = serve_capability(
            "fanout", fanout.env | FRESH | timer_env(standin, "http://fanout.local/v1/flush/group")
        )
        status, report, _ = _health(live.url)
        assert status == 200, report
        assert report["checks"][PROBE]["ok"] is True
        assert {"firestore", PROBE} <= set(report["checks"])

        with state.lock:
            state.paused = True  # tasks wait: timers fire late, only the tick serves groups
        status, report, _ = _health(live.url)
        assert status == 503
        assert report["status"] == "degraded"
        assert report["checks"][PROBE] == {"ok": False, "error": "QueueNotRunning"}
        assert report["checks"]["firestore"]["ok"] is True

        with state.lock:
            state.paused = False
            state.queues.discard("fanout-timers")  # the queue was deleted
        status, report, _ = _health(live.url)
        assert status == 503
        assert report["checks"][PROBE] == {"ok": False, "error": "NotFound"}

        with state.lock:
            state.queues.add("fanout-timers")
        assert _health(live.url)[0] == 200
    finally:
        standin.close()


def test_a_timer_queue_api_that_is_down_is_503_naming_no_host(fanout: Fanout, serve_capability) -> None:  # type: ignore[no-untyped-def]
    from devtools.cloudtasks_standin import start_fanout_queue
    from devtools.processes import free_port
    from tests.conftest import LOG_DIR

    port = free_port()
    standin, env = start_fanout_queue(port, PROJECT, "us-central1", "http://fanout.local", log_dir=LOG_DIR)
    try:
        live = serve_capability("fanout", fanout.env | FRESH | env)
        assert _health(live.url)[0] == 200
    finally:
        standin.stop()
    status, report, text = _health(live.url)
    assert status == 503
    assert report["checks"][PROBE]["ok"] is False
    assert report["checks"]["firestore"]["ok"] is True
    assert str(port) not in text  # the exception text is logged, never answered
    assert "refused" not in text.lower()


def test_without_a_timer_queue_cloud_tasks_is_no_dependency(fanout: Fanout, serve_capability) -> None:  # type: ignore[no-untyped-def]
    live = serve_capability("fanout", fanout.env | FRESH)
    status, report, _ = _health(live.url)
    assert status == 200, report
    assert not any(name.startswith("cloudtasks") for name in report["checks"])
