"""`make check-config` (``python -m devtools.check_config``): every shipped configuration file loads
through its function's loader, a broken copy of each kind fails naming the file and the problem,
cross-file mistakes (a rule or panel on a metric nobody emits) are caught, and ``routes`` answers
as fan-out's own routing does."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.check_config import main
from devtools.config_kinds import KINDS, line_of
from functions.fanout.route_models import parse_duration
from functions.fanout.routes import load_routing
from functions.fanout.settings import DEFAULT_ROUTING_FILE

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(argv)
    return code, capsys.readouterr().out.splitlines()


def test_every_shipped_file_is_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run([], capsys)
    assert code == 0, lines
    assert len(lines) == len(KINDS)
    for kind in KINDS.values():
        assert next(line for line in lines if f"({kind.name}):" in line).startswith("OK "), lines
    assert any(line.startswith("OK functions/alerts/rules.yaml (alert-rules): ") for line in lines)


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, f"the shipped file no longer holds {old!r}: pick another mistake"
        return text.replace(old, new, 1)

    return edit


def _yaml_edit(change: Callable[[dict[str, Any]], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        data = yaml.safe_load(text)
        change(data)
        return yaml.safe_dump(data, sort_keys=False)

    return edit


def _first_weight(data: dict[str, Any]) -> None:
    data["weights"][next(iter(data["weights"]))] = 5


def _first_function_unknown_field(data: dict[str, Any]) -> None:
    data["functions"][next(iter(data["functions"]))]["bogus_field"] = 1


def _first_panel_unit(data: dict[str, Any]) -> None:
    data["dashboards"][next(iter(data["dashboards"]))]["panels"][0]["unit"] = "furlongs"


# kind, the shipped file, where its broken copy goes (a name the kind is recognised by), the
# mistake, and what the message must say.
BROKEN: list[tuple[str, str, str, Callable[[str], str], str]] = [
    ("alert-rules", "functions/alerts/rules.yaml", "alerts/rules.yaml", _replace("threshold: ", "threshold: lots #"), "threshold"),
    ("routing", "functions/fanout/routing.yaml", "routing.yaml", _replace("group_interval: 1m", "group_interval: 1 minute"), "severities.critical.group_interval"),
    ("incidents", "functions/fanout/incidents.yaml", "incidents.yaml", _replace("after: 15m", "after: soon"), "'soon' is not a duration"),
    ("dashboards", "functions/reports/dashboards.yaml", "dashboards.yaml", _yaml_edit(_first_panel_unit), "dashboards.overview.panels.0.unit (line "),
    ("audiences", "functions/reports/audiences.yaml", "audiences.yaml", _replace("overview.error_rate]", "overview.no_such_panel]"), "no panel 'no_such_panel'"),
    ("scaling-rules", "functions/scaling/rules.yaml", "scaling/rules.yaml", _replace('start: "12:00"', 'start: "25:00"'), "'25:00' is not a time of day"),
    ("metric-catalogue", "shared/metrics/catalogue.yaml", "catalogue.yaml", _replace("kind: counter", "kind: countr"), "kind"),
    ("topology", "topology.yaml", "topology.yaml", _yaml_edit(_first_function_unknown_field), "bogus_field"),
    ("health", "functions/health/health.yaml", "health.yaml", _yaml_edit(_first_weight), "add up to 1"),
    ("routing-weights", "functions/routing/weights.yaml", "weights.yaml", _replace("version: 1", "version: 0"), "version"),
    ("prices", "functions/cost/prices.yaml", "prices.yaml", _replace("currency: USD", "currency: usd"), "currency"),
]  # fmt: skip


def test_every_kind_has_a_broken_case() -> None:
    assert sorted(case[0] for case in BROKEN) == sorted(KINDS)


@pytest.mark.parametrize("case", BROKEN, ids=[case[0] for case in BROKEN])
def test_a_broken_copy_fails_naming_the_file_and_the_problem(
    case: tuple[str, str, str, Callable[[str], str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kind, shipped, copy, edit, said = case
    broken = tmp_path / copy
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text(edit((ROOT / shipped).read_text()))
    code, lines = run([str(broken)], capsys)
    assert code == 1
    errors = [line for line in lines if line.startswith(f"ERROR {broken} ({kind}): ")]
    assert errors, lines
    assert any(said in line for line in errors), errors


def test_kind_given_for_a_file_named_otherwise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    candidate = tmp_path / "routing-next.yaml"
    candidate.write_text((ROOT / "functions/fanout/routing.yaml").read_text())
    code, lines = run([str(candidate)], capsys)
    assert code == 1
    assert "pass --kind" in lines[0]
    code, lines = run(["--kind", "routing", str(candidate)], capsys)
    assert code == 0, lines
    assert lines[0].startswith(f"OK {candidate} (routing): "), lines


def test_a_rule_on_an_unknown_metric_is_caught(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = yaml.safe_load((ROOT / "functions/alerts/rules.yaml").read_text())
    rules["rules"][0]["metric"] = "system.cpu.utilization"
    broken = tmp_path / "alerts" / "rules.yaml"
    broken.parent.mkdir()
    broken.write_text(yaml.safe_dump(rules, sort_keys=False))
    code, lines = run([str(broken)], capsys)
    assert code == 1
    name = rules["rules"][0]["name"]
    assert any(
        f"rule {name!r}: unknown metric 'system.cpu.utilization'" in line and "(line " in line
        for line in lines
    ), lines


def test_a_panel_on_an_unknown_metric_is_caught(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load((ROOT / "functions/reports/dashboards.yaml").read_text())
    panel = data["dashboards"]["overview"]["panels"][0]
    panel.pop("ratio", None)
    panel["query"] = {"metric": "system.cpu.utilization", "agg": "avg"}
    broken = tmp_path / "dashboards.yaml"
    broken.write_text(yaml.safe_dump(data, sort_keys=False))
    code, lines = run([str(broken)], capsys)
    assert code == 1
    assert any(f"dashboards.overview.{panel['id']}: unknown metric" in line for line in lines), lines


def test_the_file_a_setting_names_is_the_one_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "rules.yaml"
    broken.write_text("rules: oops\n")
    monkeypatch.setenv("ION_RULES_FILE", str(broken))
    code, lines = run([], capsys)
    assert code == 1
    assert [line for line in lines if line.startswith("ERROR")] == [
        f"ERROR {broken} (alert-rules): (file): field 'rules': needs a top-level `rules:` list"
    ]


@pytest.mark.parametrize("severity", ["critical", "low"])
def test_routes_answers_as_routing_yaml_says(severity: str, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = yaml.safe_load(DEFAULT_ROUTING_FILE.read_text())
    route = shipped["severities"][severity]
    code, lines = run(
        ["routes", "--labels", f"severity={severity},service=routing,region=us-central1"], capsys
    )
    assert code == 0, lines
    said = dict(line.split(": ", 1) for line in lines if ": " in line)
    assert said["route"] == f"severities.{severity}"
    assert said["channels"].split(", ") == route["channels"]
    assert said["group_by"].split(", ") == shipped["group_by"]
    assert said["group key"] == "{rule='routes-test', service='routing', region='us-central1'}"
    timing = dict(part.split(" ") for part in said["timing"].split(", "))
    for name in ("group_wait", "group_interval", "repeat_interval"):
        assert parse_duration(timing[name]) == parse_duration(route[name]), name
    assert said.get("mention") == route.get("mention")
    # Inhibition as fan-out's own rules say: the critical alert inhibits, the low one is inhibited.
    inhibited = any(line.startswith("inhibited") for line in lines)
    routing = load_routing(DEFAULT_ROUTING_FILE)
    labels = {"severity": severity, "service": "routing", "region": "us-central1"}
    assert inhibited == any(all(m.matches(labels) for m in r.target_matchers) for r in routing.inhibit_rules)
    assert inhibited == (severity == "low")


def test_routes_refuses_labels_without_a_severity(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(["routes", "--labels", "service=routing"], capsys)
    assert code == 1
    assert lines[0].startswith("ERROR --labels: severity=... is needed")


def test_the_module_runs_as_a_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devtools.check_config", "routes", "--labels", "severity=critical"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "route: severities.critical" in done.stdout


def test_routes_names_the_label_route_its_channels_and_receivers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = yaml.safe_load(DEFAULT_ROUTING_FILE.read_text())
    finance = {
        "name": "finance",
        "matchers": [{"name": "service", "value": "cost"}],
        "channels": ["slack", "email"],
        "slack_channel": "C0FINANCE",
        "email_to": ["finance@example.com", "cfo@example.com"],
        "group_wait": "5m",
    }
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump({**shipped, "routes": [finance]}))
    monkeypatch.setenv("SLACK_CHANNEL", "C0ALERTS")
    monkeypatch.setenv("ALERT_EMAIL_TO", "oncall@example.com")

    code, lines = run(
        ["routes", "--routing-file", str(path), "--labels", "severity=high,service=cost"], capsys
    )
    assert code == 0, lines
    said = dict(line.split(": ", 1) for line in lines if ": " in line)
    assert said["route"] == "routes.finance"
    assert said["matched"] == "routes[0] {service='cost'}, over severities.high"
    assert said["channels"] == "slack, email"
    assert said["slack channel"] == "C0FINANCE"
    assert said["email to"] == "finance@example.com, cfo@example.com"
    assert said["timing"] == "group_wait 5m, group_interval 5m, repeat_interval 4h"
    # Its own group: not the one the same labels make by severity alone.
    _, by_severity = run(["routes", "--labels", "severity=high,service=cost"], capsys)
    assert f"group id: {said['group id']}" not in by_severity
    assert any(line.startswith("group id: high-") for line in by_severity)

    # An alert no route takes: its severity's route, SLACK_CHANNEL and ALERT_EMAIL_TO.
    code, lines = run(
        ["routes", "--routing-file", str(path), "--labels", "severity=high,service=web"], capsys
    )
    said = dict(line.split(": ", 1) for line in lines if ": " in line)
    assert (said["route"], "matched" in said) == ("severities.high", False)
    assert said["slack channel"] == "SLACK_CHANNEL (C0ALERTS)"
    assert said["email to"] == "ALERT_EMAIL_TO (oncall@example.com)"

    # A route mailing nobody is refused, as fan-out itself refuses it.
    monkeypatch.delenv("ALERT_EMAIL_TO")
    del finance["email_to"]
    path.write_text(yaml.safe_dump({**shipped, "routes": [finance]}))
    code, lines = run(["routes", "--routing-file", str(path), "--labels", "severity=high"], capsys)
    assert code == 1
    assert "routes.finance sends email but names no email_to" in lines[0]
    code, lines = run([str(path)], capsys)
    assert code == 1
    assert "routes.finance (line " in lines[0], lines
    assert "sends email but names no email_to" in lines[0], lines


def test_a_scaling_rule_problem_names_its_line_also_through_an_anchor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "scaling" / "rules.yaml"
    broken.parent.mkdir()
    broken.write_text(
        "x-peaks: &peaks\n"
        '  - {name: morning-peak, start: "08:00", end: "09:00", min: 4, max: 150}\n'
        '  - {name: lunch-peak, start: "12:00", end: "13:00", min: four, max: 150}\n'
        "regions:\n"
        "  us-central1:\n"
        "    time_zone: America/Chicago\n"
        "    service: persona-router\n"
        "    floor: x\n"
        "    max_instances: 100\n"
        "    rules: *peaks\n"
    )
    code, lines = run([str(broken)], capsys)
    assert code == 1
    assert any("field 'floor' (line 8): Input should be" in line for line in lines), lines
    # The shared rule is found where the anchor defines it.
    assert any("rule 'lunch-peak' (rules[1]) field 'min' (line 3): " in line for line in lines), lines


def _with_routes(tmp_path: Path, *routes: dict[str, Any]) -> Path:
    shipped = yaml.safe_load(DEFAULT_ROUTING_FILE.read_text())
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump({**shipped, "routes": list(routes)}, sort_keys=False))
    return path


def test_a_route_problem_is_one_line_at_the_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A route naming an undefined time interval: one ERROR line (the message's own "; " is no
    second problem), located at the route's line, saying what is defined."""
    good = {"name": "finance", "matchers": [{"name": "source", "value": "cost"}]}
    bad = {
        "name": "success",
        "matchers": [{"name": "team", "value": "cs"}],
        "mute_time_intervals": ["weekends"],
    }
    path = _with_routes(tmp_path, good, bad)
    code, lines = run(["--kind", "routing", str(path)], capsys)
    assert code == 1
    assert len(lines) == 1, lines
    route_line = line_of(path, ["routes", 1])
    assert lines[0].startswith(f"ERROR {path} (routing): routes.success (line {route_line}): "), lines
    assert lines[0].endswith("names time interval 'weekends'; defined: none"), lines


def test_a_route_matching_no_severity_says_which_there_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    route = {"name": "success", "matchers": [{"name": "severity", "value": "urgent"}]}
    path = _with_routes(tmp_path, route)
    code, lines = run(["--kind", "routing", str(path)], capsys)
    assert code == 1
    assert len(lines) == 1, lines
    assert f"routes.success (line {line_of(path, ['routes', 0])}): " in lines[0], lines
    assert "critical, high, medium, low" in lines[0], lines


def test_routes_of_a_notice_names_no_inhibition(capsys: pytest.CaptureFixture[str]) -> None:
    """Fan-out never inhibits a notice (nothing would send it later): `routes` says so."""
    labels = "severity=medium,source=cost,notice=budget-threshold"
    code, lines = run(["routes", "--kind", "notice", "--labels", labels], capsys)
    assert code == 0, lines
    assert not [line for line in lines if line.startswith("inhibited")], lines
    assert "neither time intervals nor inhibition mute it" in lines[-1], lines
    code, lines = run(["routes", "--labels", "severity=medium,source=cost"], capsys)
    assert any(line.startswith("inhibited (inhibit_rules[0])") for line in lines), lines


def test_a_misspelt_field_names_the_fields_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`slack_chanel` in a route: said with the field meant and the fields a route has."""
    route = {
        "name": "finance",
        "matchers": [{"name": "source", "value": "cost"}],
        "slack_chanel": "C0FINANCE",
    }
    path = _with_routes(tmp_path, route)
    code, lines = run(["--kind", "routing", str(path)], capsys)
    assert code == 1
    assert len(lines) == 1, lines
    assert "routes.0.slack_chanel (line " in lines[0], lines
    assert "did you mean slack_channel?" in lines[0], lines
    assert "email_to" in lines[0], lines  # the route's fields listed


def test_a_route_taking_critical_alerts_without_pagerduty_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid (exit 0), but its critical alerts page nobody: the OK line says so; a route kept to
    lower severities, or keeping PagerDuty, is not named."""
    quiet = {"name": "db-slack", "matchers": [{"name": "service", "value": "db"}], "channels": ["slack"]}
    lower = {
        "name": "web-slack",
        "matchers": [
            {"name": "service", "value": "web"},
            {"name": "severity", "value": "high|medium", "isRegex": True},
        ],
        "channels": ["slack"],
    }
    paging = {"name": "api", "matchers": [{"name": "service", "value": "api"}], "slack_channel": "C0API"}
    path = _with_routes(tmp_path, quiet, lower, paging)
    code, lines = run(["--kind", "routing", str(path)], capsys)
    assert code == 0, lines
    assert lines[0].endswith("; routes.db-slack takes critical alerts without pagerduty"), lines
    assert "web-slack" not in lines[0]
    assert "routes.api" not in lines[0]
