"""The group timers are deployed: Terraform creates the queue, lets both fan-out functions enqueue
as the tasks' identity, lets that identity invoke manage_alerts, and hands every function that
arms timers the settings its start-up check requires."""

from __future__ import annotations

from typing import Any

from devtools.cloudtasks_standin import FANOUT_QUEUE, RetryConfig
from functions.fanout.deployment import TIMER_FUNCTIONS, timer_problems
from functions.fanout.settings import FanoutSettings
from shared.topology import ROOT, load_topology
from tests.test_topology_and_terraform import load_hcl

TIMERS_TF = ROOT / "terraform" / "fanout_timers.tf"
TIMER_SETTINGS = {"ION_FANOUT_TASKS_QUEUE", "ION_FANOUT_FLUSH_URL", "ION_FANOUT_TASKS_SERVICE_ACCOUNT"}


def resources(kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for block in load_hcl(TIMERS_TF)["resource"]:
        found.update(block.get(kind, {}))
    return found


def locals_() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in load_hcl(TIMERS_TF)["locals"]:
        merged.update(block)
    return merged


def test_the_queue_retries_as_the_local_stand_in_does() -> None:
    queue = resources("google_cloud_tasks_queue")["fanout_timers"]
    assert queue["name"] == FANOUT_QUEUE
    retry = queue["retry_config"][0]
    local = RetryConfig()
    assert (retry["max_attempts"], retry["min_backoff"], retry["max_backoff"]) == (
        local.max_attempts,
        f"{local.min_backoff:g}s",
        f"{local.max_backoff:g}s",
    )


def test_both_fan_out_functions_may_enqueue_as_the_tasks_identity_which_may_invoke_manage_alerts() -> None:
    armers = locals_()["fanout_timer_functions"]
    assert set(load_topology().functions_of("fanout")) >= TIMER_FUNCTIONS
    assert (
        set(str(armers).replace("${toset(", "").replace(")}", "").strip("[]").replace('"', "").split(", "))
        == TIMER_FUNCTIONS
    )
    enqueuer = resources("google_cloud_tasks_queue_iam_member")["fanout_enqueuer"]
    assert enqueuer["role"] == "roles/cloudtasks.enqueuer"
    assert "module.function[each.key].service_account" in enqueuer["member"]
    acts_as = resources("google_service_account_iam_member")["fanout_tasks_user"]
    assert acts_as["role"] == "roles/iam.serviceAccountUser"
    assert "google_service_account.fanout_tasks.name" in acts_as["service_account_id"]
    invoker = resources("google_cloud_run_service_iam_member")["fanout_tasks_invoker"]
    assert invoker["role"] == "roles/run.invoker"
    assert "manage_alerts" in invoker["service"]
    assert "google_service_account.fanout_tasks.email" in invoker["member"]


def test_every_function_that_arms_timers_gets_the_settings_its_start_up_check_requires() -> None:
    required = {
        FanoutSettings.model_fields[name].validation_alias
        for name in ("tasks_queue", "flush_url", "tasks_service_account")
    }
    assert required == TIMER_SETTINGS
    assert len(timer_problems(FanoutSettings(_env_file=None))) == len(required)  # all refused when unset
    main_tf = load_hcl(ROOT / "terraform" / "main.tf")
    offered = next(block["resource_settings"] for block in main_tf["locals"] if "resource_settings" in block)
    assert set(offered) >= TIMER_SETTINGS
    assert "google_cloud_tasks_queue.fanout_timers.id" in offered["ION_FANOUT_TASKS_QUEUE"]
    for name, fn in load_topology().functions_of("fanout").items():
        if name in TIMER_FUNCTIONS:
            assert set(fn.settings_from) >= TIMER_SETTINGS, name
        else:  # given nothing it does not use
            assert not set(fn.settings_from) & TIMER_SETTINGS, name


def test_the_deployed_flush_url_is_manage_alerts_own_https_url() -> None:
    url = locals_()["fanout_flush_origin"]
    assert url.startswith("https://")
    assert "manage_alerts" in url
    assert ".run.app" in url
    assert locals_()["fanout_flush_url"].endswith("/v1/flush/group")
