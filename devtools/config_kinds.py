"""The operators' configuration files, each read by the loader its function uses at start (so a
file passes here exactly when the function would accept it), then checked against the other
files a function would only consult at run time (the metric catalogue, the dashboards).

A kind's ``check`` returns a one-line summary or raises :class:`ConfigProblems`, each problem
naming where in the file it is (a key path, and its line where the path can be found)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from functions.alerts.rule_catalogue import catalogue_problems
from functions.alerts.rules import DEFAULT_RULES_FILE as ALERT_RULES_FILE
from functions.alerts.rules import RulesError as AlertRulesError
from functions.alerts.rules import load_rules as load_alert_rules
from functions.cost.settings import DEFAULT_PRICES_FILE
from functions.cost.usage import load_prices
from functions.fanout.incident_policy import PolicyError, load_policy
from functions.fanout.routes import RoutingError, load_routing
from functions.fanout.settings import DEFAULT_INCIDENT_POLICY_FILE, DEFAULT_ROUTING_FILE
from functions.health.config import load_config as load_health_config
from functions.health.settings import DEFAULT_CONFIG_FILE as HEALTH_FILE
from functions.reports.audiences import load_audiences
from functions.reports.panels import DEFAULT_DASHBOARDS_FILE, load_catalog
from functions.routing.config import DEFAULT_WEIGHTS_FILE, load_weight_config
from functions.scaling.rules import DEFAULT_RULES_FILE as SCALING_RULES_FILE
from functions.scaling.rules import RulesError as ScalingRulesError
from functions.scaling.rules import load_rules as load_scaling_rules
from shared.metrics.catalogue import CATALOGUE_FILE, Catalogue, load_catalogue
from shared.topology import TOPOLOGY_FILE, load_topology

ROOT = Path(__file__).resolve().parents[1]


def shown(path: Path) -> str:
    """``path`` relative to the repository where it is inside it (shorter lines)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


class ConfigProblems(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Context:
    """The files cross-checks read: those named in the same run, else the configured ones."""

    catalogue_file: Path = CATALOGUE_FILE
    dashboards_file: Path = field(
        default_factory=lambda: Path(os.environ.get("ION_REPORTS_DASHBOARDS_FILE") or DEFAULT_DASHBOARDS_FILE)
    )

    def catalogue(self) -> Catalogue:
        try:
            return load_catalogue(self.catalogue_file)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            why = (
                _plural(exc.error_count(), "error")
                if isinstance(exc, ValidationError)
                else type(exc).__name__
            )
            catalogue = shown(self.catalogue_file)
            raise ConfigProblems(
                [f"not cross-checked: the metric catalogue {catalogue} does not load ({why})"]
            ) from None


@dataclass(frozen=True)
class Kind:
    name: str
    # How a path is recognised: its file name, and for a name two kinds share, its folder.
    file_name: str
    folder: str | None
    default: Path
    setting: str | None  # the variable that names another file to the deployed function
    check: Callable[[Path, Context], str]

    def configured(self) -> Path:
        return Path((os.environ.get(self.setting) if self.setting else None) or self.default)


def line_of(path: Path, loc: Sequence[str | int]) -> int | None:
    """The line (1-based) of the deepest node of ``loc`` (keys and list indexes) found in ``path``."""
    try:
        node: Any = yaml.compose(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if str(k.value) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and str(part).isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def _line_note(path: Path, loc: Sequence[str | int]) -> str:
    line = line_of(path, loc) if loc else None
    return f" (line {line})" if line else ""


def _at_route(where: str, message: str) -> tuple[str, str]:
    """A whole-file check's problem that names its route (``routes.finance: ...``) put there."""
    message = message.removeprefix("Value error, ")
    named = re.match(r"((?:routes|severities)\.[a-z0-9_-]+):? (.*)", message) if where == "file" else None
    return (named.group(1), named.group(2)) if named else (where, message)


def _yaml_loc(path: Path, where: str) -> list[str | int]:
    """``where``'s keys, a route's name (``routes.finance``) as its index in the file's list."""
    loc: list[str | int] = list(where.split("."))
    if len(loc) > 1 and loc[0] == "routes" and not str(loc[1]).isdigit():
        try:
            routes = (yaml.safe_load(path.read_text()) or {}).get("routes") or []
        except (OSError, yaml.YAMLError, AttributeError):
            return loc
        names = [route.get("name") if isinstance(route, dict) else None for route in routes]
        loc[1] = names.index(loc[1]) if loc[1] in names else loc[1]
    return loc


def _validated(path: Path, load: Callable[[], Any]) -> Any:
    """``load()``, its failures turned into located problems."""
    try:
        return load()
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in err["loc"]) or "(file)"
            problems.append(f"{where}{_line_note(path, err['loc'])}: {err['msg']}")
        raise ConfigProblems(problems) from None
    except AlertRulesError as exc:
        problems = []
        for err in exc.errors:
            index = re.search(r"rules\[(\d+)\]", err["rule"])
            loc = ["rules", int(index.group(1)), *err["field"].split(".")] if index else []
            problems.append(f"{err['rule']}: field '{err['field']}'{_line_note(path, loc)}: {err['message']}")
        raise ConfigProblems(problems) from None
    except ScalingRulesError as exc:
        # A rule shared through a YAML anchor is found at the anchor's lines.
        problems = []
        for error, loc in zip(exc.errors, exc.locations, strict=True):
            where, _, message = error.partition(": ")
            problems.append(f"{where}{_line_note(path, list(loc))}: {message}")
        raise ConfigProblems(problems) from None
    except (RoutingError, PolicyError) as exc:
        if not exc.problems:  # one sentence of its own (unreadable, not YAML)
            raise ConfigProblems([str(exc)]) from None
        problems = []
        for where, message in (_at_route(*problem) for problem in exc.problems):
            problems.append(f"{where}{_line_note(path, _yaml_loc(path, where))}: {message}")
        raise ConfigProblems(problems) from None
    except KeyError as exc:
        raise ConfigProblems([f"unknown key {exc}"]) from None
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ConfigProblems([str(exc)]) from None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def check_alert_rules(path: Path, context: Context) -> str:
    rules = _validated(path, lambda: load_alert_rules(path, include_disabled=True))
    catalogue = context.catalogue()
    problems = [
        f"rules[{index}]{_line_note(path, ['rules', index, 'metric'])}: {problem}"
        f" (metric catalogue {shown(context.catalogue_file)})"
        for index, rule in enumerate(rules)
        for problem in catalogue_problems([rule], catalogue)
    ]
    if problems:
        raise ConfigProblems(problems)
    disabled = sum(1 for r in rules if not r.enabled)
    return f"{_plural(len(rules), 'rule')} ({disabled} disabled), every metric and label in the catalogue"


def check_routing(path: Path, context: Context) -> str:
    # A route mailing without email_to mails ALERT_EMAIL_TO: checked against this environment's.
    routing = _validated(path, lambda: load_routing(path, alert_email_to=os.environ.get("ALERT_EMAIL_TO")))
    labelled = f"{_plural(len(routing.routes), 'label route')} first, " if routing.routes else ""
    # Valid, but worth a second look: critical alerts such a route takes page nobody.
    quiet = [
        f"; routes.{route.name} takes critical alerts without pagerduty"
        for route in routing.routes
        if "critical" in route.severities()
        and "pagerduty" in routing.severities["critical"].channels
        and "pagerduty" not in route.over(routing.severities["critical"]).channels
    ]
    return (
        f"{labelled}{_plural(len(routing.severities), 'route')} (one per severity), "
        f"group_by {list(routing.group_by)}, "
        f"{_plural(len(routing.inhibit_rules), 'inhibit rule')}, "
        f"{_plural(len(routing.time_intervals), 'time interval')}, channels {sorted(routing.all_channels())}"
        + "".join(quiet)
    )


def check_incidents(path: Path, context: Context) -> str:
    policy = _validated(path, lambda: load_policy(path))
    steps = sum(len(s) for s in policy.escalation.values())
    targets = _plural(len(policy.targets), "target")
    return f"opens for {list(policy.open_for)}, {targets}, {_plural(steps, 'escalation step')}"


def check_dashboards(path: Path, context: Context) -> str:
    catalog = _validated(path, lambda: load_catalog(path))
    problems = catalog.catalogue_problems(context.catalogue())
    if problems:
        raise ConfigProblems(
            [f"dashboards.{p} (metric catalogue {shown(context.catalogue_file)})" for p in problems]
        )
    panels = sum(len(d.panels) for d in catalog.dashboards.values())
    dashboards = _plural(len(catalog.dashboards), "dashboard")
    return f"{dashboards}, {_plural(panels, 'panel')}, every metric and label in the catalogue"


def check_audiences(path: Path, context: Context) -> str:
    try:
        load_catalog(context.dashboards_file)
    except (OSError, yaml.YAMLError, ValidationError, ValueError):
        dashboards = shown(context.dashboards_file)
        raise ConfigProblems([f"not cross-checked: the dashboards {dashboards} do not load"]) from None
    audiences = _validated(path, lambda: load_audiences(path, context.dashboards_file))
    count = _plural(len(audiences.audiences), "audience")
    return f"{count}, every section's panels in {shown(context.dashboards_file)}"


def check_scaling_rules(path: Path, context: Context) -> str:
    ruleset = _validated(path, lambda: load_scaling_rules(path))
    rules = sum(len(r.rules) for r in ruleset.regions.values())
    return f"{_plural(len(ruleset.regions), 'region')}, {_plural(rules, 'rule')}"


def check_catalogue(path: Path, context: Context) -> str:
    catalogue = _validated(path, lambda: load_catalogue(path))
    problems = [f"rates.{name}: {p}" for name in catalogue.rates for p in catalogue.check_rate(name)]
    if problems:
        raise ConfigProblems(problems)
    return (
        f"{_plural(len(catalogue.metrics), 'metric')}, {_plural(len(catalogue.rates), 'rate')}, "
        f"{_plural(len(catalogue.recording_rules), 'recording rule')}"
    )


def check_topology(path: Path, context: Context) -> str:
    topology = _validated(path, lambda: load_topology(path))
    return (
        f"{_plural(len(topology.functions), 'function')}, {_plural(len(topology.topics), 'topic')}, "
        f"{_plural(len(topology.schedules), 'schedule')}"
    )


def check_health(path: Path, context: Context) -> str:
    config = _validated(path, lambda: load_health_config(path))
    return f"{_plural(len(config.weights), 'signal weight')}"


def check_weights(path: Path, context: Context) -> str:
    config = _validated(path, lambda: load_weight_config(path))
    sets = _plural(len(config.weight_sets), "weight set")
    return f"version {config.version}, {sets}, default {config.default!r}"


def check_prices(path: Path, context: Context) -> str:
    prices = _validated(path, lambda: load_prices(path))
    return f"{prices.currency}, {_plural(len(prices.tables), 'price table')}"


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("metric-catalogue", "catalogue.yaml", None, CATALOGUE_FILE, None, check_catalogue),
        Kind("alert-rules", "rules.yaml", "alerts", ALERT_RULES_FILE, "ION_RULES_FILE", check_alert_rules),
        Kind("routing", "routing.yaml", None, DEFAULT_ROUTING_FILE, "ION_FANOUT_ROUTING_FILE", check_routing),
        Kind(
            "incidents",
            "incidents.yaml",
            None,
            DEFAULT_INCIDENT_POLICY_FILE,
            "ION_FANOUT_INCIDENT_POLICY_FILE",
            check_incidents,
        ),
        Kind(
            "dashboards",
            "dashboards.yaml",
            None,
            DEFAULT_DASHBOARDS_FILE,
            "ION_REPORTS_DASHBOARDS_FILE",
            check_dashboards,
        ),
        Kind(
            "audiences",
            "audiences.yaml",
            None,
            DEFAULT_DASHBOARDS_FILE.with_name("audiences.yaml"),
            "ION_REPORTS_AUDIENCES_FILE",
            check_audiences,
        ),
        Kind(
            "scaling-rules",
            "rules.yaml",
            "scaling",
            SCALING_RULES_FILE,
            "ION_SCALING_RULES_FILE",
            check_scaling_rules,
        ),
        Kind("topology", "topology.yaml", None, TOPOLOGY_FILE, None, check_topology),
        Kind("health", "health.yaml", None, HEALTH_FILE, "ION_HEALTH_CONFIG_FILE", check_health),
        Kind(
            "routing-weights",
            "weights.yaml",
            None,
            DEFAULT_WEIGHTS_FILE,
            "ION_ROUTING_WEIGHTS_FILE",
            check_weights,
        ),
        Kind("prices", "prices.yaml", None, DEFAULT_PRICES_FILE, "ION_COST_PRICES_FILE", check_prices),
    )
}


def kind_of(path: Path) -> Kind | None:
    """The kind a path names by its file name (and, for ``rules.yaml``, its folder)."""
    for kind in KINDS.values():
        if path.name == kind.file_name and (kind.folder is None or path.resolve().parent.name == kind.folder):
            return kind
    return None
