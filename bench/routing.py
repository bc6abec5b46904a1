"""Persona routing bench: in-process decision speed, per-request memory, and HTTP throughput of
POST /v2/route next to a bare functions-framework handler served the same way (gunicorn, same
settings), under wrk on loopback, in the same run.

    .venv/bin/python bench/routing.py                 # everything
    .venv/bin/python bench/routing.py --no-http       # in-process parts only
    .venv/bin/python bench/routing.py --duration 20   # longer HTTP runs

Goals (issue 3): /v2/route at >= 80% of the bare handler's requests/s; decision p99 <= 20 µs;
memory per request does not grow with traffic. wrk comes from Debian (`apt-get install -y wrk`);
when it is missing and we are root, the bench installs it, otherwise it says so and skips HTTP.

HTTP targets, each at 8 and 32 wrk connections and as a ratio of the bare handler in the same run:

- the open path: no API key, metrics aggregated but not published (ION_METRICS_ENABLED=false);
- the production path: ION_API_KEYS set and an operator key presented, then a customer key
  issued through the real customer key code (``shared.customer_keys``, its record in a Firestore
  emulator as the health capability stores it); the per-key rate limit in a real redis-server
  (its Lua token bucket on every request; the limit set high so that nothing is refused); metrics
  on, flushed by the background thread to the ``metrics`` topic of a Pub/Sub emulator.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ION_METRICS_ENABLED", "false")
PROJECT = "ion-ops-bench"
OPERATOR_KEY = "bench-operator-key-0123456789abcdef"
os.environ.setdefault("ION_LOG_LEVEL", "WARNING")

BARE_SOURCE = """
import functions_framework


@functions_framework.http
def bare(request):
    return '{"ok": true}', 200, {"Content-Type": "application/json"}
"""

ROUTE_BODY = '{"resonance_key": "calm-flowing-seek-advice", "user_id": "bench-user"}'
MESSAGE_BODY = '{"message": "Ugh, the deploy keeps failing with the same error, how do I fix it?"}'


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def bench_decisions(n: int) -> None:
    from functions.routing.config import DEFAULT_WEIGHTS_FILE, load_weight_config
    from functions.routing.engine import ALL_KEYS, DecisionTable, parse_key

    config = load_weight_config(DEFAULT_WEIGHTS_FILE)
    started = time.perf_counter()
    tables = [DecisionTable(name, ws.weights) for name, ws in config.weight_sets.items()]
    build_ms = (time.perf_counter() - started) * 1000
    table = tables[0]
    rng = random.Random(1)
    spellings = [str(k) for k in ALL_KEYS] + [str(k).replace("_", "-") for k in ALL_KEYS]
    raws = [rng.choice(spellings) for _ in range(n)]

    started = time.perf_counter()
    for raw in raws:
        table[parse_key(raw)]
    throughput = n / (time.perf_counter() - started)

    clock = time.perf_counter_ns
    samples = []
    for raw in raws[: min(n, 200_000)]:
        t0 = clock()
        table[parse_key(raw)]
        samples.append(clock() - t0)
    samples.sort()
    print(f"decision tables: {len(tables)} weight sets x {len(table)} keys built in {build_ms:.1f} ms")
    print(
        f"in-process decision (parse key + table lookup): {throughput:,.0f} decisions/s, "
        f"p50 {percentile(samples, 0.5) / 1000:.2f} µs, p99 {percentile(samples, 0.99) / 1000:.2f} µs "
        f"(goal p99 <= 20 µs)"
    )


def bench_handler(n: int) -> None:
    """The whole /v2/route work in process (validation, decision, request id, prompts, JSON)."""
    import json

    from functions.routing.models import RouteRequest
    from functions.routing.service import get_service

    service = get_service()
    body = ROUTE_BODY.encode()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = clock()
        json.dumps(service.route(RouteRequest.model_validate_json(body), "route"))
        samples.append(clock() - t0)
    samples.sort()
    print(
        f"in-process /v2/route work (parse body, decide, id, prompts, JSON): "
        f"p50 {percentile(samples, 0.5) / 1000:.1f} µs, p99 {percentile(samples, 0.99) / 1000:.1f} µs, "
        f"{n / (sum(samples) / 1e9):,.0f} answers/s"
    )


def bench_memory(n: int) -> None:
    import functions_framework

    app = functions_framework.create_app("route", str(ROOT / "main.py"), "http")
    client = app.test_client()
    bodies = [
        {"resonance_key": "urgent-burst-planning", "user_id": f"u{i}"}
        if i % 2
        else {"message": f"fix bug {i}!"}
        for i in range(n)
    ]

    def run(chunk: list[dict[str, str]]) -> None:
        for body in chunk:
            client.post("/v2/route", json=body)

    # Warm-up fills every bounded structure: L1 (1,500 items), pydantic-core's JSON string cache
    # (16,384 strings), metric series. After it, traced memory must stay flat.
    # Traced from the start: cache entries made before tracing and replaced after would show as growth.
    tracemalloc.start()
    warm = n // 2
    run(bodies[:warm])
    window = (n - warm) // 3
    growth: list[float] = []
    for index in range(3):
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        run(bodies[warm + index * window : warm + (index + 1) * window])
        gc.collect()
        growth.append((tracemalloc.get_traced_memory()[0] - before) / window)
    tracemalloc.stop()
    print(
        f"memory after {warm:,} warm-up requests (distinct users and messages), traced growth per request "
        f"in 3 windows of {window:,}: " + ", ".join(f"{g:+.2f} B" for g in growth)
    )


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk missing: installing it with apt-get (Debian package wrk)")
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        return shutil.which("wrk")
    return None


def serve(
    kind: str, port: int, source_dir: Path, env_extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Serve under functions-framework's gunicorn application, exactly like devtools.serve."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    if kind == "routing":
        argv = [sys.executable, "-m", "devtools.serve", "routing", "--port", str(port)]
    else:
        code = (
            "import functions_framework, sys\n"
            "from functions_framework._http.gunicorn import GunicornApplication\n"
            f"app = functions_framework.create_app('bare', {str(source_dir / 'bare.py')!r}, 'http')\n"
            f"GunicornApplication(app, '127.0.0.1', {port}, False).run()\n"
        )
        argv = [sys.executable, "-c", code]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from devtools.processes import wait_until_port

    wait_until_port(port, None, 60)
    return proc


def wrk(
    wrk_bin: str,
    url: str,
    body: str,
    *,
    duration: int,
    connections: int,
    script_dir: Path,
    api_key: str | None = None,
) -> dict[str, float]:
    script = script_dir / "post.lua"
    escaped = body.replace("\\", "\\\\").replace("'", "\\'")
    lua = f"wrk.method = 'POST'\nwrk.body = '{escaped}'\nwrk.headers['Content-Type'] = 'application/json'\n"
    if api_key:
        lua += f"wrk.headers['X-API-Key'] = '{api_key}'\n"
    script.write_text(lua)
    argv = [wrk_bin, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    warm = subprocess.run([*argv[:3], "-d2s", *argv[4:]], check=True, capture_output=True, text=True).stdout
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "75", "90", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if match:
            value, unit = float(match.group(1)), match.group(2)
            figures[f"p{pct}"] = value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non2xx"] = float(errors.group(1)) if errors else 0.0
    figures["requests"] = sum(
        float(found.group(1)) for text in (warm, out) if (found := re.search(r"(\d+) requests in", text))
    )  # warm-up included
    return figures


def ready(url: str, body: str, api_key: str | None, timeout: float = 90) -> None:
    """The target answers 200 (the key accepted, the path warm) before wrk starts."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", **({"X-API-Key": api_key} if api_key else {})}
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, data=body.encode(), headers=headers), timeout=10
            ) as answer:
                if answer.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"{exc.code} {exc.read()[:200]!r}"
            if exc.code in (401, 403, 422):
                break
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise RuntimeError(f"{url} never answered 200 (last: {last})")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (routing flushes its metrics, as on Cloud Run), then SIGKILL if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class ProductionBackends:
    """A Firestore and a Pub/Sub emulator and a redis-server, a customer key issued, the
    ``metrics`` topic created: what the production path of ``route`` talks to."""

    def __init__(self) -> None:
        from devtools.emulators import start_firestore, start_pubsub, start_redis
        from devtools.processes import free_port

        log_dir = ROOT / ".run" / "bench-logs"
        self.processes = []
        fs_port, ps_port, redis_port = free_port(), free_port(), free_port()
        self.processes.append(start_redis(redis_port, log_dir=log_dir))
        self.processes.append(start_firestore(fs_port, log_dir=log_dir))
        self.processes.append(start_pubsub(ps_port, PROJECT, log_dir=log_dir))
        self.env = {
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{fs_port}",
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{ps_port}",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        }
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            self.customer_key = self._issue_customer_key()
            self._create_topic("metrics")
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self.redis_url = self.env["REDIS_URL"]

    @staticmethod
    def _issue_customer_key() -> str:
        """As the health capability issues one: ``new_key``, only its hash stored."""
        from google.cloud import firestore

        from shared.clock import utcnow
        from shared.customer_keys import KEYS_COLLECTION, CustomerKeyRecord, hash_key, new_key

        key_id, api_key = new_key()
        record = CustomerKeyRecord(
            key_id=key_id, customer_id="bench-customer", key_hash=hash_key(api_key), created_at=utcnow()
        )
        firestore.Client(project=PROJECT).collection(KEYS_COLLECTION).document(key_id).create(
            record.model_dump()
        )
        return api_key

    @staticmethod
    def _create_topic(name: str) -> None:
        from google.cloud import pubsub_v1

        publisher = pubsub_v1.PublisherClient()
        publisher.create_topic(name=publisher.topic_path(PROJECT, name))

    def published_messages(self) -> int:
        """Messages on ``metrics`` (through a subscription made before the runs)."""
        from google.cloud import pubsub_v1

        os.environ.update(self.env)
        subscriber = pubsub_v1.SubscriberClient()
        path = subscriber.subscription_path(PROJECT, "bench-metrics")
        total = 0
        while True:
            response = subscriber.pull(subscription=path, max_messages=1000, timeout=10)
            if not response.received_messages:
                return total
            total += len(response.received_messages)
            subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in response.received_messages])

    def subscribe(self) -> None:
        from google.cloud import pubsub_v1

        os.environ.update(self.env)
        subscriber = pubsub_v1.SubscriberClient()
        subscriber.create_subscription(
            name=subscriber.subscription_path(PROJECT, "bench-metrics"),
            topic=f"projects/{PROJECT}/topics/metrics",
        )

    def redis_calls(self, command: str) -> int:
        import redis

        stats = redis.Redis.from_url(self.redis_url).info("commandstats")
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


def bench_http(duration: int, connection_counts: list[int], rounds: int, production: bool) -> None:
    wrk_bin = ensure_wrk()
    if wrk_bin is None:
        print("HTTP part skipped: wrk is not installed (Debian: `sudo apt-get install -y wrk`).")
        return
    from devtools.processes import free_port

    backends = ProductionBackends() if production else None
    try:
        _bench_http(wrk_bin, free_port, duration, connection_counts, rounds, backends)
    finally:
        if backends is not None:
            backends.stop()


def _bench_http(  # noqa: PLR0917 - the runs and their table
    wrk_bin: str,
    free_port: Any,
    duration: int,
    connection_counts: list[int],
    rounds: int,
    backends: ProductionBackends | None,
) -> None:
    open_env = {"ION_METRICS_ENABLED": "false", "ION_API_KEYS": ""}
    targets: list[tuple[str, str, str, dict[str, str] | None, str | None]] = [
        ("bare handler", "/", ROUTE_BODY, None, None),
        ("open: /v2/route (key)", "/v2/route", ROUTE_BODY, open_env, None),
        ("open: /v2/route (message, L1 hit)", "/v2/route", MESSAGE_BODY, open_env, None),
    ]
    if backends is not None:
        backends.subscribe()
        production_env = {
            **backends.env,
            "ION_API_KEYS": OPERATOR_KEY,
            "ION_REQUEST_ID_SECRET": "bench-request-id-secret",
            # Every request takes a token in Redis; high enough that none is refused.
            "ION_RATE_LIMIT_PER_SECOND": "1000000",
            "ION_RATE_LIMIT_BURST": "1000000",
            "ION_METRICS_ENABLED": "true",
            "ION_METRICS_BACKGROUND_FLUSH": "true",
        }
        targets += [
            ("production: operator key", "/v2/route", ROUTE_BODY, production_env, OPERATOR_KEY),
            ("production: customer key", "/v2/route", ROUTE_BODY, production_env, backends.customer_key),
        ]
        evals_before = backends.redis_calls("evalsha")
    results: dict[tuple[int, str], dict[str, float]] = {}
    requests_sent = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        (tmp_dir / "bare.py").write_text(BARE_SOURCE)
        # Rounds interleave the targets so that a burst of load from elsewhere on a shared machine
        # hits them alike; each target keeps its best round.
        for _round in range(rounds):
            for connections in connection_counts:
                for kind, path, body, env, api_key in targets:
                    port = free_port()
                    proc = serve("bare" if env is None else "routing", port, tmp_dir, env)
                    try:
                        ready(f"http://127.0.0.1:{port}{path}", body, api_key)
                        figures = wrk(
                            wrk_bin,
                            f"http://127.0.0.1:{port}{path}",
                            body,
                            duration=duration,
                            connections=connections,
                            script_dir=tmp_dir,
                            api_key=api_key,
                        )
                    finally:
                        stop(proc)
                    if api_key:
                        requests_sent += int(figures["requests"]) + 1  # + the readiness check
                    key = (connections, kind)
                    if key not in results or figures["rps"] > results[key]["rps"]:
                        results[key] = figures
    for connections in connection_counts:
        bare = results[(connections, "bare handler")]["rps"]
        print(
            f"HTTP under wrk (-t1 -c{connections}, {duration}s, loopback, functions-framework gunicorn, "
            f"best of {rounds} interleaved rounds):"
        )
        header = ("target", "req/s", "p50 ms", "p90 ms", "p99 ms", "vs bare", "non-2xx")
        print(f"  {header[0]:36} " + " ".join(f"{h:>8}" for h in header[1:]))
        nan = float("nan")
        for (conns, kind), fig in results.items():
            if conns != connections:
                continue
            cells = [f"{fig['rps']:8,.0f}"] + [f"{fig.get(p, nan):8.2f}" for p in ("p50", "p90", "p99")]
            cells += [f"{fig['rps'] / bare:8.0%}", f"{fig['non2xx']:8.0f}"]
            print(f"  {kind:36} " + " ".join(cells))
        for kind in [t[0] for t in targets[1:] if t[2] == ROUTE_BODY]:
            ratio = results[(connections, kind)]["rps"] / bare
            print(f"  {kind} / bare = {ratio:.2f} (goal >= 0.80) {'ok' if ratio >= 0.8 else 'MISSED'}")
    if backends is not None:
        evals = backends.redis_calls("evalsha") - evals_before
        published = backends.published_messages()
        print(
            f"production path checks: {evals:,} rate-limit scripts run in Redis for {requests_sent:,} "
            f"keyed requests (warm-ups and readiness checks included); {published:,} metric batches "
            "published to the Pub/Sub emulator's metrics topic"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=300_000)
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="8,32", help="comma-separated wrk connection counts")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--no-production", action="store_true", help="HTTP: the open path only")
    parser.add_argument("--http-only", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    if not args.http_only:
        bench_decisions(args.decisions)
        bench_handler(min(args.requests, 50_000))
        bench_memory(args.requests)
    if not args.no_http:
        counts = [int(c) for c in args.connections.split(",") if c.strip()]
        bench_http(args.duration, counts, args.rounds, production=not args.no_production)


if __name__ == "__main__":
    main()
