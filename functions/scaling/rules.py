"""Per-region scaling bounds: a floor, a base maximum and time-of-day rules, in YAML, each region
in its own time zone. Validated at load; every error names the region, the rule and the field.

    regions:
      us-central1:
        time_zone: America/Chicago
        service: persona-router        # the Cloud Run service this region's bounds apply to
        floor: 2                       # min instances never go below this
        max_instances: 100             # max instances outside any rule
        rules:
          - {name: morning-peak, start: "08:00", end: "09:00", min: 4, max: 150}
          - {name: weekend-quiet, start: "00:00", end: "24:00", days: [sat, sun], min: 1, max: 60}

A rule holds from ``start`` (inclusive) to ``end`` (exclusive) in local wall-clock time, on
``days`` (default every day); ``start > end`` wraps past midnight. When several rules hold, the
highest ``min`` and the highest ``max`` win (a rule can only ask for more capacity than another).
A rule's ``min`` is raised to the region's ``floor``: no rule lowers the floor.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.clock import iana_time_zone

DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "rules.yaml"
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
# Cloud Run's largest max-instances setting without a quota increase.
CLOUD_RUN_MAX_INSTANCES = 1000


class RulesError(ValueError):
    """A rule set that cannot be used; ``errors`` name the region, rule and field of each fault."""

    def __init__(self, errors: list[str], locations: list[tuple[str | int, ...]] | None = None) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        # Each error's key path in the file (keys and list indexes), where it has one.
        self.locations = locations or [() for _ in errors]


def _minutes(text: str) -> int:
    match = _CLOCK.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time of day; write it as HH:MM, 00:00 to 24:00")
    minutes = int(match.group(1)) * 60 + int(match.group(2))
    if minutes > 24 * 60:
        raise ValueError(f"{text!r} is after 24:00")
    return minutes


class TimeRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    start: str
    end: str
    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    min: int = Field(ge=0, le=CLOUD_RUN_MAX_INSTANCES)
    max: int = Field(ge=1, le=CLOUD_RUN_MAX_INSTANCES)

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        _minutes(value)
        return value

    @model_validator(mode="after")
    def _order(self) -> TimeRule:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        if self.start == self.end:
            raise ValueError("start and end are equal; use 00:00 to 24:00 for a whole day")
        return self

    def holds_at(self, local: datetime) -> bool:
        start, end = _minutes(self.start), _minutes(self.end)
        now = local.hour * 60 + local.minute
        day = DAYS[local.weekday()]
        if start < end:
            return day in self.days and start <= now < end
        # Wraps past midnight: the part after midnight belongs to the day the rule started.
        if now >= start:
            return day in self.days
        previous_day = DAYS[(local.weekday() - 1) % 7]
        return now < end and previous_day in self.days


class RegionRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time_zone: str
    service: str = Field(default="persona-router", min_length=1, max_length=63)
    floor: int = Field(default=0, ge=0, le=CLOUD_RUN_MAX_INSTANCES)
    max_instances: int = Field(default=100, ge=1, le=CLOUD_RUN_MAX_INSTANCES)
    capacity_rpm: float | None = Field(default=None, gt=0, description="requests/min per instance")
    rules: list[TimeRule] = []

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            iana_time_zone(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IANA time zone (like Europe/Brussels)") from None
        return value

    @model_validator(mode="after")
    def _floor(self) -> RegionRules:
        if self.floor > self.max_instances:
            raise ValueError(f"floor ({self.floor}) is above max_instances ({self.max_instances})")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def ceiling(self) -> int:
        """The most instances any hour allows (a peak rule may allow more than the base max)."""
        return max([self.max_instances, *(rule.max for rule in self.rules)])


class Bounds(BaseModel):
    """What the rules allow at one instant: min instances at least ``low``, at most ``high``."""

    low: int
    high: int
    rule: str | None = None  # the rule that set them (None: the region's floor and base max)
    local_time: str = ""
    # The most any hour allows: a max may stay above ``high`` up to this while the load needs it
    # (at 09:00 a peak rule's 150 ends, and 120 instances busy are not cut to 100). None: ``high``.
    ceiling: int | None = None


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    regions: dict[str, RegionRules] = Field(min_length=1)

    def bounds(self, region: str, at: datetime) -> Bounds:
        rules = self.regions[region]
        local = at.astimezone(rules.zone)
        holding = [rule for rule in rules.rules if rule.holds_at(local)]
        stamp = local.isoformat(timespec="minutes")
        if not holding:
            return Bounds(low=rules.floor, high=rules.max_instances, local_time=stamp, ceiling=rules.ceiling)
        low = max(*(rule.min for rule in holding), rules.floor)
        high = max(*(rule.max for rule in holding), low)
        chosen = max(holding, key=lambda rule: (rule.min, rule.max))
        return Bounds(low=low, high=high, rule=chosen.name, local_time=stamp, ceiling=rules.ceiling)


def _where(data: Any, loc: tuple[Any, ...]) -> str:
    """'region 'eu' rule 'lunch' (rules[1]) field 'min'' from a pydantic error location."""
    parts: list[str] = []
    rest = list(loc)
    if rest[:1] == ["regions"] and len(rest) >= 2:
        region = rest[1]
        parts.append(f"region {region!r}")
        rest = rest[2:]
        if rest[:1] == ["rules"] and len(rest) >= 2 and isinstance(rest[1], int):
            index = rest[1]
            try:
                name = data["regions"][region]["rules"][index].get("name")
            except (KeyError, IndexError, TypeError, AttributeError):
                name = None
            parts.append(f"rule {name!r} (rules[{index}])" if name else f"rules[{index}]")
            rest = rest[2:]
    if rest:
        parts.append("field " + repr(".".join(str(p) for p in rest)))
    return " ".join(parts) or "rule set"


def parse_rules(data: Any) -> RuleSet:
    if isinstance(data, dict):
        # Top-level keys starting with "x-" hold YAML anchors shared by several regions.
        data = {key: value for key, value in data.items() if not str(key).startswith("x-")}
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        found = exc.errors(include_url=False, include_input=False)
        errors = [f"{_where(data, tuple(err['loc']))}: {err['msg']}" for err in found]
        raise RulesError(errors, [tuple(err["loc"]) for err in found]) from None


def load_rules(path: str | Path) -> RuleSet:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError([f"cannot read {path}: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError([f"{path} is not valid YAML: {exc}"]) from None
    return parse_rules(data)


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> RuleSet:
    return load_rules(path)


def active_rules() -> RuleSet:
    """The deployed rule set: ``ION_SCALING_RULES_FILE`` or the packaged ``rules.yaml``."""
    path = os.environ.get("ION_SCALING_RULES_FILE") or str(DEFAULT_RULES_FILE)
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        raise RulesError([f"cannot read {path}: {exc.strerror}"]) from None
    return _cached(path, mtime)


def unbounded(time_zone: str = "UTC", max_instances: int = CLOUD_RUN_MAX_INSTANCES) -> RegionRules:
    """The bounds of a replay with no rule file: floor 0 and Cloud Run's own ceiling."""
    return RegionRules(time_zone=time_zone, floor=0, max_instances=max_instances)
