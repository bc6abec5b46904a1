"""The external dead man's switch: each full evaluation cycle pings ION_ALERTS_HEARTBEAT_URL once,
through the real functions-framework app, checked by the local stand-in that records pings; a ping
that fails or hangs never fails or holds the cycle beyond its timeout; deployed, evaluate_alerts
refuses to start without an https URL outside ION; the cycle's completion line is the one the
Terraform log-based metric counts (the "no evaluation for 3 minutes" policy)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devtools import heartbeat_standin
from devtools.processes import free_port
from functions.alerts.heartbeat import HeartbeatPinger, shown
from functions.alerts.settings import deployment_problems
from tests.test_topology_and_terraform import TERRAFORM, load_hcl

SECRET_PATH = "/ping/0b7e6f1c-secret-check-uuid"


@pytest.fixture
def standin() -> Iterator[Any]:
    server = heartbeat_standin.start(free_port())
    yield server
    server.shutdown()
    server.server_close()


def _url(server: Any, path: str = SECRET_PATH) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


# --- the pinger --------------------------------------------------------------------------------


def test_unconfigured_pings_nothing_and_says_so() -> None:
    pinger = HeartbeatPinger(None)
    assert pinger.ping() is None
    status = pinger.status()
    assert status["configured"] is False
    assert "ION_ALERTS_HEARTBEAT_URL unset" in str(status["detail"])


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_ping_reaches_the_switch_once(standin: Any, method: str) -> None:
    pinger = HeartbeatPinger(_url(standin), method, timeout=5)  # type: ignore[arg-type]
    ping = pinger.ping(b"rules=3")
    assert ping is not None
    assert ping.ok
    assert ping.detail == "HTTP 200"
    [received] = standin.pings
    assert (received["path"], received["method"]) == (SECRET_PATH, method)
    assert received["body"] == ("rules=3" if method == "POST" else "")
    status = pinger.status()
    assert status["pings"] == 1
    assert status["failures"] == 0
    # The URL's path is the switch's secret: never shown.
    assert "secret" not in json.dumps(status)
    assert shown(_url(standin)) == "http://127.0.0.1/..."


def test_a_failing_switch_is_logged_not_raised(standin: Any) -> None:
    standin.status = 503
    ping = HeartbeatPinger(_url(standin), timeout=5).ping()
    assert ping is not None
    assert not ping.ok
    assert ping.detail == "HTTP 503"
    closed = HeartbeatPinger(f"http://127.0.0.1:{free_port()}/ping", timeout=5).ping()
    assert closed is not None
    assert not closed.ok
    assert "URLError" in closed.detail


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/ping/switch-secret-0f3a the rest",  # a space pasted in: InvalidURL
        "switch.invalid/ping/switch-secret-0f3a",  # the scheme left out: unknown url type
    ],
)
def test_a_url_urllib_refuses_is_not_quoted_in_the_log_or_the_status(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pinger = HeartbeatPinger(url.format(port=free_port()), timeout=5)
    ping = pinger.ping()
    assert ping is not None
    assert not ping.ok
    captured = capsys.readouterr()
    logged = [line for line in captured.out.splitlines() if line.startswith("{")]
    assert logged
    # stderr too: an exception escaping the ping's thread is printed there, traceback and all.
    for text in [*logged, captured.err, json.dumps(pinger.status())]:
        assert "switch-secret" not in text, text
    assert "[redacted]" in ping.detail  # what went wrong is still said


def test_a_hanging_switch_holds_the_cycle_no_longer_than_the_timeout(standin: Any) -> None:
    standin.delay_seconds = 5.0
    started = time.monotonic()
    ping = HeartbeatPinger(_url(standin), timeout=0.5).ping()
    waited = time.monotonic() - started
    assert ping is not None
    assert not ping.ok
    assert ping.detail == "timed out after 0.5 s"
    assert waited < 1.5, waited


# --- the start check ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (None, "ION_ALERTS_HEARTBEAT_URL is not set"),
        ("http://hc-ping.com/abc", "must be an https:// URL"),
        ("https://127.0.0.1:8693/ping", "loopback"),
        ("https://localhost/ping", "loopback"),
        ("https://evaluate-alerts-123456789012.us-central1.run.app/", "outside ION"),
        ("https://hc-ping.com/0b7e 6f1c", "contains a space or control character"),
        ("https://hc-ping.com/0b7e6f1c\n", "contains a space or control character"),
        ("https://hc-ping.com/0b7e6f1c", None),
    ],
)
def test_evaluate_alerts_refuses_to_start_without_an_external_https_heartbeat(
    monkeypatch: pytest.MonkeyPatch, url: str | None, problem: str | None
) -> None:
    monkeypatch.delenv("ION_ALERTS_HEARTBEAT_URL", raising=False)
    if url is not None:
        monkeypatch.setenv("ION_ALERTS_HEARTBEAT_URL", url)
    problems = deployment_problems("evaluate_alerts")
    if problem is None:
        assert problems == []
    else:
        assert any(p.startswith("ION_ALERTS_HEARTBEAT_URL") and problem in p for p in problems), problems
    # The on-ingest evaluator pings nothing and needs no URL.
    assert deployment_problems("evaluate_alerts_on_ingest") == []


# --- through functions-framework -----------------------------------------------------------------


def _cycle_metric_conditions() -> dict[str, str]:
    """The jsonPayload and service conditions of Terraform's log-based metric of full cycles."""
    parsed = load_hcl(TERRAFORM / "logging.tf")
    [metric] = [
        body
        for block in parsed["resource"]
        for kind, named in block.items()
        if kind == "google_logging_metric"
        for name, body in named.items()
        if name == "evaluation_cycles"
    ]
    conditions = dict(re.findall(r'jsonPayload\.([a-z_]+)\s*=\s*\\?"([^"\\]+)\\?"', metric["filter"]))
    assert conditions, metric["filter"]
    assert 'resource.labels.service_name=\\"evaluate-alerts\\"' in metric["filter"] or (
        'resource.labels.service_name="evaluate-alerts"' in metric["filter"]
    )
    return conditions


def _logged(live: Any, wanted: dict[str, str], timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for line in live.process.tail:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and all(entry.get(k) == v for k, v in wanted.items()):
                found.append(entry)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.mark.emulators
def test_each_evaluation_cycle_pings_the_switch_once(fs, serve_capability, standin) -> None:  # type: ignore[no-untyped-def]
    live = serve_capability("alerts", env={"ION_ALERTS_HEARTBEAT_URL": _url(standin)})
    for expected in (1, 2):
        cycle = requests.post(f"{live.url}/", timeout=60)
        assert cycle.status_code == 200, cycle.text
        assert cycle.json()["heartbeat"] == {"ok": True, "detail": "HTTP 200"}
        assert len(standin.pings) == expected
    # A partial evaluation (named rules) is no cycle of every rule: the switch hears nothing.
    rule = requests.get(f"{live.url}/v1/rules", timeout=10).json()["rules"][0]["name"]
    assert requests.post(f"{live.url}/v1/evaluate", json={"rules": [rule]}, timeout=60).status_code == 200
    assert len(standin.pings) == 2
    assert {p["path"] for p in standin.pings} == {SECRET_PATH}
    assert {p["user_agent"] for p in standin.pings} == {"ion-ops-evaluate-alerts"}

    health = requests.get(f"{live.url}/health", timeout=10).json()
    assert health["heartbeat"]["configured"] is True
    assert "secret" not in json.dumps(health)

    # Each full cycle wrote the line Terraform's metric counts; the partial one did not match.
    conditions = _cycle_metric_conditions()
    assert len(_logged(live, conditions)) == 2


@pytest.mark.emulators
def test_a_hanging_switch_does_not_fail_the_cycle(fs, serve_capability, standin) -> None:  # type: ignore[no-untyped-def]
    standin.delay_seconds = 10.0
    live = serve_capability(
        "alerts",
        env={"ION_ALERTS_HEARTBEAT_URL": _url(standin), "ION_ALERTS_HEARTBEAT_TIMEOUT_SECONDS": "1"},
    )
    cycle = requests.post(f"{live.url}/", timeout=60)
    assert cycle.status_code == 200
    assert cycle.json()["heartbeat"] == {"ok": False, "detail": "timed out after 1 s"}
    assert _logged(live, {"severity": "WARNING", "heartbeat_ok": False})


@pytest.mark.emulators
def test_locally_unset_means_no_ping_and_health_says_so(fs, serve_capability) -> None:  # type: ignore[no-untyped-def]
    live = serve_capability("alerts", env={"ION_ALERTS_HEARTBEAT_URL": ""})
    cycle = requests.post(f"{live.url}/", timeout=60)
    assert cycle.status_code == 200
    assert "unset" in cycle.json()["heartbeat"]
    assert requests.get(f"{live.url}/health", timeout=10).json()["heartbeat"]["configured"] is False
