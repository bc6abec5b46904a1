"""The watcher watched from outside and the logs as the seeds ask (terraform/monitoring.tf,
terraform/logging.tf), asserted over the parsed HCL: every push subscription and dead-letter hold
subscription has its policy (oldest unacked message over 30 s; anything held), every function its
5xx policy, the evaluator its 180 s absence policy, every policy both watchdog channels (email and
PagerDuty, its key never in plain text) and a runbook; log buckets kept 30 and 90 days filled by
their sinks; the log-based metrics; the variables validated (an offline terraform apply of the
variables alone against good and bad values)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shared.topology import load_topology
from tests.test_public_access import _variable_block
from tests.test_topology_and_terraform import TERRAFORM, load_hcl

TF_FILES = sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)


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


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for (_, k, name), body in _all_resources().items() if k == kind}


def _policy(name: str) -> dict[str, Any]:
    return _of_kind("google_monitoring_alert_policy")[name]


def _locals(path: Path) -> dict[str, Any]:
    return {k: v for block in load_hcl(path).get("locals", []) for k, v in block.items()}


MONITORING = _locals(TERRAFORM / "monitoring.tf")
LOGGING = _locals(TERRAFORM / "logging.tf")


def _threshold(policy: dict[str, Any]) -> dict[str, Any]:
    [condition] = policy["conditions"]
    [threshold] = condition["condition_threshold"]
    return threshold


def _unescaped(text: str) -> str:
    return text.replace('\\"', '"')


# --- Push subscriptions and dead letters ------------------------------------------------------


def test_every_pubsub_subscription_terraform_creates_is_watched() -> None:
    """A new subscription resource fails here until a policy watches it."""
    subscriptions = {
        (path, name) for (path, kind, name) in _all_resources() if kind == "google_pubsub_subscription"
    }
    assert subscriptions == {
        ("modules/function/main.tf", "push"),  # each event function's own
        ("main.tf", "dead_letter_push"),  # each dead-letter topic's push to the sink
        ("main.tf", "dead_letter"),  # each dead-letter topic's hold
    }
    main = _resources(TERRAFORM / "main.tf")
    watched = MONITORING["watched_push_subscriptions"]
    # Every event function's subscription, by the module's own output of its name ...
    assert "for name, fn in local.functions" in watched
    assert "module.function[name].push_subscription if try(fn.topic, null) != null" in watched
    output = load_hcl(TERRAFORM / "modules" / "function" / "outputs.tf")["output"]
    [push_output] = [block["push_subscription"] for block in output if "push_subscription" in block]
    assert push_output["value"] == "${local.is_event ? google_pubsub_subscription.push[0].name : null}"
    # ... and every dead-letter push, keyed as the resources are.
    assert (
        main[("google_pubsub_subscription", "dead_letter_push")]["for_each"] == "${local.dead_letter_pushes}"
    )
    assert "for key, _ in local.dead_letter_pushes" in watched
    assert "google_pubsub_subscription.dead_letter_push[key].name" in watched
    holds = MONITORING["watched_dead_letter_holds"]
    assert main[("google_pubsub_subscription", "dead_letter")]["for_each"] == "${local.dead_letter_topics}"
    assert "for topic, _ in local.dead_letter_topics" in holds
    assert "google_pubsub_subscription.dead_letter[topic].name" in holds

    assert _policy("push_backlog")["for_each"] == "${local.watched_push_subscriptions}"
    assert _policy("dead_letter_backlog")["for_each"] == "${local.watched_dead_letter_holds}"
    # What that covers in today's topology.
    topology = load_topology()
    event_functions = {name for name, fn in topology.functions.items() if fn.topic}
    assert {
        "ingest_pubsub",
        "fan_out_alerts",
        "evaluate_alerts_on_ingest",
        "snapshot_cost_budget",
    } <= event_functions
    assert "alerts" in topology.topics
    assert "alert-deliveries" in topology.topics


def test_a_push_subscription_pages_when_its_oldest_message_waits_over_30_s() -> None:
    assert MONITORING["push_age_threshold_seconds"] == 30  # the seeds' queue processing target
    threshold = _threshold(_policy("push_backlog"))
    flt = _unescaped(threshold["filter"])
    assert 'metric.type="pubsub.googleapis.com/subscription/oldest_unacked_message_age"' in flt
    assert 'resource.type="pubsub_subscription"' in flt
    assert 'resource.labels.subscription_id="${each.value}"' in flt
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["threshold_value"] == "${local.push_age_threshold_seconds}"
    assert threshold["aggregations"][0]["per_series_aligner"] == "ALIGN_MAX"


def test_a_dead_letter_hold_pages_when_anything_is_held() -> None:
    threshold = _threshold(_policy("dead_letter_backlog"))
    flt = _unescaped(threshold["filter"])
    assert 'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages"' in flt
    assert 'resource.labels.subscription_id="${each.value}"' in flt
    assert (threshold["comparison"], threshold["threshold_value"]) == ("COMPARISON_GT", 0)


# --- Functions, scheduler, the evaluator ------------------------------------------------------


def test_every_function_has_a_5xx_ratio_policy_on_its_own_service() -> None:
    policy = _policy("function_5xx")
    assert policy["for_each"] == "${local.functions}"
    # The service name is the function's name as the module deploys it.
    module = next(m["function"] for m in load_hcl(TERRAFORM / "main.tf")["module"] if "function" in m)
    assert module["name"] == '${replace(each.key, "_", "-")}'
    assert LOGGING["service_names"] == '${{for name, _ in local.functions : name => replace(name, "_", "-")}}'
    threshold = _threshold(policy)
    numerator, denominator = _unescaped(threshold["filter"]), _unescaped(threshold["denominator_filter"])
    service = 'resource.labels.service_name="${local.service_names[each.key]}"'
    for flt in (numerator, denominator):
        assert service in flt
        assert 'metric.type="run.googleapis.com/request_count"' in flt
    assert 'metric.labels.response_code_class="5xx"' in numerator
    assert "response_code_class" not in denominator
    assert threshold["comparison"] == "COMPARISON_GT"
    assert 0 < threshold["threshold_value"] <= 0.1
    assert threshold["aggregations"] == threshold["denominator_aggregations"]


def test_scheduler_failures_page_by_job_from_the_log_based_metric() -> None:
    metric = _of_kind("google_logging_metric")["scheduler_job_failures"]
    flt = _unescaped(metric["filter"])
    assert "${local.scheduler_logs}" in flt
    assert 'jsonPayload."@type"="type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished"' in flt
    assert "severity>=ERROR" in flt
    assert metric["label_extractors"] == {"job": "EXTRACT(resource.labels.job_id)"}
    scheduler_logs = _unescaped(LOGGING["scheduler_logs"])
    assert 'resource.type="cloud_scheduler_job"' in scheduler_logs
    assert "sort(keys(local.schedules))" in scheduler_logs  # every job of topology.yaml
    threshold = _threshold(_policy("scheduler_failures"))
    assert "${google_logging_metric.scheduler_job_failures.name}" in threshold["filter"]
    assert threshold["aggregations"][0]["group_by_fields"] == ["metric.label.job"]


def test_no_evaluation_for_3_minutes_pages() -> None:
    policy = _policy("evaluation_absent")
    [condition] = policy["conditions"]
    [absent] = condition["condition_absent"]
    assert absent["duration"] == "180s"
    assert "logging.googleapis.com/user/${google_logging_metric.evaluation_cycles.name}" in absent["filter"]
    # One series across revisions: a deployment is not an absence.
    [aggregation] = absent["aggregations"]
    assert aggregation["cross_series_reducer"] == "REDUCE_SUM"
    assert "group_by_fields" not in aggregation
    assert policy["severity"] == "CRITICAL"
    metric = _unescaped(_of_kind("google_logging_metric")["evaluation_cycles"]["filter"])
    # The line tests/alerts/test_heartbeat.py checks the cycle writes.
    assert 'resource.labels.service_name="evaluate-alerts"' in metric
    assert 'jsonPayload.alerts_cycle="full"' in metric
    assert (
        '"alerts_cycle": "full" if full else "partial"'
        in (TERRAFORM.parent / "functions/alerts/main.py").read_text()
    )


def test_a_rule_failing_in_most_cycles_pages_from_the_cycles_own_line() -> None:
    """A rule that fails every cycle is blind while the cycle answers 200: nothing said so."""
    metric = _unescaped(_of_kind("google_logging_metric")["evaluation_cycles_with_errors"]["filter"])
    assert 'resource.labels.service_name="evaluate-alerts"' in metric
    assert 'jsonPayload.alerts_cycle="full"' in metric
    assert "jsonPayload.errors:*" in metric
    # The fields of the cycle's line (functions/alerts/main.py): errors only when a rule failed.
    main = (TERRAFORM.parent / "functions/alerts/main.py").read_text()
    assert '**({"errors": result.errors} if result.errors else {})' in main
    policy = _policy("rule_failing")
    threshold = _threshold(policy)
    assert "${google_logging_metric.evaluation_cycles_with_errors.name}" in threshold["filter"]
    assert (threshold["comparison"], threshold["threshold_value"]) == ("COMPARISON_GT", 2)
    [aggregation] = threshold["aggregations"]
    assert aggregation["alignment_period"] == "300s"
    assert policy["severity"] == "ERROR"


# --- Channels and documentation ----------------------------------------------------------------


def test_every_policy_notifies_both_watchdog_channels_and_says_what_to_do() -> None:
    policies = _of_kind("google_monitoring_alert_policy")
    assert set(policies) == {
        "function_5xx",
        "scheduler_failures",
        "push_backlog",
        "dead_letter_backlog",
        "evaluation_absent",
        "metric_points_refused",
        "rule_failing",
    }
    assert MONITORING["watchdog_channels"] == [
        "${google_monitoring_notification_channel.watchdog_email.id}",
        "${google_monitoring_notification_channel.watchdog_pagerduty.id}",
    ]
    mailed_only = {"metric_points_refused"}  # a warning: data going missing, not ION down
    for name, policy in policies.items():
        channels = (
            ["${google_monitoring_notification_channel.watchdog_email.id}"]
            if name in mailed_only
            else "${local.watchdog_channels}"
        )
        assert policy["notification_channels"] == channels, name
        [doc] = policy["documentation"]
        assert doc["mime_type"] == "text/markdown", name
        assert doc["subject"], name
        assert "${local.runbook}" in doc["content"], name
    assert "What pages whom when ION itself is down" in MONITORING["runbook"]
    readme = (TERRAFORM.parent / "README.md").read_text()
    assert "### What pages whom when ION itself is down" in readme


def test_the_channels_do_not_go_through_ion_and_the_pagerduty_key_is_never_plain() -> None:
    channels = _of_kind("google_monitoring_notification_channel")
    assert {name: body["type"] for name, body in channels.items()} == {
        "watchdog_email": "email",
        "watchdog_pagerduty": "pagerduty",
    }
    assert channels["watchdog_email"]["labels"] == {"email_address": "${var.watchdog.email}"}
    pagerduty = channels["watchdog_pagerduty"]
    assert "labels" not in pagerduty
    [sensitive] = pagerduty["sensitive_labels"]
    # Write-only from an ephemeral read of Secret Manager: in neither plan nor state.
    assert sensitive == {
        "service_key_wo": "${ephemeral.google_secret_manager_secret_version.watchdog_pagerduty.secret_data}",
        "service_key_wo_version": "${tostring(var.watchdog.pagerduty_key_version)}",
    }
    text = (TERRAFORM / "monitoring.tf").read_text()
    assert re.search(
        r'^ephemeral "google_secret_manager_secret_version" "watchdog_pagerduty" \{$', text, re.M
    )
    assert "version = tostring(var.watchdog.pagerduty_key_version)" in text
    secret = _of_kind("google_secret_manager_secret")["watchdog_pagerduty"]
    assert secret["secret_id"] == "${var.watchdog.pagerduty_key_secret}"
    # No function may read it: function secrets come from topology.yaml, which never names it.
    assert all("watchdog" not in json.dumps(fn.secrets) for fn in load_topology().functions.values())
    # Write-only arguments need Terraform 1.11.
    [terraform] = load_hcl(TERRAFORM / "versions.tf")["terraform"]
    assert terraform["required_version"] == ">= 1.11"


# --- Logs -------------------------------------------------------------------------------------


def test_log_buckets_keep_operations_30_and_audit_90_days() -> None:
    buckets = _of_kind("google_logging_project_bucket_config")
    assert buckets["operations"]["retention_days"] == "${var.log_retention.operations_days}"
    assert buckets["audit"]["retention_days"] == "${var.log_retention.audit_days}"
    for bucket in buckets.values():
        assert bucket["location"] == "global"


def test_sinks_fill_the_buckets_and_audit_entries_are_kept_once() -> None:
    sinks = _of_kind("google_logging_project_sink")
    assert set(sinks) == {"operations", "audit"}
    for name, sink in sinks.items():
        assert (
            sink["destination"]
            == f"logging.googleapis.com/${{google_logging_project_bucket_config.{name}.id}}"
        )
        assert sink["unique_writer_identity"] is True
    operations = sinks["operations"]
    assert operations["filter"] == "(${local.functions_logs}) OR (${local.scheduler_logs})"
    [exclusion] = operations["exclusions"]
    assert exclusion["filter"] == "${local.audit_logs}"
    assert sinks["audit"]["filter"] == "${local.audit_logs}"
    audit = _unescaped(LOGGING["audit_logs"])
    assert 'logName:"cloudaudit.googleapis.com"' in audit
    assert "(${local.functions_logs} AND jsonPayload.audit=true)" in audit
    functions_logs = _unescaped(LOGGING["functions_logs"])
    assert 'resource.type="cloud_run_revision"' in functions_logs
    assert "resource.labels.service_name=(${local.services_filter})" in functions_logs
    assert "values(local.service_names)" in LOGGING["services_filter"]


def test_errors_are_counted_by_function() -> None:
    metric = _of_kind("google_logging_metric")["function_errors"]
    assert _unescaped(metric["filter"]) == "${local.functions_logs} AND severity>=ERROR"
    assert metric["label_extractors"] == {"function": "EXTRACT(resource.labels.service_name)"}
    [descriptor] = metric["metric_descriptor"]
    assert (descriptor["metric_kind"], descriptor["value_type"]) == ("DELTA", "INT64")
    assert [label["key"] for label in descriptor["labels"]] == ["function"]


def test_points_refused_from_topic_metrics_are_a_log_based_metric_of_the_field_ingestion_logs() -> None:
    metric = _of_kind("google_logging_metric")["points_refused_from_topic"]
    flt = _unescaped(metric["filter"])
    assert 'resource.labels.service_name="${local.service_names["ingest_pubsub"]}"' in flt
    assert "jsonPayload.refused_from_topic>0" in flt
    assert metric["value_extractor"] == "EXTRACT(jsonPayload.refused_from_topic)"
    [descriptor] = metric["metric_descriptor"]
    assert (descriptor["metric_kind"], descriptor["value_type"]) == ("DELTA", "DISTRIBUTION")
    # The field the handler's line carries (tests/ingestion/test_metrics_topic.py sums it).
    assert '"refused_from_topic":' in (TERRAFORM.parent / "functions/ingestion/ingest.py").read_text()
    assert "ingest_pubsub" in load_topology().functions


def test_points_refused_for_good_page_by_function_from_the_fields_ingestion_logs() -> None:
    """Points past the series limit, or refused from topic metrics, were a log line and nothing
    more: the exporter retries nothing, and over Pub/Sub nobody was told."""
    metric = _of_kind("google_logging_metric")["metric_batches_refused"]
    flt = _unescaped(metric["filter"])
    assert flt.startswith("${local.functions_logs} AND (")
    # The fields the ingestion lines carry (tests/ingestion/test_exactly_once_and_guards.py reads them).
    for field in ("points_refused_by_series_limit", "refused_from_topic"):
        assert f"jsonPayload.{field}>0" in flt
        assert f'"{field}":' in (TERRAFORM.parent / "functions/ingestion/ingest.py").read_text()
    [descriptor] = metric["metric_descriptor"]
    assert (descriptor["metric_kind"], descriptor["value_type"]) == ("DELTA", "INT64")
    assert metric["label_extractors"] == {"function": "EXTRACT(resource.labels.service_name)"}
    policy = _policy("metric_points_refused")
    threshold = _threshold(policy)
    assert "${google_logging_metric.metric_batches_refused.name}" in threshold["filter"]
    assert (threshold["comparison"], threshold["threshold_value"]) == ("COMPARISON_GT", 0)
    [aggregation] = threshold["aggregations"]
    assert aggregation["per_series_aligner"] == "ALIGN_DELTA"
    assert aggregation["group_by_fields"] == ["metric.label.function"]


def test_the_heartbeat_url_reaches_evaluate_alerts_from_the_watchdog_variable() -> None:
    assert "ION_ALERTS_HEARTBEAT_URL" in load_topology().functions["evaluate_alerts"].settings_from
    [settings] = [
        block["operator_settings"]
        for block in load_hcl(TERRAFORM / "modules" / "settings" / "main.tf")["locals"]
        if "operator_settings" in block
    ]
    assert settings["ION_ALERTS_HEARTBEAT_URL"] == "${var.watchdog.heartbeat_url}"


# --- The variables (terraform apply of the variables alone, offline, no provider) -------------


def test_the_watchdog_variable_is_required_and_log_retention_has_the_seeds_defaults() -> None:
    variables = {k: v for block in load_hcl(TERRAFORM / "variables.tf")["variable"] for k, v in block.items()}
    assert "default" not in variables["watchdog"]
    assert len(variables["watchdog"]["validation"]) == 4
    assert variables["log_retention"]["default"] == {}
    assert len(variables["log_retention"]["validation"]) == 2


GOOD_WATCHDOG = {"email": "watchdog@example.com", "heartbeat_url": "https://hc-ping.com/abc-123"}


@pytest.fixture(scope="module")
def apply_variables(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if shutil.which("terraform") is None:
        pytest.skip("terraform CLI not installed")
    config = tmp_path_factory.mktemp("watchdog_variables")
    text = (TERRAFORM / "variables.tf").read_text()
    (config / "main.tf").write_text(
        _variable_block(text, "watchdog")
        + "\n"
        + _variable_block(text, "log_retention")
        + '\noutput "watchdog" {\n  value = var.watchdog\n}\n'
        + 'output "log_retention" {\n  value = var.log_retention\n}\n'
    )

    def apply(watchdog: dict[str, Any], retention: dict[str, Any] | None = None) -> tuple[int, str, dict]:
        def hcl(value: dict[str, Any]) -> str:
            return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + "}"

        args = [f"-var=watchdog={hcl(watchdog)}"]
        if retention is not None:
            args.append(f"-var=log_retention={hcl(retention)}")
        env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "TF_DATA_DIR": str(config / ".terraform")}
        done = subprocess.run(
            ["terraform", "apply", "-auto-approve", "-input=false", "-no-color", *args],
            cwd=config,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
        outputs: dict[str, Any] = {}
        if done.returncode == 0:
            shown = subprocess.run(
                ["terraform", "output", "-json"],
                check=True,
                cwd=config,
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            outputs = {name: value["value"] for name, value in json.loads(shown.stdout).items()}
        return done.returncode, done.stdout + done.stderr, outputs

    return apply


def test_the_defaults_are_the_seeds(apply_variables) -> None:  # type: ignore[no-untyped-def]
    code, output, outputs = apply_variables(GOOD_WATCHDOG)
    assert code == 0, output
    assert outputs["log_retention"] == {"operations_days": 30, "audit_days": 90}
    assert outputs["watchdog"]["pagerduty_key_secret"] == "watchdog-pagerduty-key"
    assert outputs["watchdog"]["pagerduty_key_version"] == 1


@pytest.mark.parametrize(
    ("watchdog", "retention", "error"),
    [
        ({**GOOD_WATCHDOG, "email": "not-an-address"}, None, "watchdog.email"),
        ({**GOOD_WATCHDOG, "heartbeat_url": "http://hc-ping.com/abc"}, None, "watchdog.heartbeat_url"),
        ({**GOOD_WATCHDOG, "heartbeat_url": "https://127.0.0.1:8693/ping"}, None, "watchdog.heartbeat_url"),
        ({**GOOD_WATCHDOG, "heartbeat_url": "https://localhost/ping"}, None, "watchdog.heartbeat_url"),
        (
            {**GOOD_WATCHDOG, "heartbeat_url": "https://evaluate-alerts-1234.us-central1.run.app/"},
            None,
            "watchdog.heartbeat_url",
        ),
        ({**GOOD_WATCHDOG, "pagerduty_key_secret": "a/b"}, None, "watchdog.pagerduty_key_secret"),
        ({**GOOD_WATCHDOG, "pagerduty_key_version": 0}, None, "watchdog.pagerduty_key_version"),
        (GOOD_WATCHDOG, {"audit_days": 30}, "log_retention.audit_days must be at least 90"),
        (GOOD_WATCHDOG, {"operations_days": 0}, "log_retention days must be whole numbers"),
        (GOOD_WATCHDOG, {"operations_days": 4000}, "log_retention days must be whole numbers"),
    ],
)
def test_bad_values_are_refused_naming_them(apply_variables, watchdog, retention, error) -> None:  # type: ignore[no-untyped-def]
    code, output, _ = apply_variables(watchdog, retention)
    assert code != 0
    assert error in " ".join(output.split()), output
