"""The fan-out bench's local stack: `python -m devtools.stack` on free ports, traffic into its
ingestion (OTLP/HTTP JSON, a breach kept going), and what its Cloud Tasks stand-in dispatched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.processes import free_port  # noqa: E402
from shared.topology import load_topology  # noqa: E402


def otlp_batch(service: str, metric: str, value: float) -> bytes:
    return otlp_batches([(service, metric)], value)


def otlp_batches(series: list[tuple[str, str]], value: float) -> bytes:
    """One OTLP/HTTP JSON export with a gauge point per (service, metric)."""
    now_ns = str(time.time_ns())
    resources = []
    for service, metric in series:
        attributes = [
            {"key": "service.name", "value": {"stringValue": service}},
            {"key": "cloud.region", "value": {"stringValue": "us-central1"}},
        ]
        gauge = {"dataPoints": [{"timeUnixNano": now_ns, "asDouble": value}]}
        metrics = [{"name": metric, "unit": "ms", "gauge": gauge}]
        resources.append({"resource": {"attributes": attributes}, "scopeMetrics": [{"metrics": metrics}]})
    return json.dumps({"resourceMetrics": resources}).encode()


class BreachGoesOn:
    """Keeps each trial's breach going (a point every ``every`` seconds, as an exporter would)
    until its notification arrived: an alert that resolved inside its group_wait is rightly
    never notified, so without this medium would measure nothing."""

    def __init__(self, ingest_url: str, every: float = 5.0) -> None:
        self.ingest_url, self.every = ingest_url, every
        self.active: dict[str, str] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        threading.Thread(target=self._run, name="breach", daemon=True).start()

    def add(self, service: str, metric: str) -> None:
        with self.lock:
            self.active[service] = metric

    def done(self, service: str) -> None:
        with self.lock:
            self.active.pop(service, None)

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            with self.lock:
                series = list(self.active.items())
            if series:
                try:
                    post(self.ingest_url, otlp_batches(series, 500.0))
                except OSError as exc:
                    print(f"  (keeping the breach going failed: {exc})", flush=True)

    def stop(self) -> None:
        self.stopped.set()


def post(url: str, body: bytes, content_type: str = "application/json") -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


# Ports of the stack's own stand-ins, besides each capability's: all free ones, so the bench never
# collides with a `make run` or another bench on the machine.
STANDIN_PORTS = (
    "ION_FIRESTORE_PORT",
    "ION_PUBSUB_PORT",
    "ION_REDIS_PORT",
    "ION_SCHEDULER_API_PORT",
    "ION_CLOUDRUN_STANDIN_PORT",
    "ION_BIGQUERY_PORT",
    "ION_RECOMMENDER_PORT",
    "ION_CLOUDTASKS_PORT",
)


class Stack:
    """`python -m devtools.stack` on free ports, stopped with SIGINT."""

    def __init__(self, env: dict[str, str]) -> None:
        names = [cap.port_env for cap in load_topology().capabilities.values()] + list(STANDIN_PORTS)
        ports: set[int] = set()
        while len(ports) < len(names):  # free_port() may hand out a number twice once released
            ports.add(free_port())
        self.ports = dict(zip(names, sorted(ports), strict=True))
        full_env = {
            k: v
            for k, v in os.environ.items()
            if not k.endswith("_EMULATOR_HOST") and k != "REDIS_URL" and not k.startswith("ION_FANOUT_TASKS")
        }
        full_env.update(env)
        full_env.update({k: str(v) for k, v in self.ports.items()})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.stack"],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("[stack]") and " ready " in f" {line} ":
                self.ready.set()

    def url(self, port_env: str) -> str:
        return f"http://127.0.0.1:{self.ports[port_env]}"

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "".join(self.lines[-30:])
                raise SystemExit(f"the stack did not start:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def timers_dispatched(stack: Stack) -> str:
    try:
        with urllib.request.urlopen(
            stack.url("ION_CLOUDTASKS_PORT") + "/_standin/tasks", timeout=10
        ) as answer:
            summary = json.load(answer)
    except OSError as exc:
        return f"unknown ({exc})"
    statuses = [a["status"] for a in summary["attempts"]]
    armed = len(summary["tasks"])
    return f"{armed} timers armed, {len(statuses)} dispatched ({statuses.count(200)} answered 200)"
