"""Fuzzing every capability over real HTTP: each is served by functions-framework (as deployed),
and generated requests (method, path variables, query string, headers, body) go to every route
of its Api and to its Pub/Sub push paths. No answer may be a 5xx, and a refused request (4xx)
must leave the Firestore emulator's documents exactly as they were.

Bounded: a fixed number of examples per capability from a fixed seed (derandomized), no
per-example deadline, no example database, so the run is repeatable and short.
"""

from __future__ import annotations

import importlib
import json
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.topology import topology

pytestmark = pytest.mark.emulators

EXAMPLES_PER_CAPABILITY = 20
PROJECT = "ion-ops-test"

QUERY_KEYS = [
    "start", "end", "metric", "service", "window", "step", "limit", "topic", "state", "format",
    "deep", "day", "week", "month", "period", "time_zone", "region", "customer", "persona", "since",
    "until", "labels", "agg", "page_token", "id", "severity", "rule", "days", "horizon",
]  # fmt: skip
AWKWARD_VALUES = [
    "", "0", "-1", "1e309", "NaN", "inf", "true", "null", "[]", "{}", "9999-12-31T23:30:00Z",
    "\u00b2", "a/b", "..", ".", "__x__", "0595-04-27", "x\ny",
    "0001-01-01T00:00:00+01:00", "2026-03-02T08:00:00", "2026-W99", "2026-13", "../../etc/passwd",
    "%00", "\u202e", "a" * 3000, "Etc/Nowhere", "America/New_York", "leadership", "p95",
]  # fmt: skip
HEADER_NAMES = [
    "X-CloudScheduler", "X-CloudScheduler-JobName", "X-CloudScheduler-ScheduleTime", "traceparent",
    "X-Cloud-Trace-Context", "Authorization", "X-API-Key", "Content-Encoding", "Accept",
    "X-Request-ID", "ce-id", "ce-type", "ce-source", "ce-specversion", "Idempotency-Key",
]  # fmt: skip
CONTENT_TYPES = [
    "application/json", "application/x-protobuf", "application/problem+json", "text/plain",
    "application/cloudevents+json", "multipart/form-data; boundary=x", "application/json; charset=utf-16",
]  # fmt: skip
# Header values as HTTP carries them: latin-1 without control characters, no leading or
# trailing whitespace (requests refuses those itself).
header_text = st.text(
    st.characters(codec="latin-1", exclude_categories=("Cc", "Zl", "Zp"), exclude_characters="\x85\xa0"),
    max_size=80,
).map(str.strip)
# Values a header may meaningfully carry: real job names, schedule times good and bad.
meaningful_header_values = st.sampled_from(
    [
        *topology().schedules,
        "2026-03-02T08:00:00Z",
        "9999-12-31T23:59:59-01:00",
        "2026-03-02T08:00:00",
        "true",
    ]
)
awkward = st.one_of(st.sampled_from(AWKWARD_VALUES), st.text(max_size=40))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | awkward,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(QUERY_KEYS) | st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)  # fmt: skip


Route = tuple[str, list[str], list[str]]


def _routes(capability: str) -> list[Route]:
    """The capability's Api routes with the query parameters each declares, and the push path of
    each topic it subscribes to."""
    routes: list[Route] = []
    fns = topology().functions_of(capability)
    if any(fn.trigger == "http" for fn in fns.values()):
        for op in importlib.import_module(f"functions.{capability}.main").api.operations():
            names = [info.alias or name for name, info in op.query.model_fields.items()] if op.query else []
            routes.append((op.path, list(op.methods), names))
    for fn in fns.values():
        topics = list(topology().dead_letter_topics().values()) if fn.dead_letters else [fn.topic]
        routes += [(f"/projects/{PROJECT}/topics/{topic}", ["POST"], []) for topic in topics]
    return routes


@st.composite
def http_requests(draw: st.DrawFn, routes: list[Route]) -> dict[str, Any]:
    rule, methods, declared = draw(st.sampled_from(routes))
    method = draw(st.sampled_from(methods) | st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    path = rule
    while "<" in path:  # fill each path variable, e.g. <audience> or <path:name>
        start, end = path.index("<"), path.index(">")
        value = draw(awkward.filter(bool))
        path = path[:start] + quote(value, safe="") + path[end + 1 :]
    # The route's own parameters (from its query model) first, then others it should ignore or refuse.
    keys = (
        st.sampled_from(declared) | st.sampled_from(QUERY_KEYS) if declared else st.sampled_from(QUERY_KEYS)
    )
    query = draw(st.dictionaries(keys | st.text(min_size=1, max_size=10), awkward, max_size=4))
    headers = draw(
        st.dictionaries(st.sampled_from(HEADER_NAMES), meaningful_header_values | header_text, max_size=4)
    )
    headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES) | header_text)
    if rule.startswith("/projects/"):
        # A push envelope whose message data and attributes are generated.
        data = draw(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
        import base64

        envelope = {
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": draw(
                    st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=30), max_size=3)
                ),
                "messageId": draw(st.text(max_size=20)),
                "publishTime": draw(
                    st.sampled_from(["2026-03-02T08:00:00Z", "", "9999-12-31T23:59:59Z", "x"])
                ),
            },
            "subscription": f"projects/{PROJECT}/subscriptions/fuzz",
        }
        body = draw(
            st.just(json.dumps(envelope).encode())
            | st.text(max_size=200).map(str.encode)
            | st.binary(max_size=200)
            | json_values.map(lambda v: json.dumps(v).encode())
        )
    else:
        body = draw(st.none() | st.binary(max_size=500) | json_values.map(lambda v: json.dumps(v).encode()))
    return {"method": method, "path": path, "params": query, "headers": headers, "data": body}


def _documents(client: Any) -> dict[str, Any]:
    """Every document of the emulator (nested collections too), by path."""
    found: dict[str, Any] = {}

    def walk(collections: Any) -> None:
        for collection in collections:
            for snapshot in collection.stream():
                found[snapshot.reference.path] = snapshot.to_dict()
                walk(snapshot.reference.collections())

    walk(client.collections())
    return found


@pytest.mark.parametrize("capability", sorted(topology().capabilities))
def test_generated_requests_get_no_5xx_and_refusals_change_nothing(  # type: ignore[no-untyped-def]
    capability: str, fs, emulators, serve_capability, tmp_path
) -> None:
    from devtools.pubsub_setup import create_topics_and_subscriptions

    # The topics exist (their pushes go nowhere): health probes and publishes find them.
    create_topics_and_subscriptions(topology(), emulators.project, lambda _cap: "http://127.0.0.1:9")
    env = {}
    if capability == "cost":  # a local billing export (labelled a fallback), so snapshots can run
        from datetime import UTC, datetime, timedelta

        from devtools.billing_export import generate, write_jsonl

        today = datetime.now(UTC).date()
        rows = generate(today - timedelta(days=10), today, hours=2).rows
        env["ION_COST_BILLING_FILE"] = str(write_jsonl(rows, tmp_path / "billing.jsonl"))
    live = serve_capability(capability, env)
    routes = _routes(capability)
    session = requests.Session()
    seen: dict[int, int] = {}
    known_state: list[dict[str, Any]] = []

    @settings(
        max_examples=EXAMPLES_PER_CAPABILITY,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=http_requests(routes))
    def run(request: dict[str, Any]) -> None:
        # After a refusal the store is as it was: that snapshot is the next one's "before".
        before = known_state.pop() if known_state else _documents(fs)
        response = session.request(
            url=live.url + request["path"], timeout=60, **{k: v for k, v in request.items() if k != "path"}
        )
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (request, response.status_code, response.text[:500])
        if 400 <= response.status_code < 500:
            after = _documents(fs)
            assert after == before, (request, response.status_code, response.text[:300])
            known_state.append(after)

    run()
    assert sum(seen.values()) >= EXAMPLES_PER_CAPABILITY
    assert any(400 <= status < 500 for status in seen), seen  # the fuzz did reach the refusals


def test_a_malformed_push_envelope_is_dropped_not_retried(fs, emulators, serve_capability) -> None:  # type: ignore[no-untyped-def]
    """Found by the fuzz: an empty messageId or a publish time without a zone answered 500, so Pub/Sub
    would redeliver a message no delivery can fix; now it is dropped (2xx) with a log line."""
    live = serve_capability("deadletters")
    for message in (
        {"data": "", "attributes": {}, "messageId": "", "publishTime": "2026-03-02T08:00:00Z"},
        {"data": "", "attributes": {}, "messageId": "m1", "publishTime": "2026-03-02T08:00:00"},
        {"data": "", "attributes": {}, "messageId": "m2", "publishTime": "soon"},
    ):
        envelope = {"message": message, "subscription": f"projects/{PROJECT}/subscriptions/fuzz"}
        response = requests.post(
            f"{live.url}/projects/{PROJECT}/topics/metrics-dead-letter", json=envelope, timeout=30
        )
        assert response.status_code < 300, (message, response.status_code)
    assert _documents(fs) == {}
