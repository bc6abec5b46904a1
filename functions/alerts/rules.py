"""Alert rules: the YAML format (a public contract), validated with pydantic at load.

A rules file is ``{"rules": [rule, ...]}``. Every rule has ``name``, ``metric``, ``agg``,
``window``, ``for``, ``severity``, optional ``match``, ``group_by``, ``labels``, ``annotations``
(``summary``, ``runbook``). ``kind`` (default ``threshold``) chooses the condition:

- ``threshold``: ``op``, ``threshold``; optional ``clear_threshold`` (hysteresis), ``ratio``.
- ``absence``: fires when a series seen within ``lookback`` has had no point for ``window``.
- ``anomaly``: the streaming detector (``detector.py``) over ``step``-sized points of ``history``.
- ``trend``: change between the window now and the window ``over`` ago, ``op`` ``threshold``.
- ``slo_burn_rate``: multiwindow, multi-burn-rate alerts on an error ``ratio`` against ``objective``.

Errors name the rule (by its ``name`` or position) and the field, e.g.
``rule 'api-p95-high' (rules[3]): field 'threshold': Input should be a valid number``.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from functions.alerts.annotations import Annotations
from functions.alerts.durations import Duration, MinuteDuration
from shared.clock import ZoneName
from shared.messages import Severity
from shared.metrics.query_model import Agg
from shared.yaml_files import safe_load

DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "rules.yaml"

Op = Literal[">", "<", ">=", "<="]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Selector(_Strict):
    """A part of the series of a metric: label equality ``match`` and labels that must be set
    (``present``, e.g. ``error.type``: any value, but not empty)."""

    metric: str | None = Field(default=None, description="defaults to the rule's metric")
    match: dict[str, str] = {}
    present: list[str] = []


class Ratio(_Strict):
    """``numerator`` / ``denominator``, both aggregated with the rule's ``agg`` (usually count).

    The error rate is ``{numerator: {present: [error.type]}}`` over all requests of the metric:
    OpenTelemetry's HTTP conventions set ``error.type`` on every failed request (5xx status
    code or an exception), so no status code arithmetic is needed.
    """

    numerator: Selector
    denominator: Selector = Selector()


class _Rule(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    metric: str = Field(min_length=1)
    agg: Agg = "avg"
    window: Duration = timedelta(minutes=5)
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = timedelta(0)
    severity: Severity
    match: dict[str, str] = {}
    group_by: list[str] = []
    labels: dict[str, str] = {}
    annotations: Annotations
    enabled: bool = True

    @field_validator("window")
    @classmethod
    def _window_positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("window must be longer than 0s")
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations_name_known_labels(cls, value: Annotations, info: ValidationInfo) -> Annotations:
        # A label no alert of the rule has would be sent as written, "{labels.region}", in every page.
        has = cls.labels_of_alerts(info.data.get("group_by", []))
        unknown = sorted(value.labels_named() - has)
        if unknown:
            known = ", ".join(sorted(has)) or "none: add them to group_by"
            raise ValueError(f"annotations name labels {unknown} that the alerts do not have ({known})")
        return value

    @classmethod
    def labels_of_alerts(cls, group_by: list[str]) -> set[str]:
        """The labels of the rule's alerts (what ``{labels.NAME}`` may name): its ``group_by``."""
        return set(group_by)

    def fingerprint(self, labels: dict[str, str]) -> str:
        """Stable id of one alert (this rule, one label set) across its whole life."""
        text = json.dumps([self.name, sorted(labels.items())], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def metrics(self) -> set[str]:
        """Every metric this rule reads (for evaluate-on-ingest)."""
        return {self.metric}


def compare(value: float, op: str, threshold: float) -> bool:
    if op == ">":
        return value > threshold
    if op == ">=":
        return value >= threshold
    if op == "<":
        return value < threshold
    return value <= threshold


class ThresholdRule(_Rule):
    kind: Literal["threshold"] = "threshold"
    op: Op
    threshold: float
    clear_threshold: float | None = Field(
        default=None,
        description="hysteresis: once firing, clear only beyond this bound (below it for > and >=)",
    )
    ratio: Ratio | None = None

    @model_validator(mode="after")
    def _hysteresis_on_the_clear_side(self) -> ThresholdRule:
        if self.clear_threshold is not None:
            if self.op in (">", ">=") and self.clear_threshold > self.threshold:
                raise ValueError("clear_threshold must not exceed threshold when op is > or >=")
            if self.op in ("<", "<=") and self.clear_threshold < self.threshold:
                raise ValueError("clear_threshold must not be below threshold when op is < or <=")
        return self

    def metrics(self) -> set[str]:
        found = {self.metric}
        if self.ratio:
            found |= {s.metric for s in (self.ratio.numerator, self.ratio.denominator) if s.metric}
        return found


class AbsenceRule(_Rule):
    """Fires for each label set seen within ``lookback`` that has had no point for ``window``.
    Points are counted whatever ``agg`` says (the value of a point does not make it absent). An
    alert already open stays absent past ``lookback``: it resolves when a point comes back."""

    kind: Literal["absence"]
    agg: Agg = "count"
    lookback: Duration = timedelta(hours=1)

    @model_validator(mode="after")
    def _lookback_longer(self) -> AbsenceRule:
        if self.lookback <= self.window:
            raise ValueError("lookback must be longer than window")
        return self


class AnomalyRule(_Rule):
    """A learned baseline per series: points of ``step`` over ``history`` through the detector."""

    kind: Literal["anomaly"]
    step: MinuteDuration | None = Field(default=timedelta(minutes=5), description="None: raw points")
    history: Duration = timedelta(days=7)
    direction: Literal["both", "up", "down"] = "both"
    sensitivity: float = Field(default=1.0, gt=0.1, le=10, description="> 1 alerts more, < 1 less")
    # The IANA zone whose local clock the daily pattern follows (None: UTC); or per series by one
    # label's value, e.g. {region: {europe-west1: Europe/Brussels}} (a value not listed: time_zone).
    time_zone: ZoneName | None = None
    time_zones: dict[str, dict[str, ZoneName]] = Field(default_factory=dict, max_length=1)

    @model_validator(mode="after")
    def _zones_by_a_grouped_label(self) -> AnomalyRule:
        for label in self.time_zones:
            if label not in self.group_by:
                raise ValueError(f"time_zones is by {label!r}, which group_by must list")
        return self

    def zone_for(self, labels: dict[str, str]) -> str | None:
        """The zone of the series with these labels."""
        for label, zones in self.time_zones.items():
            if labels.get(label) in zones:
                return zones[labels[label]]
        return self.time_zone


class TrendRule(_Rule):
    """Rate of change: the window now against the window ``over`` ago; ``change`` relative
    (fraction, 0.5 = +50%) or absolute (units per hour)."""

    kind: Literal["trend"]
    over: Duration = timedelta(minutes=30)
    change: Literal["relative", "absolute"] = "relative"
    op: Op
    threshold: float


class BurnWindow(_Strict):
    long: Duration
    short: Duration
    factor: float = Field(gt=0)

    @model_validator(mode="after")
    def _short_shorter(self) -> BurnWindow:
        if self.short >= self.long:
            raise ValueError("short must be shorter than long")
        return self


DEFAULT_BURN_WINDOWS = (
    BurnWindow(long=timedelta(hours=1), short=timedelta(minutes=5), factor=14.4),
    BurnWindow(long=timedelta(hours=6), short=timedelta(minutes=30), factor=6),
    BurnWindow(long=timedelta(days=3), short=timedelta(hours=6), factor=1),
)


class SloBurnRateRule(_Rule):
    """SRE workbook multiwindow, multi-burn-rate alert: fires when, for any pair, the error
    ratio over both the long and the short window exceeds ``factor`` * (1 - objective)."""

    kind: Literal["slo_burn_rate"]
    agg: Agg = "count"
    objective: float = Field(gt=0, lt=1)
    ratio: Ratio
    burn_windows: list[BurnWindow] = Field(default=list(DEFAULT_BURN_WINDOWS), min_length=1)

    def metrics(self) -> set[str]:
        return {self.metric} | {s.metric for s in (self.ratio.numerator, self.ratio.denominator) if s.metric}


class HeartbeatRule(_Rule):
    """The scheduled jobs' dead man's switch: fires for each job of topology.yaml without a
    success for ``factor`` times its cron interval (``functions/alerts/jobs.py``). It reads the
    jobs' heartbeats, not a metric."""

    kind: Literal["heartbeat"]
    metric: str = "scheduler.job.heartbeat"
    factor: float = Field(default=2.0, ge=1.0, description="intervals without success before firing")

    def metrics(self) -> set[str]:
        return set()

    @classmethod
    def labels_of_alerts(cls, group_by: list[str]) -> set[str]:
        return {"job", "function"}  # jobs.observe_jobs


Rule = Annotated[
    ThresholdRule | AbsenceRule | AnomalyRule | TrendRule | SloBurnRateRule | HeartbeatRule,
    Field(discriminator="kind"),
]
_RULE = TypeAdapter(Rule)
KINDS = ("threshold", "absence", "anomaly", "trend", "slo_burn_rate", "heartbeat")


class RulesError(ValueError):
    """A rules file that cannot be used; ``errors`` lists each problem with rule and field."""

    def __init__(self, source: str, errors: list[dict[str, str]]) -> None:
        self.source = source
        self.errors = errors
        lines = [f"{e['rule']}: field '{e['field']}': {e['message']}" for e in errors]
        super().__init__(f"invalid rules in {source}:\n  " + "\n  ".join(lines))


def parse_rules(raw: Any, source: str = "rules") -> list[Any]:
    """Validate a loaded YAML document; raises RulesError naming each rule and field."""
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        raise RulesError(
            source, [{"rule": "(file)", "field": "rules", "message": "needs a top-level `rules:` list"}]
        )
    rules: list[Any] = []
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for index, item in enumerate(raw["rules"]):
        name = item.get("name") if isinstance(item, dict) else None
        where = f"rule {name!r} (rules[{index}])" if name else f"rules[{index}]"
        data = {**item, "kind": "threshold"} if isinstance(item, dict) and "kind" not in item else item
        try:
            rule = _RULE.validate_python(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                loc = [str(p) for p in err["loc"]]
                if loc and loc[0] in KINDS:  # the discriminator's tag, not a field
                    loc = loc[1:]
                errors.append({"rule": where, "field": ".".join(loc) or "kind", "message": err["msg"]})
            continue
        if rule.name in seen:
            errors.append({"rule": where, "field": "name", "message": f"duplicate rule name {rule.name!r}"})
        seen.add(rule.name)
        rules.append(rule)
    if errors:
        raise RulesError(source, errors)
    return rules


def load_rules(path: str | Path | None = None, include_disabled: bool = False) -> list[Any]:
    """Rules from ``path``, else ``ION_RULES_FILE``, else the default rules.yaml (the enabled ones
    unless ``include_disabled``). Any error in the file raises: a rule set is loaded whole or not."""
    target = Path(path or os.environ.get("ION_RULES_FILE") or DEFAULT_RULES_FILE)
    try:
        raw = safe_load(target.read_text())
    except OSError as exc:
        raise RulesError(str(target), [{"rule": "(file)", "field": "path", "message": str(exc)}]) from None
    except yaml.YAMLError as exc:
        raise RulesError(str(target), [{"rule": "(file)", "field": "yaml", "message": str(exc)}]) from None
    return [r for r in parse_rules(raw, str(target)) if include_disabled or r.enabled]


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> tuple[Any, ...]:
    return tuple(load_rules(path, include_disabled=True))


def configured_rules() -> list[Any]:
    """Every rule of the configured file, disabled ones too, re-read when the file changes."""
    target = str(Path(os.environ.get("ION_RULES_FILE") or DEFAULT_RULES_FILE))
    try:
        mtime = os.stat(target).st_mtime
    except OSError:
        mtime = 0.0
    return list(_cached(target, mtime))


def active_rules() -> list[Any]:
    """The enabled rules of the configured file, re-read when the file changes."""
    return [r for r in configured_rules() if r.enabled]
