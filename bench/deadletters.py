"""Dead letters bench: store time per dead-lettered message through the real path, with its
Firestore writes and reads and its alert; a redelivered envelope and large messages beside small
ones; re-drive time per message; listing time over 1,000 stored letters.

    .venv/bin/python bench/deadletters.py            # the whole bench (about 2 minutes)
    .venv/bin/python bench/deadletters.py --quick    # fewer messages, 200 letters to list

The real path: the Firestore and Pub/Sub emulators, and the capability served by
``devtools.serve``'s app under functions-framework's gunicorn in a child process. Store: Pub/Sub
push envelopes POSTed to ``/projects/P/topics/<topic>-dead-letter`` one at a time, shaped as the
emulator's dead-letter push sends them (captured from it: ``message`` with both key spellings,
the ``CloudPubSubDeadLetterSource*`` attributes beside the original ones); functions-framework
turns each into a CloudEvent. Re-drive and listing: the HTTP API on the same server. Firestore
writes and reads are counted at the client inside the server (its gRPC commit, batch-get and
query calls wrapped, documents counted), and so are Pub/Sub publishes; the child exposes the
counts on ``/_bench/counts``, a path the bench's wrapper adds around the capability's app. Every
alert and re-driven message is pulled back from the emulator and counted.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROJECT = "ion-ops-bench"
COUNTED = ("writes", "refused", "reads", "publishes")
SMALL_BYTES = 1_000
# A letter keeps its data base64-encoded (4/3 larger) in one Firestore property, which holds at
# most 1,048,487 bytes: about 786 KB of data, far below Pub/Sub's 10 MB.
LARGE_BYTES = 750_000
OVER_BYTES = 800_000


@dataclass(frozen=True)
class Plan:
    per_case: int  # small messages stored per case
    per_large_case: int  # 100 KB and 750 KB messages stored per case
    letters: int  # small letters stored to list and re-drive
    reps: int  # GETs per listing
    redrives: int  # re-drives per topic
    large_listed: int  # 750 KB letters added among them for the last listing


FULL = Plan(per_case=200, per_large_case=20, letters=1_000, reps=5, redrives=100, large_listed=50)
QUICK = Plan(per_case=30, per_large_case=5, letters=200, reps=3, redrives=30, large_listed=10)


# --- the server side (a child process) --------------------------------------------------------


class Counts:
    """Firestore documents written (commits that succeeded), refused (commits that failed, e.g.
    a create of a letter already stored) and read (found documents returned by gets and
    queries), and Pub/Sub messages published, in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values = dict.fromkeys(COUNTED, 0)

    def add(self, name: str, n: int) -> None:
        with self.lock:
            self.values[name] += n

    def install(self) -> None:
        from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

        import shared.pubsub

        counts = self
        original_commit = FirestoreClient.commit
        original_batch_get = FirestoreClient.batch_get_documents
        original_run_query = FirestoreClient.run_query
        original_publish = shared.pubsub.publish

        def writes_of(request: Any) -> int:
            writes = request.get("writes") if isinstance(request, dict) else getattr(request, "writes", None)
            return len(writes or [])

        def commit(self, request=None, **kwargs):  # type: ignore[no-untyped-def]
            try:
                response = original_commit(self, request=request, **kwargs)
            except Exception:
                counts.add("refused", writes_of(request))
                raise
            counts.add("writes", writes_of(request))
            return response

        def found(responses: Iterable[Any], field: str) -> Iterable[Any]:
            for response in responses:
                if type(response).pb(response).HasField(field):
                    counts.add("reads", 1)
                yield response

        def batch_get_documents(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return found(original_batch_get(self, *args, **kwargs), "found")

        def run_query(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return found(original_run_query(self, *args, **kwargs), "document")

        def publish(*args, **kwargs):  # type: ignore[no-untyped-def]
            message_id = original_publish(*args, **kwargs)
            counts.add("publishes", 1)
            return message_id

        FirestoreClient.commit = commit  # type: ignore[method-assign]
        FirestoreClient.batch_get_documents = batch_get_documents  # type: ignore[method-assign]
        FirestoreClient.run_query = run_query  # type: ignore[method-assign]
        shared.pubsub.publish = publish  # type: ignore[assignment]


def serve(port: int) -> None:
    """The capability's app as ``devtools.serve`` builds it, plus ``/_bench/counts``."""
    from functions_framework._http.gunicorn import GunicornApplication

    from devtools.serve import build_app

    os.chdir(ROOT)
    counts = Counts()
    counts.install()
    app = build_app("deadletters")

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/_bench/counts":
            with counts.lock:
                values = dict(counts.values)
            values["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            body = json.dumps(values).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        return app(environ, start_response)

    import resource

    GunicornApplication(counted, "127.0.0.1", port, False, control_socket_disable=True).run()


# --- the driving side -------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Envelopes:
    """Push envelopes as the Pub/Sub emulator's dead-letter push sends them."""

    def __init__(self) -> None:
        self.next_id = 1_000_000

    def envelope(
        self, topic: str, data: bytes, attributes: dict[str, str], *, from_pubsub: bool = True
    ) -> tuple[str, dict[str, Any]]:
        """(message id, envelope) of a message dead-lettered from ``topic``: by Pub/Sub after its
        subscription's attempts (``from_pubsub``), or published there directly (fan-out)."""
        self.next_id += 1
        message_id = str(self.next_id)
        now = datetime.now(UTC)
        if from_pubsub:
            attributes = {
                **attributes,
                "CloudPubSubDeadLetterSourceSubscription": f"{topic}-to-subscriber",
                "CloudPubSubDeadLetterSourceSubscriptionProject": PROJECT,
                "CloudPubSubDeadLetterSourceDeliveryCount": "10",
                "CloudPubSubDeadLetterSourceTopicPublishTime": rfc3339(now - timedelta(minutes=3)),
            }
        message = {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": rfc3339(now),
            "publish_time": rfc3339(now),
        }
        envelope = {
            "subscription": f"projects/{PROJECT}/subscriptions/{topic}-dead-letter-to-store_dead_letters",
            "message": message,
        }
        return message_id, envelope


def _transition_body(**fields: Any) -> bytes:
    from shared.notices import notice_transition

    return notice_transition(at=datetime.now(UTC), **fields).model_dump_json().encode()


def alert_body(n: int) -> bytes:
    """An alert transition as the alert engine publishes it (about 700 bytes)."""
    return _transition_body(
        notice_id=f"cost/anomaly/{n}",
        source="cost",
        name="anomaly",
        severity="high",
        summary="Cloud Run spend 3.1x its 14-day baseline today",
        labels={"service": "Cloud Run"},
        annotations={"baseline": "41.20 USD", "today": "127.72 USD"},
        value=127.72,
        threshold=82.4,
        metric="cost.daily",
    )


def own_alert_body(n: int) -> bytes:
    """A dead-letter alert that was itself dead-lettered (fan-out down): stored, never re-alerted."""
    return _transition_body(
        notice_id=f"dead-letter/{n}",
        source="deadletters",
        name="dead-letter",
        severity="critical",
        summary="A message on metrics was dead-lettered: not acknowledged after 10 delivery attempts",
        labels={"topic": "metrics"},
    )


def metrics_json(size: int) -> bytes:
    """An OTLP/HTTP JSON metrics export of ``size`` bytes or a little more, one gauge point per
    series (a large batch is also slow to parse: the store tries the body for a reason)."""
    point = {"timeUnixNano": str(time.time_ns()), "asDouble": 12.5}

    def resource(i: int) -> dict[str, Any]:
        attributes = [
            {"key": "service.name", "value": {"stringValue": "persona-router"}},
            {"key": "series", "value": {"stringValue": f"s{i:06d}"}},
        ]
        metric = {"name": "ion.route.latency", "unit": "ms", "gauge": {"dataPoints": [point]}}
        return {"resource": {"attributes": attributes}, "scopeMetrics": [{"metrics": [metric]}]}

    each = len(json.dumps(resource(0))) + 2  # every series has the same length, plus ", "
    count = max(1, math.ceil((size - len('{"resourceMetrics": []}') + 2) / each))
    return json.dumps({"resourceMetrics": [resource(i) for i in range(count)]}).encode()


class Server:
    def __init__(self, log_dir: Path) -> None:
        from devtools.processes import ManagedProcess, free_port, python, wait_until_http

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = ManagedProcess(
            "deadletters-bench",
            [python(), str(Path(__file__).resolve()), "--serve", str(port)],
            env={
                "PYTHONUNBUFFERED": "1",
                "ION_DEADLETTERS_URL": "https://ops.example.com/dl",
                # Every letter alerts on its own, as the figures below were measured: the alert
                # pipeline's letters would otherwise wait for the recovery run (not benched).
                "ION_DEAD_LETTERS_RECOVER_TOPICS": "",
            },
            log_dir=log_dir,
            cwd=ROOT,
        )
        wait_until_http(f"{self.url}/health", self.process, 90)

    def counts(self, session: Any) -> dict[str, int]:
        return dict(session.get(f"{self.url}/_bench/counts", timeout=10).json())

    def stop(self) -> None:
        self.process.stop()


class Watch:
    """A new pull subscription on a topic, to count what the server publishes there from now on."""

    created = 0

    def __init__(self, topic: str) -> None:
        from google.cloud import pubsub_v1

        Watch.created += 1
        self.subscriber = pubsub_v1.SubscriberClient()
        self.name = self.subscriber.subscription_path(PROJECT, f"bench-watch-{topic}-{Watch.created}")
        self.subscriber.create_subscription(name=self.name, topic=f"projects/{PROJECT}/topics/{topic}")

    def drain(self, want: int, quiet_seconds: float = 10.0) -> list[Any]:
        """Pull and acknowledge until ``want`` messages came or none for ``quiet_seconds``."""
        messages: list[Any] = []
        quiet_until = time.monotonic() + quiet_seconds
        while time.monotonic() < quiet_until and len(messages) < want:
            # Four re-driven 750 KB messages stay under the client's 4 MiB gRPC receive limit.
            response = self.subscriber.pull(request={"subscription": self.name, "max_messages": 4}, timeout=5)
            if response.received_messages:
                ack_ids = [m.ack_id for m in response.received_messages]
                self.subscriber.acknowledge(request={"subscription": self.name, "ack_ids": ack_ids})
                messages += [m.message for m in response.received_messages]
                quiet_until = time.monotonic() + quiet_seconds
        return messages


def create_topics() -> None:
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    from shared.topology import topology

    publisher = pubsub_v1.PublisherClient()
    for name in topology().topics:
        for topic in (name, f"{name}-dead-letter"):
            with contextlib.suppress(AlreadyExists):
                publisher.create_topic(name=publisher.topic_path(PROJECT, topic))


def reset_firestore() -> None:
    from devtools.emulators import reset_firestore as reset
    from shared import firestore

    reset(os.environ["FIRESTORE_EMULATOR_HOST"], PROJECT)
    firestore.reset_clients()


class Row:
    def __init__(self, case: str, severity: str, size: int) -> None:
        self.case, self.severity, self.size = case, severity, size
        self.timings: list[float] = []
        self.statuses: dict[int, int] = {}
        self.per_message: dict[str, float] = {}


def timed_posts(
    session: Any, server: Server, row: Row, requests_: list[tuple[str, bytes]], method: str = "POST"
) -> None:
    before = server.counts(session)
    for url, body in requests_:
        t0 = time.perf_counter()
        answer = session.request(
            method, url, data=body or None, headers={"Content-Type": "application/json"}, timeout=120
        )
        row.timings.append(time.perf_counter() - t0)
        row.statuses[answer.status_code] = row.statuses.get(answer.status_code, 0) + 1
    after = server.counts(session)
    row.per_message = {k: (after[k] - before[k]) / len(requests_) for k in COUNTED}


def print_rows(title: str, rows: list[Row]) -> None:
    print()
    print(title)
    print(
        f"{'case':<44}{'alert':>9}{'size':>9}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'writes':>8}{'refused':>8}{'reads':>7}{'pub':>6}  answers"
    )
    for row in rows:
        c = row.per_message
        answers = ", ".join(f"{n}x {code}" for code, n in sorted(row.statuses.items()))
        print(
            f"{row.case:<44}{row.severity:>9}{human_bytes(row.size):>9}{len(row.timings):>5}"
            f"{median(row.timings) * 1000:>9.1f}{percentile(row.timings, 0.95) * 1000:>9.1f}"
            f"{c['writes']:>8.2f}{c['refused']:>8.2f}{c['reads']:>7.2f}{c['publishes']:>6.2f}  {answers}"
        )


def human_bytes(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    if n >= 1_000:
        return f"{n / 1_000:.0f} KB"
    return f"{n} B"


def push_url(server: Server, topic: str) -> str:
    return f"{server.url}/projects/{PROJECT}/topics/{topic}-dead-letter"


def bench_store(session: Any, server: Server, plan: Plan) -> None:
    n, n_large = plan.per_case, plan.per_large_case
    envelopes = Envelopes()
    alerts_watch = Watch("alerts")
    rows: list[Row] = []

    def case(
        name: str,
        severity: str,
        topic: str,
        count: int,
        body: Callable[[int], bytes],
        *,
        attributes: dict[str, str],
        from_pubsub: bool = True,
    ) -> tuple[Row, list[tuple[str, bytes]]]:
        posts = []
        size = 0
        for i in range(count):
            data = body(i)
            size = len(data)
            _, envelope = envelopes.envelope(topic, data, attributes, from_pubsub=from_pubsub)
            posts.append((push_url(server, topic), json.dumps(envelope).encode()))
        row = Row(name, severity, size)
        timed_posts(session, server, row, posts)
        rows.append(row)
        return row, posts

    # Warm-up (imports, clients, first Firestore and Pub/Sub calls), not measured.
    warm = Row("warm-up", "-", 0)
    timed_posts(
        session,
        server,
        warm,
        [
            (push_url(server, "metrics"), json.dumps(envelopes.envelope("metrics", b"x", {})[1]).encode())
            for _ in range(10)
        ],
    )
    first, then = warm.timings[0] * 1000, median(warm.timings[1:]) * 1000
    alerts_watch.drain(want=len(warm.timings), quiet_seconds=5)  # the warm-up's notices, not counted
    print(f"warm-up (not in the table): the first push {first:.0f} ms (cold worker), then p50 {then:.1f} ms")

    alert_attributes = {"severity": "high", "state": "firing", "rule": "cost-anomaly"}
    metric_attributes = {"content_type": "application/json"}
    _, alert_posts = case(
        "alerts, an alert transition", "critical", "alerts", n, alert_body, attributes=alert_attributes
    )
    small_metrics = [metrics_json(SMALL_BYTES) for _ in range(n)]
    case(
        "metrics, OTLP JSON batch",
        "high",
        "metrics",
        n,
        lambda i: small_metrics[i],
        attributes=metric_attributes,
    )
    case(
        "alert-deliveries, fan-out gave up (reason)",
        "critical",
        "alert-deliveries",
        n,
        lambda i: json.dumps(
            {"reason": "Slack answered 403 channel_not_found", "transition_id": f"t{i}", "channel": "slack"}
        ).encode(),
        attributes={"channel": "slack"},
        from_pubsub=False,
    )
    case(
        "alerts, an alert about a dead letter",
        "none",
        "alerts",
        n,
        own_alert_body,
        attributes=alert_attributes,
    )
    redelivered = Row("alerts, redelivered (same message id)", "none", rows[0].size)
    timed_posts(session, server, redelivered, alert_posts)
    rows.append(redelivered)
    medium, large, over = metrics_json(100_000), metrics_json(LARGE_BYTES), metrics_json(OVER_BYTES)
    case(
        "metrics, OTLP JSON batch",
        "high",
        "metrics",
        n_large,
        lambda i: medium,
        attributes=metric_attributes,
    )
    case(
        "metrics, about the most one document holds",
        "high",
        "metrics",
        n_large,
        lambda i: large,
        attributes=metric_attributes,
    )
    case(
        "metrics, over 1 MiB once base64",
        "high",
        "metrics",
        3,
        lambda i: over,
        attributes=metric_attributes,
    )
    print_rows(
        "store: one push envelope at a time to store_dead_letters (per message: Firestore documents "
        "written / refused / read, Pub/Sub publishes)",
        rows,
    )

    stored_alerting = sum(r.statuses.get(200, 0) for r in rows if r.severity in ("critical", "high"))
    # Everything that arrives until 5 s of quiet: a duplicate notice would show as one too many.
    notices = alerts_watch.drain(want=stored_alerting + 1_000_000, quiet_seconds=5)
    by_severity: dict[str, int] = {}
    for message in notices:
        severity = json.loads(message.data)["severity"]
        by_severity[severity] = by_severity.get(severity, 0) + 1
    print(
        f"alerts pulled back from topic alerts: {len(notices)} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(by_severity.items()))}); "
        f"expected {stored_alerting}: one per stored letter that alerts, none for a redelivery "
        "or an alert about a dead letter"
    )


def seed_letters(count: int) -> list[str]:
    """``count`` letters stored by the store's own code (half alerts, 40% metrics, 10% fan-out
    give-ups), in process, several at once. Returns their ids."""
    from functions.deadletters import letters, store
    from shared.events import PubSubMessage

    now = datetime.now(UTC)

    def one(i: int) -> str:
        topic = "alerts" if i % 10 < 5 else "metrics" if i % 10 < 9 else "alert-deliveries"
        data = alert_body(i) if topic == "alerts" else metrics_json(SMALL_BYTES)
        attributes = {"CloudPubSubDeadLetterSourceDeliveryCount": "10"}
        message = PubSubMessage(
            event_id=f"seed-{i}",
            message_id=f"seed-{i:05d}",
            topic=f"{topic}-dead-letter",
            publish_time=now - timedelta(seconds=i),
            attributes=attributes if topic != "alert-deliveries" else {},
            data=data if topic != "alert-deliveries" else json.dumps({"reason": "SMTP 550"}).encode(),
        )
        return store.store(letters.from_message(message, now - timedelta(seconds=count - i))).id

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def seed_large(count: int) -> None:
    from functions.deadletters import letters, store
    from shared.events import PubSubMessage

    now = datetime.now(UTC)
    large = metrics_json(LARGE_BYTES)
    for i in range(count):
        message = PubSubMessage(
            event_id=f"large-{i}",
            message_id=f"large-{i:05d}",
            topic="metrics-dead-letter",
            publish_time=now,
            attributes={},
            data=large,
        )
        store.store(letters.from_message(message, now))


def bench_listing_and_redrive(session: Any, server: Server, plan: Plan) -> None:
    letters, reps, n_redrive, n_large_listed = plan.letters, plan.reps, plan.redrives, plan.large_listed
    reset_firestore()
    t0 = time.perf_counter()
    ids = seed_letters(letters)
    seeded = time.perf_counter() - t0
    print(f"\n{letters:,} letters stored (in process, the store's code) to list and re-drive: {seeded:.1f} s")

    base = f"{server.url}/v1/dead-letters"
    listings = [
        ("?limit=10", "newest 10"),
        ("", "default (limit 100)"),
        ("?limit=1000", "limit 1000"),
        ("?topic=alerts&limit=100", "topic=alerts, limit 100"),
    ]

    def measure(label: str, query: str) -> None:
        timings, sizes, answers = [], [], set()
        before = server.counts(session)
        for _ in range(reps):
            t = time.perf_counter()
            answer = session.get(base + query, timeout=120)
            timings.append(time.perf_counter() - t)
            sizes.append(len(answer.content))
            answers.add(answer.status_code)
            returned = len(answer.json()["dead_letters"]) if answer.status_code == 200 else 0
        after = server.counts(session)
        reads = (after["reads"] - before["reads"]) / reps
        print(
            f"{label:<52}{reps:>5}{median(timings) * 1000:>9.0f}{max(timings) * 1000:>9.0f}"
            f"{returned:>9}{reads:>9.0f}{median(sizes) / 1024:>10.1f}{after['peak_rss_kb'] / 1024:>9.0f}"
            f"  {sorted(answers)}"
        )

    print()
    print(
        f"listing: GET /v1/dead-letters over {letters:,} stored letters (reads: Firestore documents per GET; "
        "peak MB: the server worker's peak resident memory so far, the function has 256 MiB)"
    )
    print(
        f"{'query':<52}{'n':>5}{'p50 ms':>9}{'max ms':>9}{'letters':>9}{'reads':>9}{'body KB':>10}"
        f"{'peak MB':>9}  answers"
    )
    session.get(f"{base}?limit=1", timeout=120)  # the first query's own set-up, not measured
    for query, label in listings:
        measure(label, query)
    seed_large(n_large_listed)
    measure(f"newest 10, with {n_large_listed} letters of 750 KB among them", "?limit=10")

    alert_ids = [i for i in ids if int(i.split("-")[1]) % 10 < 5]
    metric_ids = [i for i in ids if 5 <= int(i.split("-")[1]) % 10 < 9]
    give_up_ids = [i for i in ids if int(i.split("-")[1]) % 10 == 9]
    alerts_watch, metrics_watch = Watch("alerts"), Watch("metrics")
    rows = []
    for name, chosen in (
        ("an alerts letter to topic alerts", alert_ids[:n_redrive]),
        ("a 1 KB metrics letter to topic metrics", metric_ids[:n_redrive]),
        ("the same alerts letters again (already redriven)", alert_ids[: max(1, n_redrive // 4)]),
        (
            "a 750 KB metrics letter to topic metrics",
            [f"large-{i:05d}" for i in range(min(10, n_large_listed))],
        ),
        ("an alert-deliveries letter to topic alert-deliveries", give_up_ids[: max(1, n_redrive // 4)]),
        ("unknown id (404)", [f"missing-{i}" for i in range(max(1, n_redrive // 4))]),
    ):
        row = Row(name, "", 0)
        timed_posts(session, server, row, [(f"{base}/{letter}/redrive", b"") for letter in chosen])
        rows.append(row)
    print()
    print("re-drive: POST /v1/dead-letters/{id}/redrive, one at a time (per message)")
    print(f"{'case':<52}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'writes':>8}{'reads':>7}{'pub':>6}  answers")
    for row in rows:
        c = row.per_message
        answers = ", ".join(f"{n}x {code}" for code, n in sorted(row.statuses.items()))
        print(
            f"{row.case:<52}{len(row.timings):>5}{median(row.timings) * 1000:>9.1f}"
            f"{percentile(row.timings, 0.95) * 1000:>9.1f}{c['writes']:>8.2f}{c['reads']:>7.2f}"
            f"{c['publishes']:>6.2f}  {answers}"
        )
    expected_alerts = len(rows[0].timings) + len(rows[2].timings)
    expected_metrics = len(rows[1].timings) + len(rows[3].timings)
    got_alerts = [m for m in alerts_watch.drain(want=expected_alerts) if "redriven_from" in m.attributes]
    got_metrics = [m for m in metrics_watch.drain(want=expected_metrics) if "redriven_from" in m.attributes]
    print(
        f"re-driven messages pulled back: alerts {len(got_alerts)} of {expected_alerts}, "
        f"metrics {len(got_metrics)} of {expected_metrics} (every re-drive publishes, a repeated one too)"
    )


def start_emulators(log_dir: Path) -> list[Any]:
    from devtools.emulators import start_firestore_and_pubsub
    from devtools.processes import free_port

    fs_port, ps_port = free_port(), free_port()
    started = list(start_firestore_and_pubsub(fs_port, ps_port, PROJECT, log_dir=log_dir))
    os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{fs_port}"
    os.environ["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{ps_port}"
    return started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="30 messages per case, 200 letters to list")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
    if args.serve:
        serve(args.serve)
        return
    os.environ["ION_LOG_LEVEL"] = "WARNING"  # the bench's own process; the server logs as deployed

    import requests

    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    load_before = os.getloadavg()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-deadletters-"))
    emulators = start_emulators(log_dir)
    server = None
    try:
        create_topics()
        server = Server(log_dir)
        print(
            f"dead letters bench: {os.cpu_count()} cores, load {load_before[0]:.1f} at start; "
            f"emulators and the capability under functions-framework's gunicorn (1 worker, "
            f"{(os.cpu_count() or 1) * 4} threads), requests one at a time over loopback; "
            f"logs in {log_dir}"
        )
        with requests.Session() as session:
            bench_store(session, server, plan)
            bench_listing_and_redrive(session, server, plan)
    finally:
        if server is not None:
            server.stop()
        for proc in emulators:
            proc.stop()
    load_after = os.getloadavg()
    print(
        f"\nwhole run {time.perf_counter() - started:.0f} s; load average (1/5/15 min) "
        f"{load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f} at start, "
        f"{load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} at end"
    )


if __name__ == "__main__":
    main()
