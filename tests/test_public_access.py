"""The paths people open through the HTTPS load balancer with IAP: topology.yaml's `public_paths`,
checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.topology import PUBLIC_PATH, load_topology

# What people open, by function (README: Deploy, "Opening dashboards and links").
EXPECTED_PATHS = {
    "mail_reports": ["/dashboards", "/dashboards/*", "/v1/reports", "/v1/reports/*"],
    "manage_alerts": ["/v1/silences", "/v1/silences/*"],
    "manage_dead_letters": ["/v1/dead-letters", "/v1/dead-letters/*"],
    "score_health": ["/v1/health/customers", "/v1/health/customers/*", "/v1/health/personas"],
    "snapshot_cost": ["/v1/cost", "/v1/cost/forecast", "/v1/cost/anomalies"],
    "adjust_scaling": ["/v1/scaling", "/v1/capacity"],
    "evaluate_alerts": ["/v1/alerts", "/v1/rules"],
}


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
    audience. No other job is reachable; a new one here must be a decision."""
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
        "{tick: {function: job, cron: '* * * * *', path: /v1/capacity/run, attempt_deadline: 30s}}",
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
        "{tick: {function: a2, cron: '* * * * *', path: /v1/dead-letters/run, attempt_deadline: 30s}}",
    )
    assert list(load_topology(good).load_balanced()) == ["a1", "a2"]
