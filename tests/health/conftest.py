"""The health capability under functions-framework in-process (its real WSGI app), on the emulators."""

from __future__ import annotations

from typing import Any

import pytest

from shared.topology import ROOT


@pytest.fixture
def health_client(fs):  # type: ignore[no-untyped-def]
    import functions_framework

    from functions.health.settings import get_health_settings

    get_health_settings.cache_clear()
    app = functions_framework.create_app("score_health", str(ROOT / "main.py"), "http")
    yield app.test_client()
    get_health_settings.cache_clear()


def make_customer(client: Any, customer_id: str = "acme", **extra: Any) -> dict[str, Any]:
    body = {"id": customer_id, "name": f"{customer_id} Ltd", "plan": "pro", **extra}
    response = client.post("/v1/customers", json=body)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()
