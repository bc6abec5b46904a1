"""Least privilege in the deployment, asserted over the parsed Terraform and topology.yaml: only
`route` is public, and the public function publishes only to `metrics`, through a binding on that
topic, never a project-wide pubsub.publisher (anyone who broke it could otherwise page on-call
through `alerts`)."""

from __future__ import annotations

import json
from typing import Any

from shared.topology import load_topology
from tests.test_topology_and_terraform import TERRAFORM, load_hcl

PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")


def _resources(path_name: str) -> list[tuple[str, str, dict[str, Any]]]:
    parsed = load_hcl(TERRAFORM / path_name)
    return [
        (kind, name, body)
        for block in parsed.get("resource", [])
        for kind, named in block.items()
        for name, body in named.items()
    ]


def _module_call() -> dict[str, Any]:
    main = load_hcl(TERRAFORM / "main.tf")
    return next(block["function"] for block in main["module"] if "function" in block)


def test_only_route_is_public() -> None:
    assert {name for name, fn in load_topology().functions.items() if fn.public} == {"route"}
    assert _module_call()["public"] == "${try(each.value.public, false)}"
    granting_public = [
        (path, kind, name, body)
        for path in ("main.tf", "modules/function/main.tf")
        for kind, name, body in _resources(path)
        if any(member in json.dumps(body) for member in PUBLIC_MEMBERS)
    ]
    # One resource grants the public anything: run.invoker, and only where the topology says public.
    [(path, kind, name, body)] = granting_public
    assert (path, kind, name) == ("modules/function/main.tf", "google_cloud_run_service_iam_member", "public")
    assert body["role"] == "roles/run.invoker"
    assert body["count"] == "${var.public ? 1 : 0}"


def test_route_publishes_only_to_metrics_through_a_topic_scoped_binding() -> None:
    route = load_topology().functions["route"]
    assert "roles/pubsub.publisher" not in route.roles  # no project-wide publisher
    assert route.publishes == ["metrics"]
    bindings = [
        body
        for kind, _, body in _resources("modules/function/main.tf")
        if kind == "google_pubsub_topic_iam_member"
    ]
    [binding] = bindings
    assert binding["role"] == "roles/pubsub.publisher"
    assert binding["for_each"] == "${toset(var.publishes)}"
    assert binding["topic"] == "${each.value}"
    assert binding["member"] == "serviceAccount:${google_service_account.function.email}"
    assert _module_call()["publishes"] == (
        "${[for topic in try(each.value.publishes, []) : google_pubsub_topic.topics[topic].name]}"
    )


def test_a_function_cannot_publish_to_a_topic_the_topology_does_not_declare(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    path = tmp_path / "topology.yaml"
    path.write_text(
        "capabilities: {alerts: {port: 1, port_env: X}}\n"
        "functions:\n  job: {capability: alerts, trigger: http, publishes: [nope]}\n"
        "topics: {t: {}}\n"
        "schedules: {}\n"
    )
    with pytest.raises(ValueError, match="function job: publishes to unknown topic 'nope'"):
        load_topology(path)
