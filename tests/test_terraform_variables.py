"""Variables a deployment may set whose mistakes Terraform used to accept and the apply (or the
first incident) paid for: each is refused by its validation before anything is created, as the
rehearsal renders it (terraform CLI over terraform/variables.tf and the README's example)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devtools.rehearse import EXAMPLE_VARS, RehearsalError, render, resource_placeholders

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform CLI not installed")
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _render_with(tmp_path: Path, extra: str) -> None:
    variables = tmp_path / "extra.tfvars"
    variables.write_text(EXAMPLE_VARS.read_text() + "\n" + extra + "\n")
    render(variables, resource_placeholders("ion-ops-prod", "us-central1", "1", PEM), tmp_path / "tf")


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        # run.invoker for everyone on a private function (ingest: anyone could write metrics).
        ('extra_invokers = { ingest = ["allUsers"] }', "never allUsers"),
        ('extra_invokers = { ingest = ["allAuthenticatedUsers"] }', "never allUsers"),
        # A misspelt entry point granted nothing, silently.
        (
            'extra_invokers = { ingestion = ["serviceAccount:otel@p.iam.gserviceaccount.com"] }',
            "extra_invokers keys",
        ),
        ('redis_functions = ["route", "score-health"]', "redis_functions must be entry points"),
        # route reads ion-api-keys: its deploy failed midway through the apply.
        ('secret_ids = ["request-id-secret", "customer-key-secret"]', "secret_ids must include every secret"),
        # Cloud Scheduler refused it at apply, after every function was deployed.
        ('scheduler_time_zone_override = "EST5EDT "', "scheduler_time_zone_override must be"),
        # Direct VPC egress refuses a subnet smaller than /26; the range is created mid-apply.
        ('functions_subnet_cidr = "10.8.0.0/28"', "functions_subnet_cidr must be"),
        ('functions_subnet_cidr = "10.8.0.0"', "functions_subnet_cidr must be"),
        ('redis = { tier = "STANDARD_HA", memory_size_gb = 0.5 }', "redis.memory_size_gb must be"),
        # ingest's ingress: only Cloud Run's three settings (INTERNAL is the v2 API's spelling).
        ('ingest_ingress = "INGRESS_TRAFFIC_ALL"', "ingest_ingress must be"),
        ('ingest_ingress = "allow_all"', "ingest_ingress must be"),
    ],
)
def test_a_variable_that_would_break_the_apply_or_open_a_function_is_refused(
    tmp_path: Path, extra: str, error: str
) -> None:
    with pytest.raises(RehearsalError, match=error):
        _render_with(tmp_path, extra)


def test_the_valid_forms_of_those_variables_are_accepted(tmp_path: Path) -> None:
    _render_with(
        tmp_path,
        'extra_invokers = { ingest = ["serviceAccount:otel@p.iam.gserviceaccount.com", "group:sre@example.com"] }\n'
        'scheduler_time_zone_override = "Etc/UTC"',
    )


@pytest.mark.parametrize("ingress", ["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"])
def test_every_ingest_ingress_is_accepted(tmp_path: Path, ingress: str) -> None:
    _render_with(tmp_path, f'ingest_ingress = "{ingress}"')
