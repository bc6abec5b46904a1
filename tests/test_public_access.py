"""People open what they are sent through one HTTPS load balancer with IAP
(terraform/public_access.tf), built from topology.yaml's `public_paths`; asserted over the parsed
HCL and the topology: each declared path reaches its function through an IAP backend, only those
functions take load-balancer ingress, IAP's agent invokes them service by service, the members are
bound per backend service (never project-wide), and the variable refuses what IAP must not let in."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shared.topology import PUBLIC_PATH, load_topology
from tests.test_topology_and_terraform import TERRAFORM, load_hcl

PUBLIC_ACCESS = TERRAFORM / "public_access.tf"
TF_FILES = sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)
# What people open, by function (README: Deploy, "Opening dashboards and links").
EXPECTED_PATHS = {
    "mail_reports": ["/dashboards", "/dashboards/*", "/v1/reports", "/v1/reports/*"],
    "manage_alerts": [
        "/v1/silences",
        "/v1/silences/*",
        "/v1/transitions",
        "/v1/incidents",
        "/v1/incidents/*",
    ],
    "manage_dead_letters": ["/v1/dead-letters", "/v1/dead-letters/*"],
    "score_health": ["/v1/health/customers", "/v1/health/customers/*", "/v1/health/personas"],
    "snapshot_cost": ["/v1/cost", "/v1/cost/forecast", "/v1/cost/anomalies"],
    "adjust_scaling": ["/v1/scaling", "/v1/capacity"],
    "evaluate_alerts": ["/v1/alerts", "/v1/rules"],
}


def _resources(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (kind, name): body
        for block in load_hcl(path).get("resource", [])
        for kind, named in block.items()
        for name, body in named.items()
    }


def _all_resources() -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (path.relative_to(TERRAFORM).as_posix(), kind, name): body
        for path in TF_FILES
        for (kind, name), body in _resources(path).items()
    }


def _lb(kind: str, name: str) -> dict[str, Any]:
    return _resources(PUBLIC_ACCESS)[(kind, name)]


def _locals(path: Path) -> dict[str, Any]:
    return {k: v for block in load_hcl(path).get("locals", []) for k, v in block.items()}


def _module_call() -> dict[str, Any]:
    main = load_hcl(TERRAFORM / "main.tf")
    return next(block["function"] for block in main["module"] if "function" in block)


# --- The topology declares what people open ---------------------------------------------------


def test_the_topology_declares_the_paths_people_open() -> None:
    topology = load_topology()
    assert {name: fn.public_paths for name, fn in topology.load_balanced().items()} == EXPECTED_PATHS
    assert not topology.functions["route"].public_paths  # public already, never behind IAP
    # The load balancer's landing page (every other path redirects there) is one of them.
    assert "/dashboards/*" in topology.functions["mail_reports"].public_paths


def test_no_public_path_is_health_a_push_path_or_a_scheduled_job() -> None:
    topology = load_topology()
    for name, fn in topology.load_balanced().items():
        jobs = {s.path for s in topology.schedules.values() if s.function == name}
        for path in fn.public_paths:
            assert PUBLIC_PATH.match(path), path
            assert path not in jobs, (name, path)
            assert not path.startswith(("/health", "/projects/")), path


def _covers(pattern: str, path: str) -> bool:
    return path == pattern or (pattern.endswith("/*") and path.startswith(pattern[:-1]))


def test_which_scheduled_jobs_a_wildcard_reaches_is_a_known_decision() -> None:
    """Path rules cannot tell methods apart: /v1/reports/* (the archive, GET /v1/reports/{id})
    also reaches the report jobs' POST /v1/reports/{audience}, which mail once per period and
    audience, and which only the scheduler or an operator may call (shared/roles.py): a viewer
    through IAP gets 403. No other job is reachable; a new one here must be a decision."""
    topology = load_topology()
    reachable = {
        (s.function, s.path)
        for s in topology.schedules.values()
        for pattern in topology.functions[s.function].public_paths
        if _covers(pattern, s.path)
    }
    assert reachable == {
        ("mail_reports", "/v1/reports/engineering"),
        ("mail_reports", "/v1/reports/leadership"),
        ("mail_reports", "/v1/reports/support"),
        ("mail_reports", "/v1/reports/operations"),
        ("mail_reports", "/v1/reports/customer_success"),
        ("mail_reports", "/v1/reports/finance"),
    }


def _topology(tmp_path: Path, functions: str, schedules: str = "{}") -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(
        "capabilities: {a: {port: 1, port_env: X}}\n"
        f"functions:\n{functions}"
        "topics: {t: {}}\n"
        f"schedules: {schedules}\n"
    )
    return path


@pytest.mark.parametrize(
    "path",
    [
        "/health",
        "/",
        "/projects/p/topics/alerts",
        "/v1/silences*",  # a path rule takes `*` only as a final /*
        "/dashboards*",
        "/v1/*",
        "/v1",
        "/*",
        "/v2/route",
        "v1/silences",
        "/v1/Silences",
        "/v1/silences/*/x",
        "/v1/silences?id=1",
    ],
)
def test_a_public_path_outside_v1_and_dashboards_or_badly_formed_is_refused(
    tmp_path: Path, path: str
) -> None:
    bad = _topology(tmp_path, f"  api: {{capability: a, trigger: http, public_paths: ['{path}']}}\n")
    with pytest.raises(ValueError, match="must be under /v1/ or /dashboards"):
        load_topology(bad)


def test_two_functions_claiming_one_path_are_refused(tmp_path: Path) -> None:
    bad = _topology(
        tmp_path,
        "  alerts: {capability: a, trigger: http, public_paths: [/v1/rules]}\n"
        "  scaling: {capability: a, trigger: http, public_paths: [/v1/scaling, /v1/rules]}\n",
    )
    with pytest.raises(ValueError, match="functions alerts and scaling both claim public path /v1/rules"):
        load_topology(bad)


def test_a_path_listed_twice_is_refused(tmp_path: Path) -> None:
    bad = _topology(tmp_path, "  api: {capability: a, trigger: http, public_paths: [/v1/x, /v1/x]}\n")
    with pytest.raises(ValueError, match="listed twice"):
        load_topology(bad)


def test_a_scheduled_jobs_path_is_refused(tmp_path: Path) -> None:
    bad = _topology(
        tmp_path,
        "  job: {capability: a, trigger: http, public_paths: [/v1/capacity, /v1/capacity/run]}\n",
        "{tick: {function: job, cron: '* * * * *', path: /v1/capacity/run, attempt_deadline: 60s}}",
    )
    with pytest.raises(ValueError, match="public path /v1/capacity/run is a scheduled job's path"):
        load_topology(bad)


@pytest.mark.parametrize(
    "function",
    [
        "{capability: a, trigger: pubsub, topic: t, public_paths: [/v1/x]}",
        "{capability: a, trigger: http, public: true, public_paths: [/v1/x]}",
    ],
)
def test_only_a_non_public_http_function_takes_public_paths(tmp_path: Path, function: str) -> None:
    bad = _topology(tmp_path, f"  fn: {function}\n")
    with pytest.raises(ValueError, match="only a non-public http function takes `public_paths`"):
        load_topology(bad)


def test_paths_that_agree_load(tmp_path: Path) -> None:
    good = _topology(
        tmp_path,
        "  a1: {capability: a, trigger: http, public_paths: [/dashboards, /dashboards/*]}\n"
        "  a2: {capability: a, trigger: http, public_paths: [/v1/dead-letters, /v1/dead-letters/*]}\n",
        "{tick: {function: a2, cron: '* * * * *', path: /v1/dead-letters/run, attempt_deadline: 60s}}",
    )
    assert list(load_topology(good).load_balanced()) == ["a1", "a2"]


# --- Terraform builds the load balancer from it ------------------------------------------------


def test_terraform_takes_the_functions_with_public_paths_from_the_topology() -> None:
    iap_functions = _locals(PUBLIC_ACCESS)["iap_functions"]
    assert iap_functions == (
        "${{for name, fn in local.functions : name => fn if length(try(fn.public_paths, [])) > 0}}"
    )
    for kind in (
        "google_compute_region_network_endpoint_group",
        "google_compute_backend_service",
        "google_cloud_run_service_iam_member",
    ):
        name = "iap_invoker" if kind == "google_cloud_run_service_iam_member" else "functions"
        assert _lb(kind, name)["for_each"] == "${local.iap_functions}", kind


def test_each_function_gets_a_serverless_neg_of_the_cloud_run_form() -> None:
    neg = _lb("google_compute_region_network_endpoint_group", "functions")
    assert neg["network_endpoint_type"] == "SERVERLESS"
    assert neg["region"] == "${var.region}"
    # A gen2 function is a Cloud Run service: `cloud_run`, never `cloud_function` (1st gen only).
    assert neg["cloud_run"] == [{"service": "${module.function[each.key].service_name}"}]
    assert "cloud_function" not in neg
    outputs = load_hcl(TERRAFORM / "modules/function/outputs.tf")["output"]
    service_name = next(block["service_name"] for block in outputs if "service_name" in block)
    assert "google_cloudfunctions2_function.function.service_config[0].service" in service_name["value"]


def test_each_backend_service_has_iap_with_the_google_managed_client() -> None:
    backend = _lb("google_compute_backend_service", "functions")
    assert backend["iap"] == [{"enabled": True}]  # no oauth2_client_id: Google-managed client
    assert backend["backend"] == [
        {"group": "${google_compute_region_network_endpoint_group.functions[each.key].id}"}
    ]
    assert backend["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    assert backend["log_config"][0]["enable"] is True
    assert "health_checks" not in backend  # serverless NEGs take none


def test_the_url_map_has_a_path_rule_for_each_declared_path_and_nothing_else_reaches_a_function() -> None:
    url_map = _lb("google_compute_url_map", "public")
    [host_rule] = url_map["host_rule"]
    assert host_rule["hosts"] == ["${var.public_access.domain}"]
    [matcher] = url_map["path_matcher"]
    assert matcher["name"] == host_rule["path_matcher"]
    [rules] = [d["path_rule"] for d in matcher["dynamic"] if "path_rule" in d]
    assert rules["for_each"] == "${local.iap_functions}"
    assert rules["content"] == [
        {
            "paths": "${path_rule.value.public_paths}",
            "service": "${google_compute_backend_service.functions[path_rule.key].id}",
        }
    ]
    # Any other host or path is redirected to the dashboards, never sent to a backend.
    assert "default_service" not in url_map
    assert "default_service" not in matcher
    locals_ = _locals(PUBLIC_ACCESS)
    assert locals_["dashboard_path"] == "/dashboards/overview"
    for redirect in (url_map["default_url_redirect"][0], matcher["default_url_redirect"][0]):
        assert redirect["path_redirect"] == "${local.dashboard_path}"
    assert url_map["default_url_redirect"][0]["host_redirect"] == "${var.public_access.domain}"
    # Every path of the topology is one the URL map accepts: it starts with / and the only place
    # a * is allowed is at the end following a / (the path rule syntax).
    for fn in load_topology().load_balanced().values():
        for path in fn.public_paths:
            assert path.startswith("/"), path
            assert "*" not in path.removesuffix("/*"), path
            assert not set("?#") & set(path), path


def test_https_on_443_with_a_managed_certificate_and_http_only_redirects() -> None:
    certificate = _lb("google_compute_managed_ssl_certificate", "public")
    assert certificate["managed"] == [{"domains": ["${var.public_access.domain}"]}]
    proxy = _lb("google_compute_target_https_proxy", "public")
    assert proxy["url_map"] == "${google_compute_url_map.public.id}"
    assert proxy["ssl_certificates"] == ["${google_compute_managed_ssl_certificate.public.id}"]
    policy = _lb("google_compute_ssl_policy", "public")
    assert (policy["min_tls_version"], policy["profile"]) == ("TLS_1_2", "MODERN")
    assert proxy["ssl_policy"] == "${google_compute_ssl_policy.public.id}"
    https = _lb("google_compute_global_forwarding_rule", "https")
    http = _lb("google_compute_global_forwarding_rule", "http")
    assert (https["port_range"], https["target"]) == ("443", "${google_compute_target_https_proxy.public.id}")
    assert (http["port_range"], http["target"]) == (
        "80",
        "${google_compute_target_http_proxy.http_redirect.id}",
    )
    for rule in (https, http):
        assert rule["ip_address"] == "${google_compute_global_address.public.id}"
        assert rule["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    redirect = _lb("google_compute_url_map", "http_redirect")
    assert redirect["default_url_redirect"][0]["https_redirect"] is True
    assert set(redirect) <= {
        "name",
        "description",
        "default_url_redirect",
        "depends_on",
    }  # no backend on port 80
    assert _lb("google_compute_target_http_proxy", "http_redirect")["url_map"] == (
        "${google_compute_url_map.http_redirect.id}"
    )


def test_iap_is_enabled_and_its_agent_created() -> None:
    assert _lb("google_project_service", "iap")["service"] == "iap.googleapis.com"
    identity = _lb("google_project_service_identity", "iap")
    assert identity["service"] == "iap.googleapis.com"
    assert identity["provider"] == "google-beta"  # the resource is in google-beta only
    versions = load_hcl(TERRAFORM / "versions.tf")
    required = versions["terraform"][0]["required_providers"][0]
    assert required["google-beta"]["source"] == "hashicorp/google-beta"
    assert any("google-beta" in block for block in versions["provider"])


def test_ingress_from_the_load_balancer_only_for_functions_with_public_paths() -> None:
    # ingest's comes from var.ingest_ingress (tests/test_ingest_ingress.py).
    assert _module_call()["ingress"] == (
        '${each.key == "ingest" ? var.ingest_ingress : contains(keys(local.iap_functions), each.key) '
        '? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_INTERNAL_ONLY"}'
    )
    function = _resources(TERRAFORM / "modules/function/main.tf")[
        ("google_cloudfunctions2_function", "function")
    ]
    assert function["service_config"][0]["ingress_settings"] == '${var.public ? "ALLOW_ALL" : var.ingress}'
    # What that gives each function of the topology.
    ingress = {
        name: "ALLOW_ALL"
        if fn.public
        else "ALLOW_INTERNAL_AND_GCLB"
        if fn.public_paths
        else "ALLOW_INTERNAL_ONLY"
        for name, fn in load_topology().functions.items()
    }
    assert ingress["route"] == "ALLOW_ALL"
    assert {n for n, i in ingress.items() if i == "ALLOW_INTERNAL_AND_GCLB"} == set(EXPECTED_PATHS)
    assert {n for n, i in ingress.items() if i == "ALLOW_INTERNAL_ONLY"} == {
        "ingest",
        "ingest_pubsub",
        "fan_out_alerts",
        "redeliver_alerts",
        "evaluate_alerts_on_ingest",
        "store_dead_letters",
        "snapshot_cost_budget",
    }
    for path in TF_FILES:
        assert "load_balanced_functions" not in path.read_text(), path


def test_the_iap_agent_invokes_each_exposed_function_on_its_own_service() -> None:
    invoker = _lb("google_cloud_run_service_iam_member", "iap_invoker")
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["service"] == "${module.function[each.key].service_name}"
    assert invoker["location"] == "${var.region}"
    assert invoker["member"] == "serviceAccount:${google_project_service_identity.iap.email}"


def test_people_are_allowed_per_backend_service() -> None:
    accessor = _lb("google_iap_web_backend_service_iam_member", "people")
    assert accessor["role"] == "roles/iap.httpsResourceAccessor"
    assert accessor["for_each"] == "${local.iap_accessors}"
    assert accessor["web_backend_service"] == (
        "${google_compute_backend_service.functions[each.value.function].name}"
    )
    assert accessor["member"] == "${each.value.member}"
    accessors = _locals(PUBLIC_ACCESS)["iap_accessors"]
    assert "setproduct(keys(local.iap_functions), toset(var.public_access.members))" in accessors


PROJECT_WIDE = (
    "google_project_iam_member",
    "google_project_iam_binding",
    "google_project_iam_policy",
    # IAP's project-level web resources: everything behind IAP in the project.
    "google_iap_web_iam_member",
    "google_iap_web_iam_binding",
    "google_iap_web_iam_policy",
    "google_iap_web_type_compute_iam_member",
    "google_iap_web_type_compute_iam_binding",
    "google_iap_web_type_compute_iam_policy",
)


def test_no_iap_accessor_or_invoker_is_project_wide() -> None:
    for (path, kind, name), body in _all_resources().items():
        if kind in PROJECT_WIDE:
            role = str(body.get("role"))
            assert "iap" not in role, (path, kind, name)
            assert role != "roles/run.invoker", (path, kind, name)
            assert "iap" not in str(body.get("member")), (path, kind, name)
        if kind.startswith("google_iap_"):
            assert kind == "google_iap_web_backend_service_iam_member", (path, kind, name)
    assert not [key for key in _all_resources() if key[1] in PROJECT_WIDE[3:]]


def test_all_users_only_ever_invoke_route() -> None:
    public = [
        key
        for key, body in _all_resources().items()
        if any(m in json.dumps(body) for m in ("allUsers", "allAuthenticatedUsers"))
    ]
    assert public == [("modules/function/main.tf", "google_cloud_run_service_iam_member", "public")]


# --- Links are derived from the domain ----------------------------------------------------------


def test_every_link_base_is_the_load_balancers_https_base() -> None:
    assert _locals(PUBLIC_ACCESS)["public_base_url"] == "https://${var.public_access.domain}"
    module = TERRAFORM / "modules" / "settings" / "main.tf"
    locals_ = _locals(module)
    assert locals_["public_base_url"] == "https://${var.public_access.domain}"
    settings = locals_["operator_settings"]
    # Not a link: the external dead man's switch evaluate_alerts pings (test_terraform_monitoring).
    links = [name for name in settings if name.endswith("_URL") and name != "ION_ALERTS_HEARTBEAT_URL"]
    assert {name: settings[name] for name in links} == {
        "ION_FANOUT_PUBLIC_URL": "${local.public_base_url}",
        "ION_DASHBOARD_URL": "${local.public_base_url}/dashboards/overview",
        "ION_REPORTS_PUBLIC_URL": "${local.public_base_url}",
        "ION_HEALTH_PUBLIC_URL": "${local.public_base_url}",
        "ION_DEADLETTERS_URL": "${local.public_base_url}",
        "ION_COST_DASHBOARD_URL": "${local.public_base_url}/dashboards/overview",
    }
    for path in TF_FILES:
        assert "public_urls" not in path.read_text(), path


def test_each_function_that_writes_links_takes_its_link_base() -> None:
    functions = load_topology().functions
    wanted = {
        "fan_out_alerts": {"ION_FANOUT_PUBLIC_URL", "ION_DASHBOARD_URL"},
        "manage_alerts": {"ION_FANOUT_PUBLIC_URL", "ION_DASHBOARD_URL"},
        "mail_reports": {"ION_REPORTS_PUBLIC_URL"},
        "score_health": {"ION_HEALTH_PUBLIC_URL"},
        "store_dead_letters": {"ION_DEADLETTERS_URL"},
        "manage_dead_letters": {"ION_DEADLETTERS_URL"},
        "snapshot_cost": {"ION_COST_DASHBOARD_URL"},
        "snapshot_cost_budget": {"ION_COST_DASHBOARD_URL"},
    }
    for name, settings in wanted.items():
        assert settings <= set(functions[name].settings_from), name


def test_the_outputs_give_the_dns_record_to_create() -> None:
    outputs = {k: v for block in load_hcl(PUBLIC_ACCESS)["output"] for k, v in block.items()}
    assert outputs["public_ip"]["value"] == "${google_compute_global_address.public.address}"
    assert outputs["public_base_url"]["value"] == "${local.public_base_url}"


# --- The variable refuses what IAP must not let in (terraform plan, offline, no provider) --------


def _variable_block(text: str, name: str) -> str:
    """The source of `variable "<name>" { ... }`, braces matched outside strings."""
    start = text.index(f'variable "{name}" {{')
    depth, in_string, i = 0, False, start
    while True:
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
        i += 1


def test_the_public_access_variable_is_required_and_validated() -> None:
    variables = {k: v for block in load_hcl(TERRAFORM / "variables.tf")["variable"] for k, v in block.items()}
    spec = variables["public_access"]
    assert "default" not in spec  # a deployment must say its domain and who may open it
    assert len(spec["validation"]) == 4


@pytest.fixture(scope="module")
def plan_public_access(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if shutil.which("terraform") is None:
        pytest.skip("terraform CLI not installed")
    config = tmp_path_factory.mktemp("public_access_variable")
    # Only the variable: no provider, so `terraform plan` runs offline without init.
    (config / "variables.tf").write_text(
        _variable_block((TERRAFORM / "variables.tf").read_text(), "public_access") + "\n"
    )

    def plan(domain: str, members: list[str]) -> subprocess.CompletedProcess[str]:
        value = f"{{domain = {json.dumps(domain)}, members = {json.dumps(members)}}}"
        return subprocess.run(
            [
                "terraform",
                "plan",
                "-input=false",
                "-no-color",
                "-refresh=false",
                f"-var=public_access={value}",
            ],
            cwd=config,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "TF_DATA_DIR": str(config / ".terraform")},
        )

    return plan


@pytest.mark.parametrize(
    ("domain", "members"),
    [
        ("ops.example.com", ["group:ion-ops@example.com"]),
        (
            "ion-ops.eu1.example.co.uk",
            ["user:ada.l@example.com", "domain:example.com", "group:sre@example.org"],
        ),
    ],
)
def test_good_public_access_plans(plan_public_access, domain: str, members: list[str]) -> None:  # type: ignore[no-untyped-def]
    planned = plan_public_access(domain, members)
    assert planned.returncode == 0, planned.stdout + planned.stderr


DOMAIN = "public_access.domain must be a lower-case DNS name"
MEMBER_FORM = "Each of public_access.members must be group:<email>"
EVERYONE = "must not be allUsers or allAuthenticatedUsers"


@pytest.mark.parametrize(
    ("domain", "members", "error"),
    [
        ("https://ops.example.com", ["group:g@example.com"], DOMAIN),
        ("ops.example.com/dashboards", ["group:g@example.com"], DOMAIN),
        ("ops.example.com.", ["group:g@example.com"], DOMAIN),
        ("ops.example.com:443", ["group:g@example.com"], DOMAIN),
        ("Ops.Example.com", ["group:g@example.com"], DOMAIN),
        ("localhost", ["group:g@example.com"], DOMAIN),
        ("127.0.0.1", ["group:g@example.com"], DOMAIN),
        ("-ops.example.com", ["group:g@example.com"], DOMAIN),
        ("ops.example.com", [], "must name at least one"),
        ("ops.example.com", ["allUsers"], EVERYONE),
        ("ops.example.com", ["group:g@example.com", "allAuthenticatedUsers"], EVERYONE),
        ("ops.example.com", ["ops@example.com"], MEMBER_FORM),
        ("ops.example.com", ["serviceAccount:ci@p.iam.gserviceaccount.com"], MEMBER_FORM),
        ("ops.example.com", ["user:"], MEMBER_FORM),
        ("ops.example.com", ["group:ops"], MEMBER_FORM),
        ("ops.example.com", ["domain:https://example.com"], MEMBER_FORM),
        ("ops.example.com", ["domain:user@example.com"], MEMBER_FORM),
    ],
)
def test_bad_public_access_is_refused_naming_the_problem(  # type: ignore[no-untyped-def]
    plan_public_access, domain: str, members: list[str], error: str
) -> None:
    planned = plan_public_access(domain, members)
    assert planned.returncode != 0
    output = re.sub(r"\s+", " ", planned.stderr + planned.stdout)
    assert error in output, output
