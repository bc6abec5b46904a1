"""Every Pub/Sub push entry point, served by functions-framework over real HTTP as deployed,
answers a body that is no push envelope (not UTF-8, not JSON, not an object, no message) with
a 400 problem that says what was wrong and what a push looks like, and stores nothing; a
push envelope still reaches the handler."""

from __future__ import annotations

import pytest
import requests

from shared.topology import topology
from tests.pubsub_helpers import push_envelope
from tests.test_fuzz_http import PROJECT, _documents

pytestmark = pytest.mark.emulators

PUSH_ENTRY_POINTS = sorted(name for name, fn in topology().functions.items() if fn.trigger == "pubsub")


def _push_path(name: str) -> str:
    fn = topology().functions[name]
    topic = next(iter(topology().dead_letter_topics().values())) if fn.dead_letters else fn.topic
    return f"/projects/{PROJECT}/topics/{topic}"


def test_every_event_entry_point_is_covered() -> None:
    assert set(PUSH_ENTRY_POINTS) >= {
        "fan_out_alerts", "redeliver_alerts", "ingest_pubsub", "evaluate_alerts_on_ingest", "store_dead_letters", "snapshot_cost_budget",
    }  # fmt: skip


@pytest.mark.parametrize("name", PUSH_ENTRY_POINTS)
def test_a_body_that_is_no_push_envelope_is_400_and_changes_nothing(  # type: ignore[no-untyped-def]
    name: str, fs, emulators, serve_capability
) -> None:
    live = serve_capability(topology().functions[name].capability)
    url = live.url + _push_path(name)
    refused = {
        b"\xff\xfe{}": "not UTF-8",
        b'{"message": "\xc3\x28"}': "not UTF-8",
        b"\x80": "not UTF-8",
        b"not json": "not JSON",
        b'"a string"': "not a JSON object",
        b"1": "not a JSON object",
        b"[]": "not a JSON object",
        b'{"message": "x"}': '"message"',
        b'{"subscription": "s"}': '"message"',
        b"[" * 100_000: "not JSON",  # nested deeper than the parser goes
    }
    for body, reason in refused.items():
        for content_type in ("application/json", "text/plain"):
            response = requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=30)
            assert response.status_code == 400, (
                body,
                content_type,
                response.status_code,
                response.text[:300],
            )
            assert response.headers["Content-Type"] == "application/problem+json"
            problem = response.json()
            assert reason in problem["detail"], (body, problem)
            assert "messageId" in problem["detail"]  # what a push looks like
    assert _documents(fs) == {}
    wrong_method = requests.get(url, timeout=30)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    # A push envelope is still delivered: an empty message id is dropped with a log line (2xx).
    envelope = push_envelope({}, message_id="")
    assert requests.post(url, json=envelope, timeout=30).status_code == 200
    assert _documents(fs) == {}
