"""The public function confined (issue #24, item 2): route may write only its own database, so it
cannot write what decides paging or access (silences, customer keys, idempotency markers, alert
states, fan-out records), all in the default database. Proved on the grants Terraform makes (read
by devtools/permissions.py, as the permission check reads them); tests/routing/test_feedback_experiment.py
reads routing's feedback from the route database."""

from __future__ import annotations

import pytest

from devtools import permissions as perms

DEFAULT = "projects/PROJECT/databases/(default)"
ROUTE = "projects/PROJECT/databases/route"
WRITES = {"datastore.entities.create", "datastore.entities.update", "datastore.entities.delete"}


@pytest.fixture(scope="module")
def grants() -> dict[str, list[perms.Grant]]:
    deployment = perms.Deployment()
    found = deployment.grants()
    assert deployment.errors == []
    return found


def _permissions_on(grants: list[perms.Grant], resource: str) -> set[str]:
    return {p for g in grants if perms.covers(g.scope, resource) for p in g.permissions}


def test_route_cannot_write_the_default_database(grants) -> None:  # type: ignore[no-untyped-def]
    on_default = _permissions_on(grants["route"], f"{DEFAULT}/documents/fanout_silences/s1")
    assert on_default & WRITES == set()
    # It still reads there: customer keys are looked up before any request is routed.
    assert "datastore.entities.get" in on_default
    on_route = _permissions_on(grants["route"], ROUTE)
    assert {"datastore.entities.create", "datastore.entities.update"} <= on_route
    assert "datastore.entities.delete" not in on_route


def test_only_route_and_health_touch_the_route_database(grants) -> None:  # type: ignore[no-untyped-def]
    touching = {
        name for name, held in grants.items() if _permissions_on(held, ROUTE) & {"datastore.entities.get"}
    }
    assert touching == {"route", "score_health"}
    # score_health reads feedback there, and deletes a customer's when erasing it: nothing else.
    assert _permissions_on(grants["score_health"], ROUTE) & WRITES == {"datastore.entities.delete"}
