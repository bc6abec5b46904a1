"""Label matchers as Alertmanager's API v2 spells them (``name``, ``value``, ``isRegex``,
``isEqual``), shared by silences and inhibition rules, and the label set an alert is matched on."""

from __future__ import annotations

import re
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.messages import AlertTransition

LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class Matcher(BaseModel):
    """``name`` equal to (or, with ``isRegex``, fully matching) ``value``; ``isEqual: false`` negates."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=LABEL_NAME, max_length=100)
    value: str = Field(max_length=1000)
    is_regex: bool = Field(default=False, alias="isRegex")
    is_equal: bool = Field(default=True, alias="isEqual")

    @field_validator("value")
    @classmethod
    def _no_control_chars(cls, value: str) -> str:
        if any(ord(ch) < 32 for ch in value):
            raise ValueError("value must not contain control characters")
        return value

    @model_validator(mode="after")
    def _regex_compiles(self) -> Matcher:
        if self.is_regex:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"value is not a valid regular expression: {exc}") from None
        return self

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.value) if self.is_regex else None

    def matches_value(self, value: str) -> bool:
        hit = self._pattern.fullmatch(value) is not None if self._pattern else value == self.value
        return hit if self.is_equal else not hit

    def matches(self, labels: dict[str, str]) -> bool:
        # As in Alertmanager, a missing label is the empty string.
        return self.matches_value(labels.get(self.name, ""))


def matches_all(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def alert_labels(transition: AlertTransition) -> dict[str, str]:
    """The labels an alert is grouped, silenced and inhibited on: its own labels plus ``rule``
    (also as Alertmanager's ``alertname``), ``severity`` and ``metric``."""
    return {
        **transition.labels,
        "rule": transition.rule,
        "alertname": transition.rule,
        "severity": transition.severity,
        "metric": transition.metric,
    }
