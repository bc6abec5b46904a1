"""Alert fan-out bench, end to end on the local stack (`python -m devtools.stack` on ports of its
own: emulators, every capability, the Cloud Tasks stand-in serving fan-out's group timers, the
local scheduler with its minute ticks) with the Slack, PagerDuty and SMTP stand-ins.

(a) Breach → Slack, per severity: an OTLP/HTTP JSON batch with a breaching gauge point is POSTed
    to ingestion; ingestion publishes `metric-updates`, alert evaluation evaluates the rule at
    once and publishes the transition on `alerts`, fan-out notifies. Measured: from just before
    the POST to the Slack stand-in receiving `chat.postMessage` (same process, same monotonic
    clock); for critical also to the PagerDuty stand-in receiving the event. Each trial is a new
    service, hence a new alert and a new group. Rounds of critical, high, medium from the moment
    the stack is ready: the first breach after start is trial 0, nothing is warmed up or dropped.
    Critical and high go at once (group_wait 0); medium waits its group_wait (30 s), served by a
    Cloud Tasks timer. Medium trials are not waited for one by one: they overlap the later rounds.
    A trial that never arrives (30 s; medium: group_wait + 60 s) is counted as failed and
    shown; the percentiles count it as infinitely late. Goals: p95 <= 5 s for critical and high,
    medium within group_wait + 5 s.
(b) Exactly once: each of N critical transitions is published three times on the `alerts` topic
    (three Pub/Sub messages, as a retrying publisher would) and its first push is also replayed
    twice straight to the push endpoint (as Pub/Sub redelivers). Measured: Slack messages and
    PagerDuty events (the PagerDuty stand-in) per transition. Goal: exactly 1.

    .venv/bin/python bench/fanout.py [--trials 20] [--transitions 20]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.processes import free_port  # noqa: E402
from functions.fanout.routes import load_routing  # noqa: E402
from functions.fanout.settings import DEFAULT_ROUTING_FILE  # noqa: E402
from shared.topology import load_topology  # noqa: E402
from tests.fanout.standins import PagerDutyStandIn, SlackStandIn, SmtpServer  # noqa: E402

SEVERITIES = ("critical", "high", "medium")
RULES = "rules:\n" + "".join(
    f"""  - name: bench-fanout-{severity}
    metric: bench.fanout.{severity}
    agg: max
    window: 1m
    op: ">"
    threshold: 100
    for: 0s
    severity: {severity}
    group_by: [service]
    annotations:
      summary: "bench {severity} breach {{value}} on {{labels}}"
      runbook: ["nothing to do: this is the fan-out benchmark"]
"""
    for severity in SEVERITIES
)
ARRIVAL_TIMEOUT = 30.0


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


@dataclass
class Trial:
    severity: str
    service: str
    started: float
    slack_seen: int = 0  # messages and events the stand-ins held before this trial
    pd_seen: int = 0
    slack: float | None = None  # seconds from the POST to Slack, None until it arrives
    pagerduty: float | None = None


def arrived_in(slack: SlackStandIn, trial: Trial) -> float | None:
    for message in slack.messages[trial.slack_seen :]:
        if trial.service in message.all_text():
            return message.received_at - trial.started
    return None


def pagerduty_in(pd: PagerDutyStandIn, trial: Trial) -> float | None:
    for event, at in zip(pd.events[trial.pd_seen :], pd.received_at[trial.pd_seen :], strict=False):
        if trial.service in json.dumps(event):
            return at - trial.started
    return None


def settle(trials: list[Trial], slack: SlackStandIn, pd: PagerDutyStandIn) -> None:
    for trial in trials:
        if trial.slack is None:
            trial.slack = arrived_in(slack, trial)
        if trial.severity == "critical" and trial.pagerduty is None:
            trial.pagerduty = pagerduty_in(pd, trial)


def wait_for(predicate, timeout: float, poll: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate``; the latencies come from the stand-ins' own arrival times, not from here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def breach_rounds(
    stack: Stack, slack: SlackStandIn, pd: PagerDutyStandIn, rounds: int, medium_wait: float
) -> list[Trial]:
    ingest = stack.url("ION_INGESTION_PORT") + "/v1/metrics"
    run = uuid.uuid4().hex[:6]
    trials: list[Trial] = []
    feeder = BreachGoesOn(ingest)

    def collect() -> bool:
        settle(trials, slack, pd)
        for trial in trials:
            if trial.slack is not None:
                feeder.done(trial.service)
        return all(t.slack is not None for t in trials)

    try:
        for index in range(rounds):
            for severity in SEVERITIES:
                service = f"bench-{run}-{severity}-{index:03d}"
                trial = Trial(severity, service, time.monotonic(), len(slack.messages), len(pd.events))
                post(ingest, otlp_batch(trial.service, f"bench.fanout.{severity}", 500.0))
                trials.append(trial)
                feeder.add(trial.service, f"bench.fanout.{severity}")
                if severity != "medium":  # medium is collected at the end: its wait overlaps later rounds
                    wait_for(lambda trial=trial: arrived_in(slack, trial) is not None, ARRIVAL_TIMEOUT)
                    if severity == "critical":
                        wait_for(lambda trial=trial: pagerduty_in(pd, trial) is not None, 5)
                collect()
        last_medium = max(t.started for t in trials if t.severity == "medium")
        wait_for(collect, max(last_medium + medium_wait + 60 - time.monotonic(), 0), poll=0.5)
    finally:
        feeder.stop()
    collect()
    return trials


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def seconds(value: float) -> str:
    return "never (failed)" if math.isinf(value) else f"{value:.2f} s"


def report(label: str, latencies: list[float | None], goal: str) -> float:
    values = [math.inf if v is None else v for v in latencies]
    failed = sum(1 for v in values if math.isinf(v))
    p95 = percentile(values, 0.95)
    print(
        f"    {label:22s} {len(values) - failed}/{len(values)} arrived, {failed} failed   "
        f"p50 {seconds(percentile(values, 0.5))}   p95 {seconds(p95)}   max {seconds(max(values))}   "
        f"first {seconds(values[0])}   ({goal})",
        flush=True,
    )
    return p95


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


def triple_redelivery(
    stack: Stack, slack: SlackStandIn, pd: PagerDutyStandIn, project: str, count: int
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
                rule=fingerprint,
                kind="threshold",
                state="firing",
                previous_state="pending",
                severity="critical",
                metric="bench.fanout.critical",
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
        slack_count = sum(1 for m in slack.messages if t.rule in m.all_text() and m.thread_ts is None)
        pd_count = sum(
            1 for e in pd.events if e.get("dedup_key") == t.fingerprint and e["event_action"] == "trigger"
        )
        counts.append((slack_count, pd_count))
    publisher.stop()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20, help="trials per severity")
    parser.add_argument("--transitions", type=int, default=20)
    args = parser.parse_args()
    medium_wait = load_routing(DEFAULT_ROUTING_FILE).route("medium").group_wait.total_seconds()
    workdir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    rules = workdir / "rules.yaml"
    rules.write_text(RULES)
    slack, pd, smtp = SlackStandIn(), PagerDutyStandIn(), SmtpServer()
    project = "ion-ops-bench"
    env = {
        "GOOGLE_CLOUD_PROJECT": project,
        "ION_RUN_DIR": str(workdir / "run"),
        "ION_RULES_FILE": str(rules),
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_CHANNEL": next(iter(slack.channels)),
        "SLACK_API_BASE_URL": slack.base_url,
        "PAGERDUTY_ROUTING_KEY": pd.routing_key,
        "PAGERDUTY_EVENTS_URL": pd.url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "ALERT_EMAIL_TO": "oncall@example.com",
        "ION_FANOUT_OUTBOX": str(workdir / "outbox"),
    }
    stack = Stack(env)
    try:
        started = time.monotonic()
        stack.wait_ready()
        print(
            f"stack ready in {time.monotonic() - started:.1f}s (logs in {workdir / 'run' / 'logs'})",
            flush=True,
        )
        trials = breach_rounds(stack, slack, pd, args.trials, medium_wait)
        print(
            f"(a) breach (OTLP at ingestion) -> vendor, local stack, {args.trials} trials per severity, "
            "the first breach after start included (trial 0 = the stack's first alert)"
        )
        met = True
        for severity in SEVERITIES:
            latencies = [t.slack for t in trials if t.severity == severity]
            goal = (
                "goal p95 <= 5 s" if severity != "medium" else f"goal <= group_wait {medium_wait:.0f} s + 5 s"
            )
            p95 = report(f"{severity} -> Slack", latencies, goal)
            met &= p95 <= (5.0 if severity != "medium" else medium_wait + 5.0)
        report(
            "critical -> PagerDuty",
            [t.pagerduty for t in trials if t.severity == "critical"],
            "goal p95 <= 5 s",
        )
        print(f"    group timers (Cloud Tasks stand-in): {timers_dispatched(stack)}")
        counts = triple_redelivery(stack, slack, pd, project, args.transitions)
        slack_counts, pd_counts = [c[0] for c in counts], [c[1] for c in counts]
        print(
            f"(b) {len(counts)} critical transitions, each published 3x on `alerts` "
            "and pushed 2x more directly"
        )
        print(
            f"    Slack messages per transition: min {min(slack_counts)} max {max(slack_counts)}; "
            f"PagerDuty events per transition: min {min(pd_counts)} max {max(pd_counts)}   (goal: exactly 1)"
        )
        once = set(slack_counts) == {1} and set(pd_counts) == {1}
        return 0 if met and once else 1
    finally:
        stack.stop()
        for standin in (slack, pd, smtp):
            standin.close()


if __name__ == "__main__":
    sys.exit(main())
