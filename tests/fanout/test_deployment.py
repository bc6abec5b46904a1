"""No silent channel: deployed, fan-out refuses to start without a routed channel's settings or
with links people cannot open (not https, loopback, a function's own URL); locally the log channel
stands in and says so (``logged_instead``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.topology import ROOT

CHANNELS = {
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_CHANNEL": "C0ALERTS",
    "PAGERDUTY_ROUTING_KEY": "R0UTINGKEY",
    "SMTP_HOST": "smtp.example.com",
    "ALERT_EMAIL_TO": "oncall@example.com",
    "ALERT_EMAIL_FROM": "ion-ops@example.com",
    "ION_FANOUT_PUBLIC_URL": "https://ops.example.com",
    "ION_DASHBOARD_URL": "https://ops.example.com/dashboards/overview",
    "ION_FANOUT_TASKS_QUEUE": "projects/ion-ops-prod/locations/us-central1/queues/fanout-timers",
    "ION_FANOUT_FLUSH_URL": "https://manage-alerts-123456789.us-central1.run.app/v1/flush/group",
    "ION_FANOUT_TASKS_SERVICE_ACCOUNT": "ion-ops-fanout-tasks@ion-ops-prod.iam.gserviceaccount.com",
}
TIMER_SETTINGS = ("ION_FANOUT_TASKS_QUEUE", "ION_FANOUT_FLUSH_URL", "ION_FANOUT_TASKS_SERVICE_ACCOUNT")


def start(target: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Import main.py as functions-framework does at a deployed function's start."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in CHANNELS and k not in ("K_SERVICE", "ION_FANOUT_TASKS_ENDPOINT")
    }
    return subprocess.run(
        [sys.executable, "-c", "import main"],
        cwd=ROOT,
        env={**clean, "FUNCTION_TARGET": target, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("target", ["fan_out_alerts", "manage_alerts"])
def test_deployed_without_channel_settings_refuses_to_start_naming_them(target: str) -> None:
    started = start(target, K_SERVICE="fan-out-alerts")
    assert started.returncode != 0
    for variable in (
        "SLACK_BOT_TOKEN",
        "SLACK_CHANNEL",
        "PAGERDUTY_ROUTING_KEY",
        "SMTP_HOST",
        "ALERT_EMAIL_TO",
    ):
        assert variable in started.stderr
    assert "ION_FANOUT_PUBLIC_URL is http://127.0.0.1:8084" in started.stderr


def test_deployed_with_every_setting_starts() -> None:
    from tests.security.deployed import ROLE_SETTINGS

    started = start("fan_out_alerts", K_SERVICE="fan-out-alerts", **CHANNELS, **ROLE_SETTINGS)
    assert started.returncode == 0, started.stderr


def test_one_missing_variable_is_named_alone() -> None:
    partial = {k: v for k, v in CHANNELS.items() if k != "SLACK_CHANNEL"}
    started = start("fan_out_alerts", K_SERVICE="fan-out-alerts", **partial)
    assert started.returncode != 0
    assert "channel slack is routed to but SLACK_CHANNEL is not set" in started.stderr
    assert "PAGERDUTY" not in started.stderr


@pytest.mark.parametrize("target", ["fan_out_alerts", "manage_alerts"])
@pytest.mark.parametrize("missing", TIMER_SETTINGS)
def test_deployed_without_a_timer_setting_refuses_to_start_naming_it(target: str, missing: str) -> None:
    partial = {k: v for k, v in CHANNELS.items() if k != missing}
    started = start(target, K_SERVICE=target.replace("_", "-"), **partial)
    assert started.returncode != 0
    assert f"{missing} is not set: group timers need" in started.stderr
    assert all(other not in started.stderr for other in TIMER_SETTINGS if other != missing)


def test_deployed_timers_refuse_a_loopback_flush_url() -> None:
    started = start(
        "manage_alerts",
        K_SERVICE="manage-alerts",
        **(CHANNELS | {"ION_FANOUT_FLUSH_URL": "http://127.0.0.1:8084/v1/flush/group"}),
        ION_FANOUT_TASKS_ENDPOINT="http://localhost:8692",
    )
    assert started.returncode != 0
    assert "ION_FANOUT_FLUSH_URL is http://127.0.0.1:8084/v1/flush/group" in started.stderr
    # The API endpoint is a stand-in redirect (as the emulator hosts are), not a deployed setting.
    assert "ION_FANOUT_TASKS_ENDPOINT" not in started.stderr


@pytest.mark.parametrize(
    ("variable", "url", "reason"),
    [
        (
            "ION_FANOUT_PUBLIC_URL",
            "https://manage-alerts-abc123-uc.a.run.app",
            "a function's own URL is internal",
        ),
        (
            "ION_DASHBOARD_URL",
            "https://mail-reports-123456789.us-central1.run.app/dashboards/overview",
            "a function's own URL is internal",
        ),
        (
            "ION_DASHBOARD_URL",
            "https://us-central1-proj.cloudfunctions.net/mail_reports/dashboards/overview",
            "a function's own URL is internal",
        ),
        ("ION_FANOUT_PUBLIC_URL", "http://ops.example.com", "a link base must be an https:// address"),
        (
            "ION_DASHBOARD_URL",
            "https://localhost/dashboards/overview",
            "links would point at a loopback address",
        ),
        ("ION_FANOUT_PUBLIC_URL", "", "is not set"),
    ],
)
def test_deployed_links_people_cannot_open_refuse_to_start_naming_them(
    variable: str, url: str, reason: str
) -> None:
    started = start("manage_alerts", K_SERVICE="manage-alerts", **(CHANNELS | {variable: url}))
    assert started.returncode != 0
    assert variable in started.stderr
    assert reason in started.stderr
    other = ({"ION_FANOUT_PUBLIC_URL", "ION_DASHBOARD_URL"} - {variable}).pop()
    assert other not in started.stderr


def test_the_load_balancers_base_is_accepted_for_both_links() -> None:
    from functions.fanout.deployment import settings_problems
    from functions.fanout.settings import FanoutSettings

    settings = FanoutSettings.model_validate(CHANNELS | {"K_SERVICE": "manage-alerts"})
    assert settings_problems(settings, {"log"}) == []


def test_locally_the_same_settings_start_and_fan_out_checks_only_its_own_functions() -> None:
    assert start("fan_out_alerts").returncode == 0
    # Other functions have checks of their own (tests/test_rehearsal.py), none about channels.
    from tests.security.deployed import ROLE_SETTINGS

    started = start(
        "ingest", K_SERVICE="ingest", ION_COLLECTOR_RUN_SERVICES="persona-router", **ROLE_SETTINGS
    )
    assert started.returncode == 0, started.stderr


@pytest.mark.emulators
def test_a_local_stand_in_is_recorded_as_logged_instead_never_delivered(fs, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import functions_framework

    from functions.fanout.records import NOTIFICATIONS
    from tests.fanout.conftest import PUSH_PATH, make_transition
    from tests.pubsub_helpers import push_envelope

    for variable in CHANNELS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("ION_FANOUT_OUTBOX", str(tmp_path))
    app = functions_framework.create_app("fan_out_alerts", str(ROOT / "main.py"), "cloudevent").test_client()
    firing = make_transition(severity="critical")
    assert app.post(PUSH_PATH, json=push_envelope(firing.model_dump(mode="json"))).status_code == 200
    records = [s.to_dict() for s in fs.collection(NOTIFICATIONS).stream()]
    assert len(records) == 1
    deliveries = records[0]["deliveries"]
    assert {name: d["status"] for name, d in deliveries.items()} == {
        "pagerduty": "logged_instead",
        "slack": "logged_instead",
    }
    assert sorted(p.name.rsplit("-", 1)[1] for p in tmp_path.glob("*.json")) == [
        "pagerduty.json",
        "slack.json",
    ]


def test_a_localhost_sender_refuses_to_start_when_email_is_routed() -> None:
    started = start(
        "fan_out_alerts", K_SERVICE="fan-out-alerts", **(CHANNELS | {"ALERT_EMAIL_FROM": "ion-ops@localhost"})
    )
    assert started.returncode != 0
    assert "ALERT_EMAIL_FROM is ion-ops@localhost" in started.stderr
