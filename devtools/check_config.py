"""Check the operators' configuration files before they are deployed (``make check-config``), as
``promtool check rules`` and ``amtool check-config`` do, and show how fan-out routes an alert
(``amtool config routes test``).

    python -m devtools.check_config                      # every file the functions would load
    python -m devtools.check_config functions/alerts/rules.yaml other.yaml --kind alert-rules
    python -m devtools.check_config routes --labels severity=critical,service=routing
    python -m devtools.check_config routes --labels severity=high,service=cost  # a label route

Each file is read by its function's own loader (``devtools/config_kinds.py``) and cross-checked
against the files that function reads at run time. One line per file, ``OK <path>: <summary>``
or ``ERROR <path>: <where>: <problem>`` per problem; exit 1 on any error."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from devtools.config_kinds import KINDS, ConfigProblems, Context, Kind, kind_of, shown
from functions.fanout.matchers import Matcher, alert_labels, matches_all
from functions.fanout.route_models import SEVERITIES, ResolvedRoute
from functions.fanout.routes import RoutingConfig, RoutingError, load_routing
from functions.fanout.settings import DEFAULT_ROUTING_FILE
from shared.messages import AlertTransition
from shared.notices import NOTICE_KIND


def _targets(files: Sequence[str], kind_name: str | None) -> tuple[list[tuple[Path, Kind]], list[str]]:
    """(path, kind) of each file to check, and the errors of files whose kind is unknown."""
    if not files:
        return [(kind.configured(), kind) for kind in KINDS.values()], []
    targets: list[tuple[Path, Kind]] = []
    errors: list[str] = []
    for name in files:
        path = Path(name)
        kind = KINDS[kind_name] if kind_name else kind_of(path)
        if kind is None:
            names = ", ".join(
                f"{k.name} ({k.folder + '/' if k.folder else ''}{k.file_name})" for k in KINDS.values()
            )
            errors.append(
                f"ERROR {name}: cannot tell the kind of this file by its name; pass --kind, one of: {names}"
            )
            continue
        targets.append((path, kind))
    return targets, errors


def _one_line(problem: str) -> str:
    """A multi-line message (a YAML parser's, with its caret line) as one line per problem."""
    parts = [line.strip() for line in problem.splitlines()]
    return " ".join(part for part in parts if part.strip("^ "))


def check_files(files: Sequence[str], kind_name: str | None = None) -> int:
    """Check ``files`` (every configured file when empty), printing a line per file or problem."""
    targets, errors = _targets(files, kind_name)
    for line in errors:
        print(line)
    context = Context()
    # A catalogue or dashboards file checked in the same run is the one cross-checks read.
    for path, kind in targets:
        if kind.name == "metric-catalogue":
            context.catalogue_file = path
        elif kind.name == "dashboards":
            context.dashboards_file = path
    failed = bool(errors)
    for path, kind in targets:
        try:
            summary = kind.check(path, context)
        except ConfigProblems as exc:
            failed = True
            for problem in exc.problems:
                print(f"ERROR {shown(path)} ({kind.name}): {_one_line(problem)}")
            continue
        print(f"OK {shown(path)} ({kind.name}): {summary}")
    return 1 if failed else 0


def _parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{pair!r} is not NAME=VALUE")
        labels[name.strip()] = value.strip()
    return labels


def _alert(labels: dict[str, str], kind: str) -> AlertTransition:
    """A firing alert with ``labels`` (``rule``/``alertname``, ``severity``, ``metric`` set its
    own fields), as the alerts function would publish it."""
    now = datetime.now(UTC)
    own = dict(labels)
    rule = own.pop("rule", None) or own.pop("alertname", None) or "routes-test"
    own.pop("alertname", None)
    return AlertTransition(
        transition_id="routes-test",
        fingerprint="routes-test",
        rule=rule,
        kind=kind,
        state="firing",
        previous_state="pending",
        severity=own.pop("severity"),  # type: ignore[arg-type]  # validated by the model
        metric=own.pop("metric", ""),
        labels=own,
        starts_at=now,
        evaluated_at=now,
    )


def _duration(value: timedelta) -> str:
    """``1h30m``, ``30s``, ``0s``: as routing.yaml writes durations."""
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours}h" * bool(hours) + f"{minutes}m" * bool(minutes) + f"{seconds}s" * bool(seconds)
    return text or "0s"


def _matchers(matchers: list[Matcher]) -> str:
    ops = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
    return "{" + ", ".join(f"{m.name}{ops[(m.is_regex, m.is_equal)]}{m.value!r}" for m in matchers) + "}"


def _receivers(route: ResolvedRoute, channels: list[str]) -> list[str]:
    """Where the route's Slack messages and mails go: its own receivers, else the environment's."""
    lines = []
    if "slack" in channels:
        default = f"SLACK_CHANNEL ({os.environ.get('SLACK_CHANNEL') or 'not set: the log stands in'})"
        lines.append(f"slack channel: {route.slack_channel or default}")
    if "email" in channels:
        default = f"ALERT_EMAIL_TO ({os.environ.get('ALERT_EMAIL_TO') or 'not set: the log stands in'})"
        lines.append(f"email to: {', '.join(route.email_to) or default}")
    return lines


def describe_route(routing: RoutingConfig, alert: AlertTransition) -> list[str]:
    """What fan-out does with ``alert``: its route, channels, receivers, group and timing, and
    what could mute it, each from fan-out's own routing code."""
    matched = routing.matched(alert)
    label_route = matched.name if matched else None
    route = routing.route(alert.severity, label_route)
    group = routing.group_labels(alert)
    channels = routing.channels_for(alert.severity, [alert], label_route)
    lines = [f"route: {route.name}"]
    if matched is not None:
        index = routing.routes.index(matched)
        lines.append(
            f"matched: routes[{index}] {_matchers(matched.matchers)}, over severities.{alert.severity}"
        )
    lines += [
        f"channels: {', '.join(channels)}",
        *_receivers(route, channels),
        f"group_by: {', '.join(routing.group_names(alert))}",
        f"group key: {{{', '.join(f'{k}={v!r}' for k, v in group.items())}}}",
        f"group id: {routing.group_id(alert)}",
        f"timing: group_wait {_duration(route.group_wait)}, group_interval "
        f"{_duration(route.group_interval)}, repeat_interval {_duration(route.repeat_interval)}",
    ]
    if route.mention:
        lines.append(f"mention: {route.mention}")
    if alert.kind == NOTICE_KIND:
        lines.append("a notice: sent once (never repeated), neither time intervals nor inhibition mute it")
        return lines
    elif route.mute_time_intervals or route.active_time_intervals:
        muted = routing.time_mute(alert.severity, datetime.now(UTC), label_route)
        lines.append(
            f"time intervals: mute {route.mute_time_intervals or '-'}, "
            f"active {route.active_time_intervals or '-'} (now: {muted or 'not muted'})"
        )
    labels = alert_labels(alert)
    for index, rule in enumerate(routing.inhibit_rules):
        if matches_all(rule.target_matchers, labels):
            equal = f" with the same {', '.join(rule.equal)}" if rule.equal else ""
            source = _matchers(rule.source_matchers)
            lines.append(f"inhibited (inhibit_rules[{index}]) while an alert {source} fires{equal}")
    return lines


def test_routes(labels_text: str, routing_file: str | None, kind: str) -> int:
    """Print how fan-out routes a firing alert with these labels; 1 when they or the file are wrong."""
    path = Path(routing_file or os.environ.get("ION_FANOUT_ROUTING_FILE") or DEFAULT_ROUTING_FILE)
    try:
        labels = _parse_labels(labels_text)
        if labels.get("severity") not in SEVERITIES:
            raise ValueError(
                f"severity=... is needed, one of {', '.join(SEVERITIES)}: fan-out routes by severity"
            )
        alert = _alert(labels, kind)
    except (ValueError, ValidationError) as exc:
        print(f"ERROR --labels: {_one_line(str(exc))}")
        return 1
    try:
        routing = load_routing(path, alert_email_to=os.environ.get("ALERT_EMAIL_TO"))
    except RoutingError as exc:
        print(f"ERROR {shown(path)}: {_one_line(str(exc))}")
        return 1
    print(f"routing file: {shown(path)}")
    for line in describe_route(routing, alert):
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["routes"]:
        parser = argparse.ArgumentParser(
            prog="python -m devtools.check_config routes",
            description="Which route an alert with these labels takes (fan-out's own matching).",
        )
        parser.add_argument(
            "--labels",
            required=True,
            help="NAME=VALUE,... with severity (e.g. severity=critical,service=routing)",
        )
        parser.add_argument(
            "--routing-file", help="default: ION_FANOUT_ROUTING_FILE, else functions/fanout/routing.yaml"
        )
        parser.add_argument(
            "--kind", default="threshold", help="the alert's kind; `notice` for a one-off notice"
        )
        options = parser.parse_args(args[1:])
        return test_routes(options.labels, options.routing_file, options.kind)
    parser = argparse.ArgumentParser(
        prog="python -m devtools.check_config",
        description="Load configuration files through the functions' own loaders and cross-check them.",
        epilog="`routes --labels severity=...,NAME=VALUE` shows how fan-out routes an alert.",
    )
    parser.add_argument(
        "files", nargs="*", help="default: every file the functions load (their settings' or bundled)"
    )
    parser.add_argument(
        "--kind", choices=sorted(KINDS), help="the kind of every file named (default: by its name)"
    )
    options = parser.parse_args(args)
    return check_files(options.files, options.kind)


if __name__ == "__main__":
    sys.exit(main())
