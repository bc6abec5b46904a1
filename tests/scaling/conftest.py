"""The Cloud Run Admin API stand-in, served for a test with the three regions' services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.cloudrun_standin import CloudRunState, serve
from devtools.processes import free_port

PROJECT = "ion-ops-test"


@pytest.fixture
def standin() -> Iterator[tuple[str, CloudRunState]]:
    state = CloudRunState(PROJECT)
    for region in ("us-central1", "europe-west1", "asia-southeast1"):
        state.add_service(region, "persona-router")
    port = free_port()
    server = serve(port, state)
    yield f"http://127.0.0.1:{port}", state
    server.shutdown()
    server.server_close()
