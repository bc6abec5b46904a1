"""Persona routing bench: in-process decision speed, per-request memory, and HTTP throughput of
POST /v2/route next to a bare functions-framework handler served the same way (gunicorn, same
settings), under wrk on loopback, in the same run. The code is split by part:
``routing_inprocess.py`` (decisions, handler work, memory), ``routing_http.py`` (the wrk runs
and their table), ``routing_backends.py`` (the emulators and Redis of the production path).

    .venv/bin/python bench/routing.py                 # everything
    .venv/bin/python bench/routing.py --no-http       # in-process parts only
    .venv/bin/python bench/routing.py --rounds 12 --duration 5   # more and longer HTTP runs

Goals (issue 3): /v2/route at >= 80% of the bare handler's requests/s; decision p99 <= 20 µs;
memory per request does not grow with traffic. wrk comes from Debian (`apt-get install -y wrk`);
when it is missing and we are root, the bench installs it, otherwise it says so and skips HTTP.

HTTP targets, each at 8 and 32 wrk connections and as a ratio of the bare handler in the same round.
Every server is started once and kept (as a deployed instance is); the runs are many short rounds,
each running every target once in a rotated order, and the verdict reads the median of the paired
ratios with the worst and best round beside it. On this shared 2-core VM the same server's
throughput moves by up to half from one run to the next, and a fresh process per run added its
own luck: one run per target, or the worst of two or three, measured the machine more than the
code.

- the open path: no API key, metrics aggregated but not published (ION_METRICS_ENABLED=false);
- the production path: ION_API_KEYS set and an operator key presented, the per-key rate limit in
  a real redis-server (its Lua token bucket), metrics on, flushed by the background thread to the
  ``metrics`` topic of a Pub/Sub emulator; with the limit at its deployed defaults (50/s, burst
  100: one key driven by wrk is mostly answered 429), raised to 2,000/s (every request admitted,
  the default lease of 200 tokens), and high with the lease forced to the 5 tokens of the default
  limit (a Redis round trip every 5 requests), by operator key and by a
  customer key issued through the real customer key code (``shared.customer_keys``, its record in
  a Firestore emulator as the health capability stores it).

By default the server under test runs alone on the first CPU (``taskset``), and wrk, redis-server
and the emulators on the others, as deployed (an instance has its CPU to itself; Memorystore and
Pub/Sub are elsewhere); ``--no-pin`` lets them share. Each run also reports the CPU time per
request of the server, wrk and the backends (from /proc): the server's is what a deployed
instance's throughput follows, and it moves far less with the machine's load than req/s.
``bench/routing_instructions.py`` counts instructions per request (callgrind), which do not move
with the load at all.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ION_METRICS_ENABLED", "false")
os.environ.setdefault("ION_LOG_LEVEL", "WARNING")

from bench.routing_http import bench_http  # noqa: E402
from bench.routing_inprocess import bench_decisions, bench_handler, bench_memory  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=300_000)
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--duration", type=int, default=4, help="seconds of each HTTP run")
    parser.add_argument("--connections", default="8,32", help="comma-separated wrk connection counts")
    parser.add_argument("--rounds", type=int, default=8, help="HTTP rounds: every target once each")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="HTTP: let the server share the CPUs with wrk, redis-server and the emulators",
    )
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
        bench_http(args.duration, counts, args.rounds, production=not args.no_production, pin=not args.no_pin)


if __name__ == "__main__":
    main()
