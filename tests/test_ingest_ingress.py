"""ingest's ingress is a validated Terraform variable (``ingest_ingress``): its senders may be in
this project, on a Shared VPC, behind a load balancer or outside Google Cloud (README: Deploy,
"Who may call what"), and in every case ingest stays private: invoking it takes run.invoker."""

from __future__ import annotations

import pytest

from devtools.permissions import Deployment
from tests.test_topology_and_terraform import TERRAFORM, load_hcl


@pytest.fixture(scope="module")
def default() -> Deployment:
    return Deployment()


def test_the_default_is_internal_only_as_before(default: Deployment) -> None:
    variables = load_hcl(TERRAFORM / "variables.tf")
    spec = next(block["ingest_ingress"] for block in variables["variable"] if "ingest_ingress" in block)
    assert spec["default"] == "ALLOW_INTERNAL_ONLY"
    assert (
        '["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"]'
        in spec["validation"][0]["condition"]
    )
    assert default.functions["ingest"].var("ingress") == "ALLOW_INTERNAL_ONLY"


@pytest.mark.parametrize("ingress", ["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"])
def test_the_variable_sets_ingests_ingress_alone_and_iam_stays_required(
    default: Deployment, ingress: str
) -> None:
    functions = Deployment(variables={"ingest_ingress": ingress}).functions
    assert functions["ingest"].var("ingress") == ingress
    others = {n: m.var("ingress") for n, m in functions.items() if n != "ingest"}
    assert others == {n: m.var("ingress") for n, m in default.functions.items() if n != "ingest"}
    # Private in every case: no allUsers binding (the module binds it for `public` alone).
    assert functions["ingest"].var("public") is False
    assert not {"allUsers", "allAuthenticatedUsers"} & set(functions["ingest"].var("invokers"))
