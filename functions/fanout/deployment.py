"""What a deployed fan-out lacks, by entry point: the settings of each channel it sends to, link
bases people can open, the group timers' queue and identity, the webhook function's verifying
secrets. It knows the settings, the channels' registry, the routing and the incident policy; none
of them knows it (``main.py`` runs ``check_deployment`` at start). Each entry point is checked for
what it really sends, so Terraform gives it only those secrets (topology.yaml)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from functions.fanout.channels.registry import kinds, unset_variables
from functions.fanout.incident_policy import PolicyError, load_policy
from functions.fanout.routes import load_routing
from functions.fanout.settings import FanoutSettings
from shared.deployment import load_settings, refuse_to_start
from shared.links import link_base_problem

LOOPBACK = ("://127.", "://localhost", "://[::1]", "://0.0.0.0")
# The entry points that arm group timers (terraform/fanout_timers.tf grants them the queue);
# redeliver_alerts only re-drives a delivery to its channel, so it needs no timer settings.
TIMER_FUNCTIONS = frozenset({"fan_out_alerts", "manage_alerts"})
# The public function of Slack's and PagerDuty's requests: it needs their verifying secrets.
WEBHOOK_FUNCTION = "incident_webhooks"
# What the webhook function sends, by channel, and the settings that takes: it tells Slack (the
# incident's messages updated, replies in their threads, the resolve dialog: the bot token, in the
# channels those messages are in) and PagerDuty (Events v2 acknowledge / resolve: the routing
# key), never mail. A public function holds only the secrets it uses: no SMTP password.
WEBHOOK_SENDS: dict[str, tuple[str, ...]] = {
    "slack": ("slack_bot_token",),
    "pagerduty": ("pagerduty_routing_key",),
}


def settings_problems(settings: FanoutSettings, channels: set[str], *, timers: bool = True) -> list[str]:
    """What a deployed fan-out lacks: each routed channel's unset variables, link bases people
    could not open (not https, loopback, or a function's own internal URL: shared/links.py), and
    with ``timers`` what its group timers need."""
    problems = channel_problems(settings, channels, "")
    if channels & {"email", "contact"} and settings.alert_email_from.endswith("@localhost"):
        problems.append(
            f"ALERT_EMAIL_FROM is {settings.alert_email_from}: mail from a localhost sender is "
            "refused or junked by relays; set the team's sender"
        )
    return problems + link_problems(settings) + (timer_problems(settings) if timers else [])


def link_problems(settings: FanoutSettings) -> list[str]:
    """Link bases in notifications that people could not open."""
    problems = []
    for variable, url in (
        ("ION_FANOUT_PUBLIC_URL", settings.public_url),
        ("ION_DASHBOARD_URL", settings.dashboard_url),
    ):
        problem = link_base_problem(variable, url)
        if problem:
            problems.append(problem)
    return problems


def sends_with(target: str, channel: str) -> tuple[str, ...]:
    """The settings (``FanoutSettings`` fields) entry point ``target`` sends to ``channel`` with:
    the channel's registered ones, or for the webhook function ``WEBHOOK_SENDS``' (none for a
    channel it never sends to)."""
    if target == WEBHOOK_FUNCTION:
        return WEBHOOK_SENDS.get(channel, ())
    return kinds()[channel].requires


def channel_problems(settings: FanoutSettings, channels: set[str], target: str) -> list[str]:
    """The unset variables entry point ``target`` sends to each routed channel with (the webhook
    function: Slack's and PagerDuty's it tells of what their requests changed, no other)."""
    problems = []
    for name in sorted(channels - {"log"}):
        missing = unset_variables(settings, sends_with(target, name))
        if missing:
            problems.append(f"channel {name} is routed to but {', '.join(missing)} is not set")
    return problems


def timer_problems(settings: FanoutSettings) -> list[str]:
    """What deployed group timers lack: without them medium waits for the minute tick."""
    problems = [
        f"{variable} is not set: group timers need {what}"
        for variable, value, what in (
            (
                "ION_FANOUT_TASKS_QUEUE",
                settings.tasks_queue,
                "a Cloud Tasks queue (projects/P/locations/L/queues/Q)",
            ),
            ("ION_FANOUT_FLUSH_URL", settings.flush_url, "the https URL of manage_alerts' /v1/flush/group"),
            (
                "ION_FANOUT_TASKS_SERVICE_ACCOUNT",
                settings.tasks_service_account,
                "the service account of the tasks' OIDC token",
            ),
        )
        if not value
    ]
    # ION_FANOUT_TASKS_ENDPOINT is not checked: like FIRESTORE_EMULATOR_HOST it only redirects the
    # client to a stand-in (the deployment rehearsal runs deployed functions against stand-ins);
    # the flush URL is what Cloud Tasks itself calls, so it must be the function's https URL.
    url = settings.flush_url
    if url and any(marker in url for marker in LOOPBACK):
        problems.append(f"ION_FANOUT_FLUSH_URL is {url}: a deployed fan-out cannot be reached there")
    if settings.flush_url and not settings.flush_url.startswith("https://"):
        problems.append(f"ION_FANOUT_FLUSH_URL is {settings.flush_url}: it must be the function's https URL")
    return problems


def deployment_problems(target: str) -> list[str]:
    """Settings that do not validate, else what ``target`` lacks for the channels routed or
    escalated to: every one's settings, or for the webhook function what it sends to Slack and
    PagerDuty and its verifying secrets."""
    settings, problems = load_settings(FanoutSettings)
    if settings is None:
        return problems
    routing = load_routing(settings.routing_file, alert_email_to=settings.alert_email_to)
    channels = routing.all_channels()
    try:
        policy = load_policy(settings.incident_policy_file)
        channels |= {c for steps in policy.escalation.values() for step in steps for c in step.channels}
    except PolicyError as exc:
        return [str(exc)]
    if target == WEBHOOK_FUNCTION:
        return (
            channel_problems(settings, channels, WEBHOOK_FUNCTION)
            + link_problems(settings)
            + webhook_problems(settings)
        )
    return settings_problems(settings, channels, timers=target in TIMER_FUNCTIONS or not target)


def webhook_problems(settings: FanoutSettings) -> list[str]:
    """What the webhook function lacks: without the secrets no request could be verified."""
    return [
        f"{variable} is not set: {what} cannot be verified"
        for variable, value, what in (
            ("SLACK_SIGNING_SECRET", settings.slack_signing_secret, "Slack's interactivity requests"),
            ("PAGERDUTY_WEBHOOK_SECRET", settings.pagerduty_webhook_secret, "PagerDuty's webhooks"),
        )
        if not value
    ]


@lru_cache(maxsize=1)
def health_check() -> Any:
    """The ``HealthCheck`` of ``/health``: what fan-out depends on, probed."""
    from functions.fanout.settings import get_fanout_settings
    from functions.fanout.timers import timers_probe
    from shared.health import HealthCheck, firestore_probe, pubsub_probe

    # The timer queue is a dependency only when the group timers run on Cloud Tasks.
    return HealthCheck(
        "fanout",
        lambda: [firestore_probe(), pubsub_probe(get_fanout_settings().dead_letter_topic), timers_probe()],
    )


def webhook_health_check() -> Any:
    """The ``HealthCheck`` of incident_webhooks' ``/health``: the webhooks need only Firestore."""
    from shared.health import HealthCheck, firestore_probe

    return HealthCheck("fanout-webhooks", lambda: [firestore_probe()])


def check_deployment(target: str = "") -> None:
    """Deployed (``K_SERVICE`` set), refuse to start without the settings ``target`` sends with,
    naming the variables; locally the log channel stands in, recorded as ``logged_instead``."""
    refuse_to_start("fan-out", deployment_problems(target))
