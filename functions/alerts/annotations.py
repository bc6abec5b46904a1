"""Alert annotations: the rule file's ``annotations`` and their rendering into a notification.

Every annotation (``summary``, ``description``, a dashboard link...) is a template: ``{value}``,
``{threshold}``, ``{labels}`` and ``{labels.NAME}``; runbook steps are sent as written.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from shared.numbers import readable

LABEL_PLACEHOLDER = re.compile(r"\{labels\.([^{}]+)\}")


def _runbook(value: Any) -> Any:
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    return value


class Annotations(BaseModel):
    """``summary`` (one line), ``runbook`` steps, and any other string annotations
    (``description``, ``dashboard``...); every one but the runbook is a template (``render``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    summary: str = Field(min_length=1)
    runbook: Annotated[list[str], BeforeValidator(_runbook)] = []

    @model_validator(mode="after")
    def _extras_are_strings(self) -> Annotations:
        for key, value in (self.model_extra or {}).items():
            if not isinstance(value, str):
                raise ValueError(f"annotation {key!r} must be a string")
        return self

    def extra(self) -> dict[str, str]:
        return {k: str(v) for k, v in (self.model_extra or {}).items()}

    def labels_named(self) -> set[str]:
        """The labels that ``{labels.NAME}`` placeholders name, in any annotation."""
        texts = [self.summary, *self.extra().values()]
        return {name for text in texts for name in LABEL_PLACEHOLDER.findall(text)}


def render(template: str, labels: dict[str, str], value: float | None, threshold: float | None) -> str:
    """``{value}``, ``{threshold}``, ``{labels}`` and ``{labels.NAME}`` in a summary; unknown
    placeholders are left as written."""
    text = template.replace("{value}", "n/a" if value is None else readable(value))
    text = text.replace("{threshold}", "n/a" if threshold is None else readable(threshold))
    for key, val in labels.items():
        text = text.replace("{labels." + key + "}", val)
    return text.replace("{labels}", ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "all")
