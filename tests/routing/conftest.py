"""Fixtures of the routing tests: the function served by functions-framework's real app, with a
fresh instance state (settings, caches, metrics) per test."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest

from functions.routing.service import reset_service
from shared.topology import ROOT

SHARED_REFERENCE = ROOT.parent / "shared" / "reference" / "persona-routing.json"
REPO_REFERENCE = ROOT / "functions" / "routing" / "persona_routing.json"


def load_reference() -> dict[str, Any]:
    """The project's reference data (../shared when present, else the copy the function ships)."""
    path = SHARED_REFERENCE if SHARED_REFERENCE.exists() else REPO_REFERENCE
    return json.loads(Path(path).read_text())


@pytest.fixture(autouse=True)
def _fresh_routing_state() -> Iterator[None]:
    # No metric batch is published unless a test asks for it.
    os.environ.setdefault("ION_METRICS_FLUSH_SECONDS", "3600")
    os.environ.setdefault("ION_METRICS_ENABLED", "false")
    os.environ.setdefault("ION_CACHE_WARM_ITEMS", "0")
    reset_service()
    yield
    reset_service()


@pytest.fixture
def make_client() -> Callable[..., Any]:
    """A test client of the `route` entry point, built after the test has set its environment."""

    def make(**env: str) -> Any:
        os.environ.update(env)
        reset_service()
        app = functions_framework.create_app("route", str(ROOT / "main.py"), "http")
        return app.test_client()

    return make


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    return make_client()
