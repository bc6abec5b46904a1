"""Label routes (routing.yaml ``routes``): the first route whose matchers match takes the alert,
over its severity's route; alerts no route takes keep the group keys they always had; a bad route
is refused at load naming it. Without the emulator (delivery: ``test_label_routes_delivery.py``)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from functions.fanout.routes import RoutingConfig, RoutingError, load_routing
from functions.fanout.settings import DEFAULT_ROUTING_FILE
from shared.messages import AlertTransition
from shared.notices import notice_transition
from tests.fanout.conftest import make_transition

FINANCE: dict[str, Any] = {
    "name": "finance",
    "matchers": [{"name": "service", "value": "cost"}],
    "channels": ["slack", "email"],
    "slack_channel": "C0FINANCE",
    "email_to": ["finance@example.com", "cfo@example.com"],
    "group_wait": "2m",
    "repeat_interval": "1h",
}
SUCCESS: dict[str, Any] = {
    "name": "customer-success",
    "matchers": [{"name": "team", "value": "customer-success"}],
    "slack_channel": "C0SUCCESS",
    "group_by": ["rule", "customer"],
}


def routing_file(tmp_path: Path, routes: list[dict[str, Any]], **extra: Any) -> Path:
    """The shipped routing file with these label routes (and top-level ``extra``)."""
    raw = yaml.safe_load(DEFAULT_ROUTING_FILE.read_text())
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump({**raw, **extra, "routes": routes}))
    return path


def with_routes(tmp_path: Path, *routes: dict[str, Any]) -> RoutingConfig:
    return load_routing(routing_file(tmp_path, list(routes)), alert_email_to="oncall@example.com")


def labelled(severity: str = "high", **labels: str) -> AlertTransition:
    alert = make_transition(severity=severity, service=labels.pop("service", "persona-router"))
    return alert.model_copy(update={"labels": {**alert.labels, **labels}})


def key_before_label_routes(alert: AlertTransition) -> str:
    """The group id as fan-out computed it before label routes: severity and group_by values."""
    labels = {"rule": alert.rule, **alert.labels}
    parts = [alert.severity, *(f"{k}={labels.get(k, '')}" for k in ("rule", "service", "region"))]
    return f"{alert.severity}-{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:24]}"


def test_the_shipped_file_has_no_label_route_and_its_example_loads(tmp_path: Path) -> None:
    shipped = load_routing(DEFAULT_ROUTING_FILE)
    assert shipped.routes == []
    text = DEFAULT_ROUTING_FILE.read_text().splitlines()
    start = text.index("# routes:")
    example = []
    for line in text[start:]:
        if not (line == "# routes:" or line.startswith("#   ")):
            break
        example.append(line[2:])
    routes = yaml.safe_load("\n".join(example))["routes"]
    routing = with_routes(tmp_path, *routes)
    assert [r.name for r in routing.routes] == ["finance", "customer-success"]
    assert routing.route_of(labelled(source="cost")).slack_channel == "C0FINANCE"
    # The example's finance route takes the cost function's notices, anomalies included (their
    # `service` is the billed service, never `cost`).
    anomaly = notice_transition(
        notice_id="cost/anomaly/2026-12-06/Cloud Run",
        source="cost",
        name="cost-anomaly",
        severity="medium",
        summary="Cloud Run cost 42.00 USD on 2026-12-06 against 12.00 expected",
        at=datetime.now(UTC),
        labels={"service": "Cloud Run", "date": "2026-12-06"},
    )
    assert routing.route_of(anomaly).slack_channel == "C0FINANCE"


def test_alerts_no_route_takes_keep_their_group_keys(tmp_path: Path) -> None:
    routing = with_routes(tmp_path, FINANCE, SUCCESS)
    shipped = load_routing(DEFAULT_ROUTING_FILE)
    for alert in (make_transition(), make_transition(severity="low", region="europe-west1"), labelled()):
        assert routing.matched(alert) is None
        assert routing.group_id(alert) == shipped.group_id(alert) == key_before_label_routes(alert)
        assert routing.group_labels(alert) == shipped.group_labels(alert)
        assert routing.route_of(alert) == shipped.route(alert.severity)
        assert routing.channels_for(alert.severity, [alert]) == shipped.channels_for(alert.severity, [alert])


def test_group_keys_differ_between_routes(tmp_path: Path) -> None:
    routing = with_routes(tmp_path, FINANCE, {**FINANCE, "name": "finance-copy"})
    alert = labelled(service="cost")
    shipped = load_routing(DEFAULT_ROUTING_FILE)
    # The same labels: another group under a route than by severity, and under another route.
    other = load_routing(
        routing_file(tmp_path, [{**FINANCE, "name": "billing"}]), alert_email_to="oncall@example.com"
    )
    keys = {routing.group_id(alert), shipped.group_id(alert), other.group_id(alert)}
    assert len(keys) == 3
    assert all(key.startswith("high-") for key in keys)  # the timers' task ids lead with severity


def test_the_first_matching_route_takes_the_alert_and_no_other(tmp_path: Path) -> None:
    critical_only = {
        "name": "cost-pages",
        "matchers": [{"name": "service", "value": "cost"}, {"name": "severity", "value": "critical"}],
        "mention": "<!subteam^FIN|@finance>",
    }
    routing = with_routes(tmp_path, critical_only, FINANCE)
    assert routing.route_of(labelled("critical", service="cost")).name == "routes.cost-pages"
    assert routing.route_of(labelled("high", service="cost")).name == "routes.finance"
    assert routing.route_of(labelled("high", service="costly")).name == "severities.high"


def test_a_route_sets_what_it_names_and_inherits_the_rest(tmp_path: Path) -> None:
    routing = with_routes(tmp_path, FINANCE, SUCCESS)
    finance = routing.route_of(labelled("critical", service="cost"))
    severity = routing.route("critical")
    assert finance.channels == ["slack", "email"]
    assert finance.group_wait == timedelta(minutes=2)
    assert finance.repeat_interval == timedelta(hours=1)
    assert finance.group_interval == severity.group_interval
    assert finance.mention == severity.mention
    assert (finance.slack_channel, finance.email_to) == (
        "C0FINANCE",
        ["finance@example.com", "cfo@example.com"],
    )
    assert routing.channels_for("critical", [labelled("critical", service="cost")], "finance") == [
        "slack",
        "email",
    ]

    success = labelled("high", team="customer-success", customer="acme")
    route = routing.route_of(success)
    assert route.channels == ["slack", "email"]  # the severity's
    assert (route.slack_channel, route.email_to) == ("C0SUCCESS", [])  # mail to ALERT_EMAIL_TO
    assert routing.group_labels(success) == {"rule": "p95-latency", "customer": "acme"}
    assert route.receivers() == {
        "label_route": "customer-success",
        "route_slack_channel": "C0SUCCESS",
        "route_email_to": [],
    }


def test_a_removed_route_leaves_its_stored_groups_to_the_severity(tmp_path: Path) -> None:
    routing = with_routes(tmp_path, FINANCE)
    assert routing.route("high", "gone").name == "severities.high"
    assert routing.channels("high", notices=False, label_route="gone") == ["slack", "email"]


def test_notices_take_a_route_whose_matchers_match_them_and_personal_ones_never(tmp_path: Path) -> None:
    at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    anomaly = notice_transition(
        notice_id="cost/anomaly/1",
        source="cost",
        name="anomaly",
        severity="medium",
        summary="Cloud Run cost 3x",
        at=at,
        labels={"service": "cost"},
    )
    scaling = notice_transition(
        notice_id="scale/1", source="scaling", name="scale-change", severity="low", summary="+2", at=at
    )
    personal = notice_transition(
        notice_id="cs/1",
        source="health",
        name="success-action",
        severity="medium",
        summary="acme at risk",
        at=at,
        labels={"service": "cost", "customer": "acme"},
        annotations={"contact_email": "ada@example.com"},
    )
    routing = with_routes(
        tmp_path, FINANCE, {**SUCCESS, "matchers": [{"name": "source", "value": "scaling"}]}
    )
    # Its route's own channels and receivers, rather than `notices:`.
    assert routing.matched(anomaly) is not None
    assert routing.channels_for("medium", [anomaly], "finance") == ["slack", "email"]
    # A route without channels of its own: the notice channels of the severity, as without it.
    assert routing.channels_for("low", [scaling], "customer-success") == ["slack"]
    assert routing.route_of(scaling).slack_channel == "C0SUCCESS"
    # A personal notice goes to the person it names alone: no label route takes it.
    assert routing.matched(personal) is None
    assert routing.channels_for("medium", [personal]) == ["contact"]
    assert routing.group_id(personal) == load_routing(DEFAULT_ROUTING_FILE).group_id(personal)


def test_a_route_s_time_intervals_mute_its_alerts_alone(tmp_path: Path) -> None:
    office = {
        "name": "office-hours",
        "time_intervals": [
            {"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}]}
        ],
    }
    path = routing_file(
        tmp_path, [{**FINANCE, "active_time_intervals": ["office-hours"]}], time_intervals=[office]
    )
    routing = load_routing(path, alert_email_to="oncall@example.com")
    saturday = datetime(2026, 10, 31, 12, tzinfo=UTC)
    assert routing.time_mute("high", saturday, "finance") == "outside active time intervals office-hours"
    assert routing.time_mute("high", saturday) is None


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ([{**FINANCE, "mute_time_intervals": ["weekends"]}], "routes.finance names time interval 'weekends'"),
        ([FINANCE, {**SUCCESS, "name": "finance"}], "routes must not repeat a name; repeated: finance"),
        ([{**FINANCE, "email_to": ["finance at example"]}], r"routes\.0\.email_to\.0"),
        ([{**FINANCE, "email_to": ["Finance <finance@example.com>"]}], r"routes\.0\.email_to\.0"),
        ([{**FINANCE, "email_to": []}], r"routes\.0\.email_to"),
        ([{**FINANCE, "slack_channel": "#finance"}], r"routes\.0\.slack_channel"),
        ([{**FINANCE, "name": "Finance Team"}], r"routes\.0\.name"),
        ([{key: v for key, v in FINANCE.items() if key != "name"}], r"routes\.0\.name: Field required"),
        ([{**FINANCE, "matchers": []}], r"routes\.0\.matchers"),
        ([{**FINANCE, "channels": ["slack", "fax"]}], r"routes\.0\.channels\.1"),
        ([{**FINANCE, "channels": ["contact"]}], "personal notices"),
        ([{**FINANCE, "channels": ["slack"]}], "routes.finance names email_to but sends no email"),
        ([{**FINANCE, "group_interval": "2h"}], "routes.finance over severities.critical: repeat_interval"),
        ([{**FINANCE, "matchers": [{"name": "severity", "value": "urgent"}]}], "match no severity"),
        ([{**FINANCE, "continue": True}], r"routes\.0\.continue: Extra inputs"),
    ],
)
def test_a_bad_route_is_refused_at_load_naming_it(tmp_path: Path, routes: list[Any], message: str) -> None:
    path = routing_file(tmp_path, routes)
    with pytest.raises(RoutingError, match=message) as info:
        load_routing(path, alert_email_to="oncall@example.com")
    assert str(path) in str(info.value)


def test_a_route_mailing_nobody_is_refused_unless_alert_email_to_is_set(tmp_path: Path) -> None:
    unaddressed = {key: v for key, v in FINANCE.items() if key != "email_to"}
    path = routing_file(tmp_path, [unaddressed])
    with pytest.raises(
        RoutingError, match=r"routes\.finance sends email but names no email_to, and ALERT_EMAIL_TO"
    ):
        load_routing(path)
    assert load_routing(path, alert_email_to="oncall@example.com").routes[0].email_to is None
    # Inheriting email from its severity is the severity's business, as without routes.
    inherits = {key: v for key, v in unaddressed.items() if key != "channels"}
    assert load_routing(routing_file(tmp_path, [inherits])).routes[0].channels is None
