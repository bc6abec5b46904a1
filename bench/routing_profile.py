"""Where a `/v2/route` request's time goes on the production path, in process: the operator or
customer key check with its Redis rate limit, the request id's MAC, the decision and prompts,
metric recording and flushing, and the rest (body bound, validation, JSON, the API's dispatch).

Each part is timed by wrapping its function (``perf_counter_ns``, nested parts subtracted from
their callers), over the same requests the HTTP bench sends, against a real redis-server and the
Pub/Sub emulator the metrics are published to (``ProductionBackends``). CPU shares, not the HTTP
server's cost: this is the part of a request that is ours.

    .venv/bin/python bench/routing_profile.py [--requests N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.routing_backends import ProductionBackends  # noqa: E402
from bench.routing_http import OPERATOR_KEY, production_settings  # noqa: E402
from bench.routing_inprocess import ROUTE_BODY  # noqa: E402

PARTS: dict[str, list[tuple[str, str]]] = {
    "key check + rate limit": [("functions.routing.auth", "ApiKeyGuard.admit")],
    "request id MAC": [("functions.routing.ids", "RequestIds.issue")],
    "decision + prompts": [("functions.routing.service", "RoutingService.route")],
    "metric recording": [
        ("functions.routing.telemetry", "Histogram.record"),
        ("functions.routing.telemetry", "Counter.add"),
        ("functions.routing.telemetry", "Gauge.set"),
    ],
    "metric flush (due)": [("functions.routing.telemetry", "Telemetry.maybe_flush")],
}


class Timer:
    """Per-part time, with nested parts' time taken out of their caller's."""

    def __init__(self) -> None:
        self.spent: dict[str, int] = defaultdict(int)
        self._stack: list[list[int]] = []

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append([0])
            started = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = clock() - started
                nested = self._stack.pop()[0]
                self.spent[part] += elapsed - nested
                if self._stack:
                    self._stack[-1][0] += elapsed

        return timed


def install(timer: Timer) -> None:
    import importlib

    for part, targets in PARTS.items():
        for module_name, qualname in targets:
            module = importlib.import_module(module_name)
            owner_name, attr = qualname.split(".")
            owner = getattr(module, owner_name)
            setattr(owner, attr, timer.wrap(part, getattr(owner, attr)))


def run(label: str, api_key: str | None, count: int, env: dict[str, str]) -> dict[str, float]:
    import flask

    from functions.routing import main as routing_main
    from functions.routing.service import reset_service
    from shared.settings import get_settings

    os.environ.update(env)
    get_settings.cache_clear()
    reset_service()
    app = flask.Flask("profile")
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    timer = Timer()
    install(timer)
    total = 0
    for n in range(count + 200):
        with app.test_request_context("/v2/route", method="POST", data=ROUTE_BODY, headers=headers):
            if n == 200:  # warm-up done: caches, leases, connections
                timer.spent.clear()
                total = 0
            started = time.perf_counter_ns()
            response = routing_main.handle(flask.request)
            total += time.perf_counter_ns() - started
            if response.status_code != 200:
                raise SystemExit(f"{label}: {response.status_code} {response.get_data(as_text=True)[:200]}")
    per = {part: ns / count / 1000 for part, ns in timer.spent.items()}
    per["the rest (bounds, validation, JSON, dispatch)"] = total / count / 1000 - sum(per.values())
    per["whole handle()"] = total / count / 1000
    return per


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    backends = ProductionBackends()
    try:
        production = production_settings(backends.env)
        runs = {
            "open (no key, metrics off)": run(
                "open", None, args.requests, {"ION_API_KEYS": "", "ION_METRICS_ENABLED": "false"}
            ),
            "operator key, Redis limit, metrics": run("operator", OPERATOR_KEY, args.requests, production),
            "customer key, Redis limit, metrics": run(
                "customer", backends.customer_key, args.requests, production
            ),
        }
    finally:
        backends.stop()
    parts = [*PARTS, "the rest (bounds, validation, JSON, dispatch)", "whole handle()"]
    print(
        f"µs per /v2/route request in process, mean of {args.requests:,} after 200 warm-up, "
        f"load {os.getloadavg()[0]:.1f}:"
    )
    print(f"  {'part':46}" + "".join(f"{name[:34]:>36}" for name in runs))
    for part in parts:
        print(f"  {part:46}" + "".join(f"{r.get(part, 0.0):36.1f}" for r in runs.values()))


if __name__ == "__main__":
    main()
