"""The metric catalogue (``catalogue.yaml`` beside this module): every metric a producer emits,
its kind, unit, labels and producers, and the rates derived from them.

Readers check what they ask for with :func:`check`; a problem list is empty when every metric
and label is emitted by some producer::

    check("ion.cache.requests", {"tier": "l1", "result": "hit"})  # []
    check("system.cpu.utilization", ["service"])  # ["unknown metric 'system.cpu.utilization' ..."]
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.metrics.recording import RecordingRule
from shared.yaml_files import safe_load

CATALOGUE_FILE = Path(__file__).resolve().parent / "catalogue.yaml"

Kind = Literal["counter", "histogram", "gauge"]
Producer = Literal["routing", "collector"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Label(_Strict):
    meaning: str = Field(min_length=1)
    values: list[str] | None = Field(default=None, description="the allowed values, where bounded")
    optional: bool = Field(default=False, description="set on some points only")


class CustomerUsage(_Strict):
    """A counter kept per customer and UTC day (``shared/metrics/customer_usage.py``) rather than
    as series, so that no per-metric series cap drops a customer."""

    field: str = Field(pattern=r"^[a-z][a-z_]{0,15}$", description="its map in a customer's entry")
    customer: str = Field(default="customer", description="the label holding the customer id")
    counted_by: list[str] = Field(min_length=1, description="labels keying its counters, each bounded")


class Metric(_Strict):
    kind: Kind
    unit: str = Field(min_length=1)
    producers: list[Producer] = Field(min_length=1)
    meaning: str = Field(min_length=1)
    labels: dict[str, Label]
    customer_usage: CustomerUsage | None = None

    @model_validator(mode="after")
    def _bounded_usage(self) -> Metric:
        # Customer usage is bounded by the registry times these values: each must be a known set.
        usage = self.customer_usage
        if usage is None:
            return self
        if self.kind != "counter":
            raise ValueError("customer_usage is for counters only")
        if usage.customer not in self.labels:
            raise ValueError(f"customer_usage.customer {usage.customer!r} is not a label")
        for name in usage.counted_by:
            label = self.labels.get(name)
            if label is None or not label.values:
                raise ValueError(f"customer_usage.counted_by {name!r} must be a label with bounded values")
            if any(":" in value for value in label.values):
                raise ValueError(f"values of {name!r} may not hold ':' (it joins a counter's key)")
        return self


class RatePart(_Strict):
    metric: str
    match: dict[str, str] = {}


class Rate(_Strict):
    meaning: str = Field(min_length=1)
    numerator: RatePart
    denominator: RatePart


class Catalogue(_Strict):
    metrics: dict[str, Metric]
    rates: dict[str, Rate] = {}
    # Pre-aggregated hours written by the downsampler (``shared/metrics/recording.py``).
    recording_rules: list[RecordingRule] = []

    @model_validator(mode="after")
    def _usage_fields_unique(self) -> Catalogue:
        fields = [m.customer_usage.field for m in self.metrics.values() if m.customer_usage]
        if len(fields) != len(set(fields)):
            raise ValueError(f"customer_usage fields must be unique: {sorted(fields)}")
        return self

    @model_validator(mode="after")
    def _rules_known(self) -> Catalogue:
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for rule in self.recording_rules:
            spec = self.metrics.get(rule.metric)
            if spec is None:
                raise ValueError(f"recording rule of unknown metric {rule.metric!r}")
            if spec.customer_usage is not None:
                raise ValueError(f"{rule.metric} is kept per customer and day, not as series to record")
            unknown = [label for label in rule.by if label not in spec.labels]
            if unknown:
                raise ValueError(f"recording rule of {rule.metric} keeps labels it never has: {unknown}")
            if (rule.metric, rule.by) in seen:
                raise ValueError(f"recording rule of {rule.metric} by {list(rule.by)} is declared twice")
            seen.add((rule.metric, rule.by))
        return self

    def customer_usage(self) -> dict[str, CustomerUsage]:
        """The metrics kept in the customer usage store, by name."""
        return {name: m.customer_usage for name, m in self.metrics.items() if m.customer_usage}

    def check(self, metric: str, labels: Iterable[str] | Mapping[str, str] = ()) -> list[str]:
        """Problems with reading ``metric`` with ``labels`` (names, or name -> value to check the
        value too): an unknown metric, a label its producers never set, a value outside the
        label's allowed set. Empty when the read can find data."""
        spec = self.metrics.get(metric)
        if spec is None:
            near = difflib.get_close_matches(metric, list(self.metrics), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            return [f"unknown metric {metric!r}: no producer emits it{hint}"]
        problems: list[str] = []
        values = labels if isinstance(labels, Mapping) else dict.fromkeys(labels)
        for name, value in values.items():
            label = spec.labels.get(name)
            if label is None:
                known = ", ".join(sorted(spec.labels))
                problems.append(
                    f"metric {metric!r} has no label {name!r} ({'/'.join(spec.producers)} sets: {known})"
                )
            elif value is not None and label.values is not None and value not in label.values:
                problems.append(
                    f"metric {metric!r} label {name!r} is never {value!r} (values: {', '.join(label.values)})"
                )
        return problems

    def check_rate(self, rate: str) -> list[str]:
        spec = self.rates.get(rate)
        if spec is None:
            return [f"unknown rate {rate!r} (known: {', '.join(sorted(self.rates))})"]
        return [
            *self.check(spec.numerator.metric, spec.numerator.match),
            *self.check(spec.denominator.metric, spec.denominator.match),
        ]

    def produced_by(self, producer: str) -> dict[str, Metric]:
        return {name: m for name, m in self.metrics.items() if producer in m.producers}


@cache
def load_catalogue(path: Path = CATALOGUE_FILE) -> Catalogue:
    raw = safe_load(path.read_text())
    # `x-...` keys hold YAML anchors shared by several metrics; they are not metrics.
    return Catalogue.model_validate({k: v for k, v in raw.items() if not k.startswith("x-")})


def check(metric: str, labels: Iterable[str] | Mapping[str, str] = ()) -> list[str]:
    """Problems reading ``metric`` with ``labels`` from the default catalogue ([] when fine)."""
    return load_catalogue().check(metric, labels)


def customer_usage_metrics() -> dict[str, CustomerUsage]:
    """The default catalogue's customer usage metrics (``customer_usage`` set), by name."""
    return load_catalogue().customer_usage()
