"""`make run`'s stack: starts every part on its port, prints `ready`, and leaves nothing
listening after SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
import requests

from devtools.processes import free_port, free_ports, port_open, python
from shared.topology import ROOT, load_topology


@pytest.mark.emulators
def test_stack_starts_everything_prints_ready_and_stops_clean(tmp_path) -> None:  # type: ignore[no-untyped-def]
    topo = load_topology()
    # Every port its own, so a `make run` on the same machine cannot make this fail, and distinct
    # (a capability once got a stand-in's port and answered /v2/route with 404).
    standin_vars = (
        "ION_FIRESTORE_PORT",
        "ION_PUBSUB_PORT",
        "ION_REDIS_PORT",
        "ION_CLOUDRUN_STANDIN_PORT",
        "ION_CLOUDTASKS_PORT",
        "ION_SCHEDULER_API_PORT",
        "ION_BIGQUERY_PORT",
        "ION_RECOMMENDER_PORT",
    )
    chosen = iter(free_ports(len(standin_vars) + len(topo.capabilities)))
    env = {
        **os.environ,
        "ION_RUN_DIR": str(tmp_path),
        **{var: str(next(chosen)) for var in standin_vars},
        "GOOGLE_CLOUD_PROJECT": "ion-ops-stack-test",
        "ION_METRICS_FLUSH_SECONDS": "1",
    }
    for var in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "REDIS_URL"):
        env.pop(var, None)
    ports = {}
    for name, cap in topo.capabilities.items():
        ports[name] = next(chosen)
        env[cap.port_env] = str(ports[name])
    serving = {fn.capability for fn in topo.functions.values()}

    proc = subprocess.Popen(
        [python(), "-m", "devtools.stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while not any(line.startswith("[stack] ready") for line in seen):
            assert proc.poll() is None, "".join(seen[-30:])
            assert time.monotonic() < deadline, "no `ready` within 180 s:\n" + "".join(seen[-30:])
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        output = "".join(seen)
        for port_var in ("ION_FIRESTORE_PORT", "ION_PUBSUB_PORT", "ION_REDIS_PORT"):
            assert port_open(int(env[port_var]))
        for cap in serving:
            assert f"http://127.0.0.1:{ports[cap]}" in output
            # Healthy once its dependencies answer; a cold client on a busy machine may first time out.
            deadline = time.monotonic() + 90
            health = requests.get(f"http://127.0.0.1:{ports[cap]}/health", timeout=60)
            while health.status_code != 200 and time.monotonic() < deadline:
                time.sleep(2)
                health = requests.get(f"http://127.0.0.1:{ports[cap]}/health", timeout=60)
            assert health.status_code == 200, (cap, health.text)
        assert (tmp_path / "logs" / "redis.log").exists()
        if "alerts" in serving:
            # The dead man's switch reads the local scheduler through the Cloud Scheduler API stand-in.
            with urllib.request.urlopen(
                f"http://127.0.0.1:{ports['alerts']}/v1/schedules", timeout=60
            ) as answer:
                schedules = json.load(answer)
            assert schedules["scheduler_api"] == "ok"
            assert {j["job"] for j in schedules["jobs"]} == set(topo.schedules)
        if {"routing", "ingestion"} <= serving:
            routed_requests_reach_the_query_api(
                f"http://127.0.0.1:{ports['routing']}", f"http://127.0.0.1:{ports['ingestion']}"
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    listening = [
        p
        for p in [
            *ports.values(),
            int(env["ION_FIRESTORE_PORT"]),
            int(env["ION_PUBSUB_PORT"]),
            int(env["ION_REDIS_PORT"]),
            int(env["ION_CLOUDRUN_STANDIN_PORT"]),
            int(env["ION_CLOUDTASKS_PORT"]),
        ]
        if port_open(p)
    ]
    assert listening == []


def routed_requests_reach_the_query_api(routing: str, ingestion: str) -> None:
    """routing -> Pub/Sub `metrics` -> ingest_pubsub -> Firestore -> GET /v1/query, within a minute."""
    started = datetime.now(UTC) - timedelta(minutes=1)

    def route(key: str) -> None:
        request = urllib.request.Request(
            f"{routing}/v2/route",
            data=json.dumps({"resonance_key": key}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()

    # Then nothing more: the batch is shipped between requests, not by a later one.
    for _ in range(20):
        route("calm-flowing-seek_advice")
    deadline = time.monotonic() + 60
    count = 0.0
    while time.monotonic() < deadline:
        params = urllib.parse.urlencode(
            {
                "metric": "http.server.request.duration",
                "agg": "count",
                "start": started.isoformat(),
                "end": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
                "label.service": "routing",
                "label.http.route": "/v2/route",
            }
        )
        with urllib.request.urlopen(f"{ingestion}/v1/query?{params}", timeout=10) as response:
            body = json.load(response)
        count = sum(point[1] for series in body["series"] for point in series["points"])
        if count >= 20:
            break
        time.sleep(1)
    assert count == 20, body


def test_stack_names_what_to_install_when_gcloud_is_missing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(python())
    env = {
        **os.environ,
        "PATH": str(bin_dir),  # no gcloud, no redis-server
        "ION_RUN_DIR": str(tmp_path),
        "ION_FIRESTORE_PORT": str(free_port()),
        "ION_PUBSUB_PORT": str(free_port()),
        "ION_REDIS_PORT": str(free_port()),
    }
    result = subprocess.run(
        [python(), "-m", "devtools.stack"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "gcloud not found" in result.stdout
    assert "cloud-firestore-emulator" in result.stdout
    assert "redis-server not found" in result.stdout
    assert "ready" not in result.stdout


def test_links_follow_the_ports_the_stack_serves_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the ports moved (a second stack beside another), a notification's links (silence,
    review, dashboard) and a report's point at this stack's functions, not at the default ports."""
    from devtools.stack import point_at_local_ports

    for name in ("ION_FANOUT_URL", "ION_FANOUT_PUBLIC_URL", "ION_REPORTS_PUBLIC_URL", "ION_DASHBOARD_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ION_REPORTS_URL", "http://127.0.0.1:18088")  # set by hand: kept
    point_at_local_ports({"fanout": 18084, "reports": 28088})
    assert os.environ["ION_FANOUT_URL"] == "http://127.0.0.1:18084"
    assert os.environ["ION_FANOUT_PUBLIC_URL"] == "http://127.0.0.1:18084"
    assert os.environ["ION_REPORTS_URL"] == "http://127.0.0.1:18088"
    assert os.environ["ION_REPORTS_PUBLIC_URL"] == "http://127.0.0.1:28088"
    assert os.environ["ION_DASHBOARD_URL"] == "http://127.0.0.1:28088/dashboards/overview"
