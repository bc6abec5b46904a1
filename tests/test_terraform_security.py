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


def test_only_route_and_the_incident_webhooks_are_public() -> None:
    """route (API keys) and incident_webhooks (Slack's and PagerDuty's callbacks, each verified by
    its signature; it serves nothing else): every other function is internal."""
    assert {name for name, fn in load_topology().functions.items() if fn.public} == {
        "route",
        "incident_webhooks",
    }
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
    assert "for topic in try(each.value.publishes, [])" in _module_call()["publishes"]


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


# --- Least privilege, internal ingress, secrets, backups, Redis (parsed HCL) --------------------

import re  # noqa: E402
import subprocess  # noqa: E402

import yaml  # noqa: E402

from shared.topology import ROOT  # noqa: E402

TF_FILES = sorted(
    p.relative_to(TERRAFORM).as_posix() for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts
)
BROAD_PUBSUB_ROLES = {
    "roles/pubsub.publisher",
    "roles/pubsub.editor",
    "roles/pubsub.admin",
    "roles/editor",
    "roles/owner",
}
SECRET_LOOKING = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)


def _all_resources() -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(path, kind, name): body for path in TF_FILES for kind, name, body in _resources(path)}


def _resource(kind: str, name: str) -> dict[str, Any]:
    [body] = [body for (_, k, n), body in _all_resources().items() if (k, n) == (kind, name)]
    return body


def _variable_default(path: str, name: str) -> Any:
    variables = load_hcl(TERRAFORM / path)
    return next(block[name] for block in variables["variable"] if name in block).get("default")


def test_no_public_member_anywhere_but_routes_invoker() -> None:
    public = [
        key for key, body in _all_resources().items() if any(m in json.dumps(body) for m in PUBLIC_MEMBERS)
    ]
    assert public == [("modules/function/main.tf", "google_cloud_run_service_iam_member", "public")]


def test_no_function_holds_a_project_wide_publisher_role() -> None:
    for name, fn in load_topology().functions.items():
        assert not set(fn.roles) & BROAD_PUBSUB_ROLES, name
    for (path, kind, name), body in _all_resources().items():
        if kind in ("google_project_iam_member", "google_project_iam_binding", "google_project_iam_policy"):
            assert body.get("role") not in BROAD_PUBSUB_ROLES, (path, name)
            assert "pubsub" not in str(body.get("role")), (path, name)


def test_each_function_publishes_only_to_the_topics_it_declares() -> None:
    topology = load_topology()
    declared = {name: fn.publishes for name, fn in topology.functions.items()}
    assert declared["route"] == ["metrics"]
    assert declared["mail_reports"] == []
    assert all("alerts" not in topics for name, topics in declared.items() if name.startswith("ingest"))
    call = _module_call()
    assert "google_pubsub_topic.topics[topic].name" in call["publishes"]
    assert 'google_pubsub_topic.dead_letter[trimsuffix(topic, "-dead-letter")].name' in call["publishes"]


def test_ingress_is_internal_for_every_function_but_the_public_one() -> None:
    function = _resource("google_cloudfunctions2_function", "function")
    assert function["service_config"][0]["ingress_settings"] == '${var.public ? "ALLOW_ALL" : var.ingress}'
    ingress = load_hcl(TERRAFORM / "modules/function/variables.tf")
    spec = next(block["ingress"] for block in ingress["variable"] if "ingress" in block)
    assert spec["default"] == "ALLOW_INTERNAL_ONLY"
    # ALLOW_ALL only for ingest's senders outside Google Cloud, by var.ingest_ingress; run.invoker
    # is still required (allUsers is bound for `public` functions alone).
    assert (
        '["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB", "ALLOW_ALL"]'
        in spec["validation"][0]["condition"]
    )
    assert "ALLOW_ALL" not in _module_call()["ingress"]
    assert '${each.key == "ingest" ? var.ingest_ingress : ' in _module_call()["ingress"]
    # Load-balancer ingress only for the functions with public_paths (tests/test_public_access.py).
    assert "local.iap_functions" in _module_call()["ingress"]


def test_scheduler_and_push_invoke_internal_functions_with_oidc_identities() -> None:
    for name in ("scheduler", "push"):
        binding = _resource("google_cloud_run_service_iam_member", name)
        assert binding["role"] == "roles/run.invoker"
    job = _resource("google_cloud_scheduler_job", "jobs")
    assert (
        job["http_target"][0]["oidc_token"][0]["service_account_email"]
        == "${google_service_account.scheduler.email}"
    )
    push = _resource("google_pubsub_subscription", "push")
    assert push["push_config"][0]["oidc_token"][0]["service_account_email"] == "${var.push_service_account}"


def test_firestore_access_is_conditioned_on_the_database_and_route_cannot_delete() -> None:
    datastore = _resource("google_project_iam_member", "datastore")
    assert datastore["condition"][0]["expression"] == (
        'resource.name == \\"projects/${var.project_id}/databases/${var.firestore_database}\\"'
    )
    plain_roles = _resource("google_project_iam_member", "roles")
    assert plain_roles["for_each"] == "${toset(local.project_roles)}"  # datastore roles never unconditioned
    call = _module_call()
    assert call["datastore_role"] == (
        "${try(each.value.public, false) ? google_project_iam_custom_role.public_datastore.id : null}"
    )
    permissions = _resource("google_project_iam_custom_role", "public_datastore")["permissions"]
    assert not [p for p in permissions if not p.startswith("datastore.")]
    assert not [p for p in permissions if p.endswith((".delete", ".export", ".import")) or "indexes" in p]


def test_every_secret_comes_from_secret_manager() -> None:
    topology = load_topology()
    settings_module = TERRAFORM / "modules" / "settings" / "main.tf"
    plain = set()
    for path, local in ((settings_module, "operator_settings"), (TERRAFORM / "main.tf", "resource_settings")):
        plain |= {name for block in load_hcl(path)["locals"] for name in block.get(local, {})}
    assert plain
    for fn in topology.functions.values():
        plain |= set(fn.env) | set(fn.settings_from)
    assert not [name for name in plain if SECRET_LOOKING.search(name)], plain
    assert _variable_default("variables.tf", "function_env") == {}
    # The functions' environment is the module's env (plain) and secret_environment_variables.
    function = _resource("google_cloudfunctions2_function", "function")
    [secret_env] = [
        d["secret_environment_variables"]
        for d in function["service_config"][0]["dynamic"]
        if "secret_environment_variables" in d
    ]
    assert secret_env["content"][0]["version"] == "latest"
    # Redis' AUTH string is written only into its Secret Manager version, REDIS_URL read from there.
    using_auth = [key for key, body in _all_resources().items() if "auth_string" in json.dumps(body)]
    assert using_auth == [("redis.tf", "google_secret_manager_secret_version", "redis_url")]
    # REDIS_URL is a secret of modules/settings, from the redis-url secret, never a plain setting.
    main = load_hcl(TERRAFORM / "main.tf")
    settings_call = next(block["settings"] for block in main["module"] if "settings" in block)
    assert settings_call["redis_url_secret"] == "${google_secret_manager_secret.redis_url.secret_id}"
    assert _module_call()["secrets"] == "${module.settings.secrets[each.key]}"
    module_text = settings_module.read_text()
    assert "REDIS_URL = var.redis_url_secret" in module_text
    assert "REDIS_URL" not in str(load_hcl(settings_module)["locals"][0]["operator_settings"])
    created = set(_variable_default("variables.tf", "secret_ids")) | {"redis-url"}
    for name, fn in topology.functions.items():
        assert set(fn.secrets.values()) <= created, name


def test_source_bucket_is_uniform_and_never_public() -> None:
    bucket = _resource("google_storage_bucket", "sources")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"


def test_firestore_has_point_in_time_recovery_and_daily_backups() -> None:
    database = _resource("google_firestore_database", "default")
    assert database["point_in_time_recovery_enablement"] == "POINT_IN_TIME_RECOVERY_ENABLED"
    assert database["delete_protection_state"] == "DELETE_PROTECTION_ENABLED"
    schedule = _resource("google_firestore_backup_schedule", "daily")
    assert schedule["database"] == "${google_firestore_database.default.name}"
    assert "daily_recurrence" in schedule
    assert schedule["retention"] == "${var.firestore_backup_retention}"
    assert _variable_default("variables.tf", "firestore_backup_retention") == "604800s"


def test_redis_has_auth_and_tls_and_is_reached_privately_by_its_functions() -> None:
    redis = _resource("google_redis_instance", "cache")
    assert redis["auth_enabled"] is True
    assert redis["transit_encryption_mode"] == "SERVER_AUTHENTICATION"
    assert redis["authorized_network"] == "${google_compute_network.private.id}"
    url = _resource("google_secret_manager_secret_version", "redis_url")["secret_data"]
    assert url.startswith("rediss://")
    assert "ssl_cert_reqs=required" in url
    # route (cache, rate limits) and score_health (a revoked key leaves routing's cache at once).
    assert _variable_default("variables.tf", "redis_functions") == ["route", "score_health"]
    call = _module_call()
    assert "google_compute_subnetwork.functions.id" in call["vpc_subnetwork"]
    function = _resource("google_cloudfunctions2_function", "function")
    config = function["service_config"][0]
    assert (
        config["direct_vpc_egress"]
        == '${var.vpc_subnetwork != null ? "VPC_EGRESS_PRIVATE_RANGES_ONLY" : null}'
    )
    assert any("direct_vpc_network_interface" in d for d in config["dynamic"])


# --- checkov, offline, against the allow-list ----------------------------------------------------

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
ALLOWLIST = TERRAFORM / "checkov-allowlist.yaml"


def test_checkov_finds_nothing_beyond_the_allow_list() -> None:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make setup` (requirements-checkov.txt)"
    allowed = yaml.safe_load(ALLOWLIST.read_text())
    for entry in allowed:
        assert set(entry) == {"check", "resource", "reason"}, entry
        assert len(entry["reason"].split()) >= 8, f"{entry['check']} needs a reason"
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(TERRAFORM),
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "--compact",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(ROOT / ".run"),
            "BC_SKIP_MAPPING": "TRUE",
            "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        },
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = {
        (check["check_id"], check["resource"])
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    }
    passed = sum(report.get("summary", {}).get("passed", 0) for report in reports)
    assert passed > 20  # checkov did read the configuration
    expected = {(entry["check"], entry["resource"]) for entry in allowed}
    assert failed - expected == set(), (
        f"checkov failures not in {ALLOWLIST.name}: {sorted(failed - expected)}"
    )
    assert expected - failed == set(), (
        f"allow-list entries that no longer fail (remove them): {sorted(expected - failed)}"
    )


def test_scaling_may_update_only_its_target_services_never_the_project() -> None:
    """adjust_scaling held roles/run.developer on the whole project (it could rewrite or delete any
    Cloud Run service) and lacked actAs on the targets' runtime account, which an update needs."""
    for name, fn in load_topology().functions.items():
        assert not [role for role in fn.roles if role.startswith("roles/run.")], name
    role = _resource("google_project_iam_custom_role", "scaling_updater")
    assert sorted(role["permissions"]) == ["run.services.get", "run.services.update"]
    binding = _resource("google_cloud_run_v2_service_iam_member", "scaling_updater")
    assert "var.scaling_targets" in binding["for_each"]
    assert binding["name"] == "${each.value.service}"
    assert binding["location"] == "${each.value.region}"
    assert binding["project"] == "${each.value.project}"
    act_as = _resource("google_service_account_iam_member", "scaling_act_as")
    assert act_as["role"] == "roles/iam.serviceAccountUser"
    assert "service_account" in act_as["service_account_id"]
    for body in (binding, act_as):
        assert body["member"] == "${local.scaling_identity}"
    assert "adjust_scaling" in _locals_of("scaling.tf")["scaling_identity"]


def test_cost_reads_the_export_dataset_only_and_runs_jobs_where_it_may() -> None:
    """snapshot_cost ran its job in the export table's project with jobUser only in its own, and
    held dataViewer on the whole project; the Recommender roles and the budget were missing."""
    cost = load_topology().functions["snapshot_cost"]
    assert "roles/bigquery.jobUser" in cost.roles  # in this project: where its jobs run
    assert "roles/bigquery.dataViewer" not in cost.roles
    assert "ION_COST_BIGQUERY_PROJECT" in cost.settings_from
    reader = _resource("google_bigquery_dataset_iam_member", "billing_export_reader")
    assert reader["role"] == "roles/bigquery.dataViewer"
    assert reader["dataset_id"] == "${local.billing_export[1]}"
    assert reader["project"] == "${local.billing_export[0]}"
    recommendations = _resource("google_project_iam_custom_role", "cost_recommendations")
    assert all(p.startswith("recommender.") and p.endswith(".list") for p in recommendations["permissions"])
    commitments = _resource("google_billing_account_iam_member", "cost_commitments")
    assert commitments["billing_account_id"] == "${var.cost.billing_account}"
    budget = _resource("google_billing_budget", "monthly")
    rule = budget["all_updates_rule"][0]
    assert rule["pubsub_topic"] == '${google_pubsub_topic.topics["budget-notifications"].id}'
    assert rule["schema_version"] == "1.0"
    publisher = _resource("google_pubsub_topic_iam_member", "budget_publisher")
    assert publisher["member"] == "serviceAccount:billing-budget-alert@system.gserviceaccount.com"


def test_the_job_runs_in_the_configured_project_not_the_exports() -> None:
    from functions.cost.sources import BigQueryBillingSource

    source = BigQueryBillingSource(
        "ion-billing-admin.billing_export.gcp_billing_export_v1_X",
        endpoint="http://127.0.0.1:9",
        job_project="ion-ops-prod",
    )
    assert source.client().project == "ion-ops-prod"
    fallback = BigQueryBillingSource("ion-billing-admin.billing_export.t", endpoint="http://127.0.0.1:9")
    assert fallback.client().project == "ion-billing-admin"


def _locals_of(path: str) -> dict[str, Any]:
    return {k: v for block in load_hcl(TERRAFORM / path).get("locals", []) for k, v in block.items()}
