"""The deployment rehearsed: every function started alone with what Terraform gives it (rendered by
the terraform CLI from the README's example variables) answers /health 200, and one started
without a setting it needs refuses to start naming it."""

from __future__ import annotations

import importlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import main
from devtools import rehearse
from devtools.rehearse import EXAMPLE_VARS, RehearsalError, Rendered, render, resource_placeholders
from shared.topology import ROOT, load_topology

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform CLI not installed")

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
# What a secret holds, shaped as the real one (the values do not matter, their presence does;
# keys and the customer key secret must pass the start check's strength test: 32+ random-looking
# characters of two kinds at least, as the rehearsal's 40 random characters per key).
SECRET_VALUES = {
    "ion-api-keys": "Kx7mQ2vR9pL4wT8nZ3cF6hJ1bY5dG0sA2eU8iO4k,q9W3eR7tY1uI5oP8aS2dF6gH0jK4lZ7xC3vB9nM1",
    "request-id-secret": "s" * 64,
    "customer-key-secret": "Zq3v8Kp2Lm9Xt4Rw7Ny1Bc6Hd0Fg5Js2Ua8Ve3Wi9Ok4Pl7Qm1Rn6Ts0Yu5Xz2Ab8Cd3",
    "slack-bot-token": "xoxb-" + "t" * 40,
    "pagerduty-routing-key": "p" * 32,
    "smtp-password": "m" * 24,
    "slack-signing-secret": "g" * 32,
    "pagerduty-webhook-secret": "w" * 32,
    "redis-url": "rediss://:pw@10.0.0.3:6378/0?ssl_cert_reqs=required&ssl_check_hostname=false",
}
# Settings Terraform passes whose absence a function survives by design, each with its reason.
OPTIONAL_WHEN_DEPLOYED = {
    "SMTP_PORT": "587 (STARTTLS) by default",
    "SMTP_STARTTLS": "derived from the port when unset",
    "SMTP_USER": "a relay may accept the service without a login",
    "SMTP_PASSWORD": "a relay may accept the service without a login (IP allow-list)",
    "ION_REPORTS_TIME_ZONE": "America/New_York by default, the seeds' zone",
    "ION_COST_BUDGET": "the seeds' $3,000 by default",
    "ION_COST_TARGET": "the seeds' $1,800 by default",
    "ION_COST_CURRENCY": "USD by default",
    "ION_COST_RECOMMENDER_LOCATIONS": "the three serving regions by default",
    "ION_COLLECTOR_PROJECT": "the function's own project by default",
    "ION_COLLECTOR_SQL_INSTANCES": "a platform may have no Cloud SQL instance",
    "REDIS_CA_CERT": "a plain redis:// URL needs no CA; a rediss:// one fails to connect without it",
    "GOOGLE_CLOUD_PROJECT": "Cloud Run's metadata server tells the project",
    "FUNCTION_REGION": "us-central1 by default",
    "ION_SCALING_DRY_RUN": "topology env; refused when missing (checked below)",
    "ION_ROUTE_DATABASE": "route by default, the database Terraform creates for the public route",
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    placeholders = resource_placeholders("ion-ops-prod", "us-central1", "123456789012", PEM)
    return render(EXAMPLE_VARS, placeholders, tmp_path_factory.mktemp("terraform"))


def deployed_env(rendered: Rendered, function: str) -> dict[str, str]:
    secrets = {name: SECRET_VALUES[secret] for name, secret in rendered.secrets[function].items()}
    service = function.replace("_", "-")
    return {**rendered.env[function], **secrets, "K_SERVICE": service, "FUNCTION_TARGET": function}


def problems_with(env: dict[str, str], function: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for name in list(os.environ):
        if name.startswith(("ION_", "SMTP_", "SLACK_", "PAGERDUTY_", "ALERT_", "REDIS_")):
            monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    module = importlib.import_module(main.DEPLOYMENT_CHECKS[function])
    from shared.roles import deployment_problems as role_problems

    return [*role_problems(function), *module.deployment_problems(function)]


def test_every_entry_point_has_a_start_check() -> None:
    assert set(main.DEPLOYMENT_CHECKS) == set(load_topology().functions)
    for module in set(main.DEPLOYMENT_CHECKS.values()):
        checked = importlib.import_module(module)
        assert callable(checked.deployment_problems), module
        assert callable(checked.check_deployment), module


def test_terraform_renders_every_function_with_its_settings_and_secrets(rendered: Rendered) -> None:
    topo = load_topology()
    assert set(rendered.env) == set(topo.functions)
    for name, fn in topo.functions.items():
        assert set(fn.settings_from) <= set(rendered.env[name]), name
        assert set(fn.env) <= set(rendered.env[name]), name
        assert set(fn.secrets) <= set(rendered.secrets[name]), name
    assert rendered.env["mail_reports"]["ION_REPORTS_PUBLIC_URL"] == "https://ops.example.com"
    assert rendered.secrets["score_health"]["REDIS_URL"] == "redis-url"
    assert rendered.env["adjust_scaling"]["ION_SCALING_TARGETS"].startswith(
        "projects/ion-mentoring-prod/locations/us-central1/services/persona-router"
    )


def test_each_function_has_every_setting_it_requires_from_terraform(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fix of 'mail_reports and snapshot_cost get none of the settings they require': with
    exactly what Terraform gives it, no function has a start problem."""
    for function in sorted(rendered.env):
        assert problems_with(deployed_env(rendered, function), function, monkeypatch) == [], function


def test_every_setting_terraform_passes_is_required_or_optional_for_a_reason(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropping any one setting or secret of a function is refused naming it, unless the table
    above says why the function runs without it: nothing is passed for nothing, and nothing a
    function needs can go missing unnoticed."""
    unexplained = []
    for function in sorted(rendered.env):
        env = deployed_env(rendered, function)
        for name in sorted(set(env) - {"K_SERVICE", "FUNCTION_TARGET"}):
            if name in OPTIONAL_WHEN_DEPLOYED:
                continue
            reduced = {k: v for k, v in env.items() if k != name}
            problems = problems_with(reduced, function, monkeypatch)
            if not any(name in problem for problem in problems):
                unexplained.append(f"{function}: {name}")
    assert unexplained == []


def test_a_public_function_holds_only_secrets_its_start_check_requires(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Least privilege where the internet calls: no secret of a public function is optional for
    a reason (as SMTP_PASSWORD is for a function that mails); dropping any one is refused naming
    it. On main incident_webhooks held smtp-password only because its check asked for every
    routed channel's settings, though it sends no mail."""
    public = [name for name, fn in load_topology().functions.items() if fn.public]
    assert sorted(public) == ["incident_webhooks", "route"]
    unused = []
    for function in public:
        env = deployed_env(rendered, function)
        for name in sorted(rendered.secrets[function]):
            reduced = {k: v for k, v in env.items() if k != name}
            if not any(name in problem for problem in problems_with(reduced, function, monkeypatch)):
                unused.append(f"{function}: {name}")
    assert unused == []


def test_incident_webhooks_cannot_read_the_smtp_password_and_still_starts(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devtools.permissions import Deployment

    assert rendered.secrets["incident_webhooks"] == {
        "SLACK_SIGNING_SECRET": "slack-signing-secret",
        "PAGERDUTY_WEBHOOK_SECRET": "pagerduty-webhook-secret",
        "SLACK_BOT_TOKEN": "slack-bot-token",
        "PAGERDUTY_ROUTING_KEY": "pagerduty-routing-key",
    }
    assert not {"SMTP_HOST", "SMTP_USER", "ALERT_EMAIL_TO", "SLACK_CHANNEL"} & set(
        rendered.env["incident_webhooks"]
    )
    # Terraform's grants follow: no secretAccessor binding on smtp-password for its identity.
    readable = {
        grant.scope.rsplit("/", 1)[-1]
        for grant in Deployment().grants()["incident_webhooks"]
        if grant.role == "roles/secretmanager.secretAccessor"
    }
    assert readable == set(rendered.secrets["incident_webhooks"].values())
    assert "smtp-password" not in readable
    # It starts with exactly that (the start check asks for what it sends: Slack, PagerDuty).
    assert problems_with(deployed_env(rendered, "incident_webhooks"), "incident_webhooks", monkeypatch) == []
    # ...and still refuses to start without what it does send with.
    env = {k: v for k, v in deployed_env(rendered, "incident_webhooks").items() if k != "SLACK_BOT_TOKEN"}
    assert any("SLACK_BOT_TOKEN" in p for p in problems_with(env, "incident_webhooks", monkeypatch))


def test_scaling_refuses_to_start_without_its_dry_run_choice(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in deployed_env(rendered, "adjust_scaling").items() if k != "ION_SCALING_DRY_RUN"}
    assert any("ION_SCALING_DRY_RUN" in p for p in problems_with(env, "adjust_scaling", monkeypatch))


def test_a_scaling_target_in_a_region_without_rules_is_refused(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = deployed_env(rendered, "adjust_scaling")
    env["ION_SCALING_TARGETS"] = "projects/ion-mentoring-prod/locations/us-east4/services/persona-router"
    problems = problems_with(env, "adjust_scaling", monkeypatch)
    assert any("us-east4, which has no rules" in p for p in problems)


def test_a_link_base_people_cannot_open_is_refused(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = deployed_env(rendered, "mail_reports")
    env["ION_REPORTS_PUBLIC_URL"] = "https://mail-reports-abc123-uc.a.run.app"
    problems = problems_with(env, "mail_reports", monkeypatch)
    assert any(p.startswith("ION_REPORTS_PUBLIC_URL") and "internal" in p for p in problems)


def test_the_rehearsal_refuses_a_resource_setting_it_has_no_placeholder_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rehearse, "resource_setting_names", lambda: {"ION_NEW_QUEUE"})
    with pytest.raises(RehearsalError, match="ION_NEW_QUEUE"):
        rehearse.wrapper_config({})


def test_invalid_variables_fail_the_render_as_terraform_would(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tfvars"
    bad.write_text(EXAMPLE_VARS.read_text().replace('"0123AB-4567CD-89EF01"', '"my-account"'))
    placeholders = resource_placeholders("ion-ops-prod", "us-central1", "1", PEM)
    with pytest.raises(RehearsalError, match="billing_account"):
        render(bad, placeholders, tmp_path / "tf")


def test_a_budget_in_fractions_of_a_unit_fails_the_render(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tfvars"
    bad.write_text(
        EXAMPLE_VARS.read_text().replace("budget_amount           = 3000", "budget_amount           = 3000.5")
    )
    placeholders = resource_placeholders("ion-ops-prod", "us-central1", "1", PEM)
    with pytest.raises(RehearsalError, match="whole number of currency units"):
        render(bad, placeholders, tmp_path / "tf")


def test_every_root_variable_is_declared_in_variables_tf() -> None:
    """The rehearsal copies terraform/variables.tf: a variable declared elsewhere would be missing."""
    for path in (ROOT / "terraform").glob("*.tf"):
        if path.name != "variables.tf":
            assert not re.search(r'^variable\s+"', path.read_text(), flags=re.M), path.name


def test_the_readme_deploy_example_is_the_rehearsed_file_and_names_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- example-tfvars:begin -->\n```hcl\n", 1)[1].split(
        "```\n<!-- example-tfvars:end -->"
    )[0]
    assert block == EXAMPLE_VARS.read_text()
    deploy = readme.split("## Deploy", 1)[1]
    declared = re.findall(
        r'^variable\s+"([a-z_]+)"', (ROOT / "terraform" / "variables.tf").read_text(), flags=re.M
    )
    assert [name for name in declared if f"| `{name}` |" not in deploy] == []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from devtools.rehearsal_stack import RehearsalStack

    with RehearsalStack(EXAMPLE_VARS, log_dir=ROOT / ".run" / "test-logs" / "rehearsal") as started:
        yield started


def test_every_function_starts_as_deployed_and_answers_health(stack) -> None:  # type: ignore[no-untyped-def]
    outcomes = stack.rehearse(sorted(load_topology().functions))
    assert [(o.function, o.verdict, o.detail) for o in outcomes if not o.ok] == []
    assert len(outcomes) == len(load_topology().functions)


@pytest.mark.parametrize(
    ("function", "variable"),
    [
        ("mail_reports", "SMTP_HOST"),
        ("mail_reports", "ION_REPORTS_TO_LEADERSHIP"),
        ("snapshot_cost", "ION_COST_BILLING_TABLE"),
        ("adjust_scaling", "ION_SCALING_TARGETS"),
        ("score_health", "REDIS_URL"),
        ("score_health", "ION_CUSTOMER_KEY_SECRET"),
        ("route", "ION_CUSTOMER_KEY_SECRET"),
        ("ingest", "ION_COLLECTOR_RUN_SERVICES"),
        ("store_dead_letters", "ION_DEADLETTERS_URL"),
        ("incident_webhooks", "PAGERDUTY_ROUTING_KEY"),
    ],
)
def test_a_function_without_a_setting_it_needs_refuses_to_start_naming_it(stack, function, variable) -> None:  # type: ignore[no-untyped-def]
    (outcome,) = stack.rehearse([function], without=[(function, variable)])
    assert outcome.verdict == "refused", outcome.detail
    assert variable in outcome.detail
