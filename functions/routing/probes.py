"""Health probes of the routing function's backing stores: each really calls the store."""

from __future__ import annotations

import time
from typing import Any

from shared.redis import get_redis


def check_redis() -> dict[str, Any]:
    client = get_redis()
    if client is None:
        return {"configured": False, "ok": False, "detail": "REDIS_URL unset: no L2 cache, local rate limits"}
    started = time.perf_counter()
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return {"configured": True, "ok": False, "error": type(exc).__name__, "detail": str(exc)[:200]}
    return {"configured": True, "ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def check_firestore() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        from functions.routing.feedback import STATS_COLLECTION
        from shared.firestore import get_firestore

        get_firestore().collection(STATS_COLLECTION).limit(1).get(timeout=2)
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return {"ok": False, "error": type(exc).__name__, "detail": str(exc)[:200]}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
