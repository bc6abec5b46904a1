"""The roles Terraform renders (terraform/variables.tf `roles`, modules/settings): rendered by the
terraform CLI from the README's example variables, as the rehearsal renders them; members a token
cannot prove (groups, allUsers) and unknown functions are refused by the variable's validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devtools.rehearse import EXAMPLE_VARS, RehearsalError, Rendered, render, resource_placeholders
from shared import identity, roles
from shared.topology import load_topology

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform CLI not installed")
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    placeholders = resource_placeholders("ion-ops-prod", "us-central1", "123456789012", PEM)
    return render(EXAMPLE_VARS, placeholders, tmp_path_factory.mktemp("terraform"))


def test_each_function_gets_its_roles_and_its_own_audience(rendered: Rendered) -> None:
    functions = load_topology().functions
    for name, env in rendered.env.items():
        assert sorted(
            k for k in env if k in roles.ROLE_VARIABLES.values() or k.startswith("ION_AUTH")
        ) == sorted(k for k in roles.required_variables(name) if k != identity.IAP_AUDIENCE_VARIABLE), name
        if not functions[name].public:
            assert (
                env["ION_AUTH_AUDIENCES"]
                == f"https://{name.replace('_', '-')}-123456789012.us-central1.run.app"
            )
    assert "ION_ROLE_VIEWERS" not in rendered.env["route"]
    health = rendered.env["score_health"]
    assert health["ION_ROLE_ADMINS"] == "user:ion-ops-admin@example.com"
    assert (
        health["ION_ROLE_SCHEDULER"]
        == "serviceAccount:ion-ops-scheduler@ion-ops-prod.iam.gserviceaccount.com"
    )
    assert health["ION_IAP_AUDIENCE"] == "/projects/123456789012/global/backendServices/*"
    # A function's own holders are added there only.
    assert "persona-router@" in rendered.env["ingest"]["ION_ROLE_OPERATORS"]
    assert "persona-router@" not in health["ION_ROLE_OPERATORS"]
    assert rendered.env["ingest_pubsub"]["ION_ROLE_PUSH"].endswith(
        "ion-ops-push@ion-ops-prod.iam.gserviceaccount.com"
    )


@pytest.mark.parametrize(
    ("member", "error"),
    [
        ('"group:sre@example.com"', "Each role member must be user:"),
        ('"allUsers"', "Each role member must be user:"),
    ],
)
def test_members_a_token_cannot_prove_are_refused(tmp_path: Path, member: str, error: str) -> None:
    bad = tmp_path / "bad.tfvars"
    bad.write_text(EXAMPLE_VARS.read_text().replace('"user:sre@example.com"', member))
    with pytest.raises(RehearsalError, match=error):
        render(bad, resource_placeholders("ion-ops-prod", "us-central1", "1", PEM), tmp_path / "tf")


def test_roles_of_an_unknown_function_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tfvars"
    bad.write_text(EXAMPLE_VARS.read_text().replace("    ingest = { operator", "    ingestion = { operator"))
    with pytest.raises(RehearsalError, match=r"entry points of topology\.yaml"):
        render(bad, resource_placeholders("ion-ops-prod", "us-central1", "1", PEM), tmp_path / "tf")
