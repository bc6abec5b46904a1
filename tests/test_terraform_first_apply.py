"""A first apply on a new project: Terraform creates what does not depend on each other in
parallel, so every resource of an API that google_project_service enables must wait for it (a
depends_on, or a reference to something that does); without it the create races the enablement
and fails with "API has not been used in project ... or it is disabled"."""

from __future__ import annotations

import json
import re
from typing import Any

from shared.topology import ROOT
from tests.test_topology_and_terraform import load_hcl

TERRAFORM = ROOT / "terraform"
# Resource types whose API the root module enables itself (terraform/main.tf and the others'
# google_project_service), by the prefix of their type.
ENABLED_API_TYPES = (
    "google_pubsub_",
    "google_cloud_scheduler_",
    "google_secret_manager_",
    "google_monitoring_",
    "google_compute_",
    "google_redis_",
    "google_firestore_",
    "google_cloud_tasks_",
    "google_billing_budget",
)
# The IAM API's own resources: a service account, a custom role.
IAM_API_TYPES = ("google_service_account", "google_project_iam_custom_role")
REFERENCE = re.compile(r"\b(google_[a-z0-9_]+\.[a-z0-9_]+|module\.[a-z0-9_]+|local\.[a-z0-9_]+)")


def _configuration() -> dict[str, Any]:
    """Every resource, module call and local of the root module by its address."""
    nodes: dict[str, Any] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        parsed = load_hcl(path)
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    nodes[f"{kind}.{name}"] = body
        for block in parsed.get("module", []):
            for name, body in block.items():
                nodes[f"module.{name}"] = body
        for block in parsed.get("locals", []):
            for name, value in block.items():
                nodes[f"local.{name}"] = value
    return nodes


def _waits_for_an_api(address: str, nodes: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    if address.startswith("google_project_service."):
        return True
    if address in seen or address not in nodes:
        return False
    return any(
        _waits_for_an_api(ref, nodes, seen | {address})
        for ref in REFERENCE.findall(json.dumps(nodes[address]))
    )


def test_every_resource_of_an_enabled_api_waits_for_its_enablement() -> None:
    nodes = _configuration()
    racing = []
    for address, body in nodes.items():
        kind = address.split(".")[0]
        of_enabled_api = kind.startswith(ENABLED_API_TYPES) or kind in IAM_API_TYPES
        # Bindings in other projects (the scaling targets', the billing export's) are theirs.
        in_this_project = (
            body.get("project", "${var.project_id}") == "${var.project_id}"
            if isinstance(body, dict)
            else True
        )
        if of_enabled_api and in_this_project and not _waits_for_an_api(address, nodes):
            racing.append(address)
    assert racing == [], racing
