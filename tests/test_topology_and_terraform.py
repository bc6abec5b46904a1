"""topology.yaml, main.py and the Terraform agree: every entry point is deployed with the right
trigger, every schedule is a valid cron on an HTTP function, and the HCL is well formed."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest
from croniter import croniter

from shared.topology import ROOT, load_topology

TERRAFORM = ROOT / "terraform"
DECORATOR_TRIGGER = {"http": "http", "cloud_event": "pubsub", "pubsub_push": "pubsub"}


def exported_entry_points() -> dict[str, str]:
    """Entry points main.py defines, with the trigger their functions-framework decorator implies."""
    tree = ast.parse((ROOT / "main.py").read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Name) and decorator.id == "pubsub_push":
                    found[node.name] = DECORATOR_TRIGGER[decorator.id]
                elif (
                    isinstance(decorator, ast.Attribute)
                    and isinstance(decorator.value, ast.Name)
                    and decorator.value.id == "functions_framework"
                    and decorator.attr in DECORATOR_TRIGGER
                ):
                    found[node.name] = DECORATOR_TRIGGER[decorator.attr]
    return found


def _unquote(value):  # type: ignore[no-untyped-def]
    """python-hcl2 keeps HCL's quotes on labels and string literals; drop them for comparison."""
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load_hcl(path: Path) -> dict:
    with path.open() as handle:
        return _unquote(hcl2.load(handle))


def test_topology_validates() -> None:
    topo = load_topology()
    assert topo.capabilities["routing"].port == 8081
    assert topo.capabilities["reports"].port == 8088


def test_main_exports_exactly_the_topology_functions_with_matching_triggers() -> None:
    topo = load_topology()
    exported = exported_entry_points()
    assert set(exported) == set(topo.functions)
    for name, trigger in exported.items():
        assert topo.functions[name].trigger == trigger, name


def test_main_entry_points_are_importable_and_callable() -> None:
    import importlib

    main = importlib.import_module("main")
    for name in load_topology().functions:
        assert callable(getattr(main, name))


def test_schedules_are_valid_crons_on_http_functions() -> None:
    topo = load_topology()
    for name, schedule in topo.schedules.items():
        assert croniter.is_valid(schedule.cron), name
        assert topo.functions[schedule.function].trigger == "http"


def test_invalid_topology_is_refused_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text(
        "capabilities: {routing: {port: 1, port_env: X}}\n"
        "functions: {route: {capability: routing, trigger: pubsub}}\n"
        "topics: {}\nschedules: {}\n"
    )
    with pytest.raises(ValueError, match="needs `topic`"):
        load_topology(bad)


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform CLI not installed")
def test_terraform_is_formatted() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_terraform_reads_the_topology_file_and_deploys_every_function_through_the_module() -> None:
    main_tf = load_hcl(TERRAFORM / "main.tf")
    locals_block = {k: v for block in main_tf["locals"] for k, v in block.items()}
    assert "../topology.yaml" in locals_block["topology"]
    assert "yamldecode" in locals_block["topology"]
    module = next(m["function"] for m in main_tf["module"] if "function" in m)
    assert module["source"] == "./modules/function"
    assert module["for_each"] == "${local.functions}"
    assert module["entry_point"] == "${each.key}"


def test_module_arguments_match_the_module_variables() -> None:
    main_tf = load_hcl(TERRAFORM / "main.tf")
    module = next(m["function"] for m in main_tf["module"] if "function" in m)
    passed = set(module) - {"source", "for_each", "depends_on", "count", "providers"}
    variables = load_hcl(TERRAFORM / "modules" / "function" / "variables.tf")
    declared = {name for block in variables["variable"] for name in block}
    assert passed <= declared, passed - declared
    required = {
        name for block in variables["variable"] for name, spec in block.items() if "default" not in spec
    }
    assert required <= passed, required - passed


def test_every_pubsub_function_gets_a_dead_lettered_push_subscription() -> None:
    module_tf = load_hcl(TERRAFORM / "modules" / "function" / "main.tf")
    subscriptions = [
        r["google_pubsub_subscription"]["push"]
        for r in module_tf["resource"]
        if "google_pubsub_subscription" in r
    ]
    assert len(subscriptions) == 1
    sub = subscriptions[0]
    assert "/projects/${var.project_id}/topics/${var.pubsub_topic}" in sub["push_config"][0]["push_endpoint"]
    assert sub["dead_letter_policy"][0]["max_delivery_attempts"] == "${var.max_delivery_attempts}"


def test_schedules_and_ttl_policies_come_from_the_topology() -> None:
    main_tf = load_hcl(TERRAFORM / "main.tf")
    resources = {}
    for block in main_tf["resource"]:
        for kind, named in block.items():
            for name, body in named.items():
                resources[(kind, name)] = body
    assert resources[("google_cloud_scheduler_job", "jobs")]["for_each"] == "${local.schedules}"
    assert "local.ttl" in resources[("google_firestore_field", "ttl")]["for_each"]
    assert "local.no_index" in resources[("google_firestore_field", "no_index")]["for_each"]
    composite = resources[("google_firestore_index", "composite")]
    assert "local.composite" in composite["for_each"]
    assert "google_firestore_database.route.name" in composite["database"]


def test_index_exemptions_name_fields_the_metric_store_writes() -> None:
    from functions.ingestion.stream_groups import STREAMS_FIELD
    from functions.scaling.store import STATE_COLLECTION, StoredRegion
    from shared.metrics import customer_usage, recording, stamps, store

    written = {
        store.MINUTES: {store.SERIES_MAP, store.SKETCHES, store.APPLIED},
        store.HOURS: {store.SERIES_MAP, store.SKETCHES},
        recording.RULE_HOURS: {store.SERIES_MAP, store.SKETCHES},
        recording.RULE_TAIL: {store.SERIES_MAP, store.SKETCHES},
        stamps.MINUTE_STAMPS: {stamps.STAMPS_MAP},
        store.STREAMS: {store.APPLIED},
        store.STREAM_GROUPS: {store.APPLIED, STREAMS_FIELD},
        customer_usage.USAGE: {customer_usage.CUSTOMERS, customer_usage.REFUSED, store.APPLIED},
        STATE_COLLECTION: {"state", "recent"} & set(StoredRegion.model_fields),
    }
    for exemption in load_topology().index_exemptions:
        assert exemption.field in written[exemption.collection], exemption


def test_every_secret_a_function_reads_is_created_by_terraform() -> None:
    variables = load_hcl(TERRAFORM / "variables.tf")
    secret_ids = next(block["secret_ids"] for block in variables["variable"] if "secret_ids" in block)
    created = set(secret_ids["default"])
    for name, fn in load_topology().functions.items():
        assert set(fn.secrets.values()) <= created, name


def _topology_text(**overrides: str) -> str:
    timeout = overrides.get("timeout", "120")
    return (
        "capabilities: {alerts: {port: 1, port_env: X}}\n"
        f"functions:\n  job: {{capability: alerts, trigger: http, timeout_seconds: {timeout}}}\n"
        f"  consume: {{capability: alerts, trigger: pubsub, topic: t, timeout_seconds: {timeout}}}\n"
        f"topics: {{t: {{ack_deadline_seconds: {overrides.get('ack', '120')}}}}}\n"
        f"schedules: {{tick: {{function: job, cron: '* * * * *', attempt_deadline: {overrides.get('deadline', '90s')}, "
        f"retry_min_backoff: {overrides.get('backoff', '30s')}}}}}\n"
    )


def test_timeouts_that_agree_load(tmp_path: Path) -> None:
    good = tmp_path / "topology.yaml"
    good.write_text(_topology_text())
    assert load_topology(good).schedules["tick"].attempt_deadline == "90s"


def test_a_schedule_waiting_longer_than_its_function_runs_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text(_topology_text(deadline="300s"))
    with pytest.raises(
        ValueError, match="schedule tick: attempt_deadline 300s exceeds job's timeout_seconds 120"
    ):
        load_topology(bad)


def test_a_push_ack_deadline_shorter_than_its_function_timeout_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text(_topology_text(ack="60"))
    with pytest.raises(ValueError, match="function consume: topic t's ack_deadline_seconds 60 is below"):
        load_topology(bad)


def test_every_pair_in_the_real_topology_agrees() -> None:
    """load_topology checks the pairs; this says which ones exist so a new entry is covered."""
    topo = load_topology()
    for name, schedule in topo.schedules.items():
        assert (
            float(schedule.attempt_deadline.rstrip("s")) <= topo.functions[schedule.function].timeout_seconds
        ), name
    for name, fn in topo.functions.items():
        if fn.topic is not None:
            assert topo.topics[fn.topic].ack_deadline_seconds >= fn.timeout_seconds, name


def test_every_dead_letter_topic_is_pushed_to_the_dead_letter_sink() -> None:
    topo = load_topology()
    assert list(topo.dead_letter_sinks()) == ["store_dead_letters"]
    main_tf = load_hcl(TERRAFORM / "main.tf")
    pushes = next(
        body
        for block in main_tf["resource"]
        for kind, named in block.items()
        if kind == "google_pubsub_subscription"
        for name, body in named.items()
        if name == "dead_letter_push"
    )
    assert pushes["for_each"] == "${local.dead_letter_pushes}"
    assert "dead_letter_policy" not in pushes  # a sink that dead-letters would lose the letter
    assert "oidc_token" in pushes["push_config"][0]


def test_a_function_takes_a_topic_or_the_dead_letters_not_both(tmp_path: Path) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text(
        "capabilities: {d: {port: 1, port_env: X}}\n"
        "functions: {sink: {capability: d, trigger: pubsub, topic: t, dead_letters: true}}\n"
        "topics: {t: {}}\nschedules: {}\n"
    )
    with pytest.raises(ValueError, match="either `topic` or `dead_letters`"):
        load_topology(bad)


def _deploy_settings() -> set[str]:
    """Every setting name Terraform can give: modules/settings' operator settings and the root's
    resource settings."""
    offered: set[str] = set()
    for path, local in (
        (TERRAFORM / "modules" / "settings" / "main.tf", "operator_settings"),
        (TERRAFORM / "main.tf", "resource_settings"),
    ):
        for block in load_hcl(path)["locals"]:
            offered |= set(block.get(local, {}))
    assert offered, "no settings found in terraform"
    return offered


def test_every_setting_a_function_takes_from_terraform_exists_there() -> None:
    offered = _deploy_settings()
    for name, fn in load_topology().functions.items():
        assert set(fn.settings_from) <= offered, (name, set(fn.settings_from) - offered)


def test_a_deployed_fan_out_gets_every_variable_its_routed_channels_require() -> None:
    """What check_deployment would refuse to start without is supplied by Terraform: for each
    entry point, what it sends each routed channel with (the webhook function: Slack and
    PagerDuty only)."""
    from functions.fanout.deployment import sends_with
    from functions.fanout.routes import load_routing
    from functions.fanout.settings import DEFAULT_ROUTING_FILE, FanoutSettings

    routing = load_routing(DEFAULT_ROUTING_FILE)
    routed = routing.all_channels()
    fields = FanoutSettings.model_fields
    for name, fn in load_topology().functions_of("fanout").items():
        supplied = set(fn.secrets) | set(fn.settings_from)
        for channel in routed - {"log"}:
            for field in sends_with(name, channel):
                assert fields[field].validation_alias in supplied, (
                    name,
                    channel,
                    fields[field].validation_alias,
                )
        assert {"ION_FANOUT_PUBLIC_URL", "ION_DASHBOARD_URL"} <= supplied


def test_channel_and_link_variables_are_validated_in_terraform() -> None:
    variables = {
        name: spec
        for block in load_hcl(TERRAFORM / "variables.tf")["variable"]
        for name, spec in block.items()
    }
    for name in ("alert_channels", "public_access", "reports", "cost", "scaling_targets"):
        assert "default" not in variables[name], name  # required: a deploy must say them
        assert variables[name]["validation"], name


def test_a_key_written_twice_is_refused_naming_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text(
        "capabilities: {a: {port: 1, port_env: X}}\n"
        "functions:\n  job: {capability: a, trigger: http, timeout_seconds: 60}\n"
        "topics: {}\n"
        "schedules:\n  tick:\n    function: job\n    cron: '* * * * *'\n"
        "    attempt_deadline: 30s\n    attempt_deadline: 300s\n"
    )
    with pytest.raises(ValueError, match="duplicate key 'attempt_deadline' at line 10"):
        load_topology(bad)
