"""Fixtures of the cost tests on the emulators (each module asks for them by name)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devtools.bigquery_standin import StandIn, Table, serve
from functions.cost import main as cost_main
from shared.clock import FrozenClock, set_clock
from tests.cost.helpers import NOW, TABLE


@pytest.fixture
def bigquery() -> Iterator[StandIn]:
    from devtools.processes import free_port

    standin = StandIn("billing-admin", Table(TABLE, []), clock=lambda: NOW)
    httpd = serve(standin, free_port())
    standin.endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    yield standin
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fresh_cost_clients() -> Iterator[None]:
    cost_main.reset()
    previous = set_clock(FrozenClock(datetime.now(UTC)))
    set_clock(previous)
    yield
    cost_main.reset()


@pytest.fixture(scope="module")
def emulator_answers(emulators) -> None:  # type: ignore[no-untyped-def]
    """A freshly started Firestore emulator on a loaded machine can take longer than the `fs`
    fixture's 10 s to answer its first reset: wait for it once, boundedly, before the first test."""
    import time
    import urllib.request

    url = f"http://{emulators.firestore_host}/emulator/v1/projects/{emulators.project}/databases/(default)/documents"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=30).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
