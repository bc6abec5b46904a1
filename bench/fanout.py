"""Alert fan-out bench, on the local stack (`python -m devtools.stack` on ports of its own).

(a) Breach → Slack: an OTLP/HTTP JSON batch with a breaching gauge point is POSTed to ingestion;
    ingestion publishes `metric-updates`, alert evaluation evaluates the rule at once and
    publishes the transition on `alerts`, fan-out posts to Slack. Measured: from just before the
    POST to the moment the Slack stand-in receives `chat.postMessage` (same process, same
    monotonic clock). Each trial is a new service, hence a new alert and a new group (critical,
    group_wait 0). Goal: p95 <= 5 s.
(b) Exactly once: each of N critical transitions is published three times on the `alerts` topic
    (three Pub/Sub messages, as a retrying publisher would) and its first push is also replayed
    twice straight to the push endpoint (as Pub/Sub redelivers). Measured: Slack messages and
    PagerDuty-channel notifications (the outbox, PagerDuty unset) per transition. Goal: exactly 1.

    .venv/bin/python bench/fanout.py [--trials 20] [--transitions 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.processes import free_port  # noqa: E402
from shared.topology import load_topology  # noqa: E402
from tests.fanout.standins import SlackStandIn  # noqa: E402

RULES = """
rules:
  - name: bench-fanout-breach
    metric: bench.fanout.latency
    agg: max
    window: 1m
    op: ">"
    threshold: 100
    for: 0s
    severity: critical
    group_by: [service]
    annotations:
      summary: "bench breach {value} on {labels}"
      runbook: ["nothing to do: this is the fan-out benchmark"]
"""


def otlp_batch(service: str, value: float) -> bytes:
    now_ns = str(time.time_ns())
    return json.dumps(
        {
            "resourceMetrics": [
                {
                    "resource": {
                        "attributes": [
                            {"key": "service.name", "value": {"stringValue": service}},
                            {"key": "cloud.region", "value": {"stringValue": "us-central1"}},
                        ]
                    },
                    "scopeMetrics": [
                        {
                            "metrics": [
                                {
                                    "name": "bench.fanout.latency",
                                    "unit": "ms",
                                    "gauge": {"dataPoints": [{"timeUnixNano": now_ns, "asDouble": value}]},
                                }
                            ]
                        }
                    ],
                }
            ]
        }
    ).encode()


def post(url: str, body: bytes, content_type: str = "application/json") -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


class Stack:
    """`python -m devtools.stack` on free ports, stopped with SIGINT."""

    def __init__(self, env: dict[str, str]) -> None:
        self.ports = {cap.port_env: free_port() for cap in load_topology().capabilities.values()} | {
            "ION_FIRESTORE_PORT": free_port(),
            "ION_PUBSUB_PORT": free_port(),
            "ION_REDIS_PORT": free_port(),
        }
        full_env = {
            k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST") and k != "REDIS_URL"
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


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def breach_to_slack(stack: Stack, slack: SlackStandIn, trials: int) -> list[float]:
    ingest = stack.url("ION_INGESTION_PORT") + "/v1/metrics"
    latencies: list[float] = []
    run = uuid.uuid4().hex[:6]
    for trial in range(trials):
        service = f"bench-{run}-{trial:03d}"
        seen = len(slack.messages)
        started = time.monotonic()
        post(ingest, otlp_batch(service, 500.0))
        if not wait_for(
            lambda service=service, seen=seen: any(service in m.all_text() for m in slack.messages[seen:]), 30
        ):
            print(f"  trial {trial}: no Slack message within 30 s", flush=True)
            continue
        arrived = next(
            t
            for t, method, status in slack.calls
            if method == "chat.postMessage" and status == 200 and t >= started
        )
        latencies.append(arrived - started)
    return latencies


def triple_redelivery(
    stack: Stack, slack: SlackStandIn, outbox: Path, project: str, count: int
) -> list[tuple[int, int]]:
    from google.cloud import pubsub_v1

    from shared.messages import AlertTransition
    from tests.pubsub_helpers import push_envelope

    os.environ["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{stack.ports['ION_PUBSUB_PORT']}"
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(project, "alerts")
    push_url = stack.url("ION_FANOUT_PORT") + f"/projects/{project}/topics/alerts"
    run = uuid.uuid4().hex[:6]
    transitions = []
    for i in range(count):
        at = datetime.now(UTC)
        fingerprint = f"bench-exactly-once-{run}-{i:03d}"
        transitions.append(
            AlertTransition(
                transition_id=f"{fingerprint}:firing",
                fingerprint=fingerprint,
                rule=f"bench-exactly-once-{run}-{i:03d}",
                kind="threshold",
                state="firing",
                previous_state="pending",
                severity="critical",
                metric="bench.fanout.latency",
                labels={"service": f"bench-eo-{run}-{i:03d}", "region": "us-central1"},
                annotations={"summary": f"exactly-once {run}-{i}"},
                value=500,
                threshold=100,
                op=">",
                starts_at=at,
                evaluated_at=at,
            )
        )
    for t in transitions:
        data = t.model_dump_json().encode()
        for _ in range(3):
            publisher.publish(topic, data).result(timeout=10)
        envelope = json.dumps(
            push_envelope(t.model_dump(mode="json"), message_id=f"direct-{t.transition_id}")
        ).encode()
        for _ in range(2):
            for _attempt in range(10):  # a 5xx (another instance holds the claim) is redelivered
                try:
                    post(push_url, envelope)
                    break
                except urllib.error.HTTPError:
                    time.sleep(0.5)
    time.sleep(5)  # let every push land
    counts = []
    for t in transitions:
        slack_count = sum(1 for m in slack.messages if t.rule in m.all_text())
        pd_count = sum(
            1
            for p in outbox.glob("*-pagerduty.json")
            if json.loads(p.read_text())["notification"]["alerts"][0]["transition_id"] == t.transition_id
        )
        counts.append((slack_count, pd_count))
    publisher.stop()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--transitions", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    rules = workdir / "rules.yaml"
    rules.write_text(RULES)
    outbox = workdir / "outbox"
    slack = SlackStandIn()
    project = "ion-ops-bench"
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        "ION_RUN_DIR": str(workdir / "run"),
        "ION_RULES_FILE": str(rules),
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_CHANNEL": next(iter(slack.channels)),
        "SLACK_API_BASE_URL": slack.base_url,
        "ION_FANOUT_OUTBOX": str(outbox),
    }
    for var in ("PAGERDUTY_ROUTING_KEY", "SMTP_HOST"):
        os.environ.pop(var, None)
    stack = Stack(env)
    try:
        started = time.monotonic()
        stack.wait_ready()
        print(
            f"stack ready in {time.monotonic() - started:.1f}s (logs in {workdir / 'run' / 'logs'})",
            flush=True,
        )
        post(stack.url("ION_INGESTION_PORT") + "/v1/metrics", otlp_batch("bench-warmup", 500.0))
        wait_for(lambda: any("bench-warmup" in m.all_text() for m in slack.messages), 60)
        latencies = breach_to_slack(stack, slack, args.trials)
        print(f"(a) breach -> Slack, {len(latencies)}/{args.trials} trials on the local stack")
        if latencies:
            print(
                f"    p50 {statistics.median(latencies):.2f} s   p95 {percentile(latencies, 0.95):.2f} s   "
                f"max {max(latencies):.2f} s   (goal p95 <= 5 s; Prometheus worst case: "
                "for + 1m scrape + 1m eval + 30s group_wait)"
            )
        counts = triple_redelivery(stack, slack, outbox, project, args.transitions)
        slack_counts = [c[0] for c in counts]
        pd_counts = [c[1] for c in counts]
        print(f"(b) {len(counts)} transitions, each published 3x on `alerts` and pushed 2x more directly")
        print(
            f"    Slack messages per transition: min {min(slack_counts)} max {max(slack_counts)}; "
            f"PagerDuty (outbox) per transition: min {min(pd_counts)} max {max(pd_counts)}"
            "   (goal: exactly 1)"
        )
        return 0 if latencies and set(slack_counts) == {1} and set(pd_counts) == {1} else 1
    finally:
        stack.stop()
        slack.close()


if __name__ == "__main__":
    sys.exit(main())
