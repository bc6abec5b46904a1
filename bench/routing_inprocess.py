"""The routing bench's in-process parts: decision speed (parse key + table lookup), the whole
/v2/route work without HTTP, and traced memory per request through the Flask test client."""

from __future__ import annotations

import gc
import random
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ROUTE_BODY = '{"resonance_key": "calm-flowing-seek-advice", "user_id": "bench-user"}'


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
