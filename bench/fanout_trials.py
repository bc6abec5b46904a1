"""The fan-out bench's measurements: (a) breach trials timed from the OTLP POST to the Slack and
PagerDuty stand-ins, with their percentiles; (b) transitions redelivered, counted at the vendors."""

from __future__ import annotations

import json
import math
import os
import sys
import time
import urllib.error
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fanout_stack import BreachGoesOn, Stack, otlp_batch, post  # noqa: E402
from tests.fanout.pagerduty_standin import PagerDutyStandIn, about_alert  # noqa: E402
from tests.fanout.slack_standin import SlackStandIn  # noqa: E402

SEVERITIES = ("critical", "high", "medium")
ARRIVAL_TIMEOUT = 30.0


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
            1 for e in pd.events if about_alert(e, t.fingerprint) and e["event_action"] == "trigger"
        )
        counts.append((slack_count, pd_count))
    publisher.stop()
    return counts
