"""End to end on the emulators: a message published to a topic is pushed to the function's
/projects/P/topics/T path, ``pubsub_push`` turns it into a CloudEvent, and the work happens
once; the subscription is created with its dead-letter policy as Terraform creates it."""

from __future__ import annotations

import threading
import time

import functions_framework
import pytest
from werkzeug.serving import make_server

from devtools.pubsub_setup import create_topics_and_subscriptions
from shared.pubsub import publish
from shared.topology import Topology
from tests.conftest import fixture_source
from tests.test_events_and_idempotency import Greeting


@pytest.mark.emulators
def test_published_message_reaches_the_function_once(fs, emulators) -> None:  # type: ignore[no-untyped-def]
    app = functions_framework.create_app(
        "count_greetings", fixture_source("sample_functions.py"), "cloudevent"
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        topo = Topology.model_validate(
            {
                "capabilities": {"sample": {"port": 1, "port_env": "X"}},
                "functions": {
                    "count_greetings": {"capability": "sample", "trigger": "pubsub", "topic": "greetings"}
                },
                "topics": {"greetings": {"max_delivery_attempts": 5}},
                "schedules": {},
            }
        )
        base = f"http://127.0.0.1:{server.server_port}"
        created = create_topics_and_subscriptions(topo, emulators.project, lambda cap: base)
        assert created[0][1] == f"{base}/projects/{emulators.project}/topics/greetings"
        # Creating again is a no-op, as `make run` does on every start.
        create_topics_and_subscriptions(topo, emulators.project, lambda cap: base)

        publish("greetings", Greeting(name="grace"))
        doc_ref = fs.collection("greetings").document("grace")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not doc_ref.get().exists:
            time.sleep(0.2)
        assert doc_ref.get().to_dict() == {"count": 1, "topic": "greetings"}
    finally:
        server.shutdown()
