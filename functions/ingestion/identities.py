"""What a data point's attributes resolve to (series id, labels, the reason they are refused,
stream and origin), cached per process: the series an SDK exports every minute cost one lookup
each after the first export."""

from __future__ import annotations

from collections.abc import Callable

from functions.ingestion.labels import origin_id, raw_point_attrs, stream_id
from shared.metrics.store import series_id

# Process cache of what a point's identity resolves to, so that the series an SDK exports every
# minute cost one lookup each after the first export: per (metric, kind, resource key, scope key),
# attributes as wire bytes -> (series id, labels, the reason its labels are refused or None,
# stream id, origin id). Valid for one pair of label limits (the settings); bounded (cleared
# when full: ~1.5 KB per entry).
Identity = tuple[str, dict[str, str], str | None, str, str]
_identities: dict[tuple[str, str, str, str], dict[tuple[bytes, ...], Identity]] = {}
_identity_state: list[int] = [0, 0, 0]  # the label limits it holds, entries
IDENTITY_CACHE_SIZE = 20_000


def known_identities(  # noqa: PLR0917 - the cache's key and the limits it is valid for
    max_attributes: int, max_label_value: int, metric: str, kind: str, resource_key: str, scope_key: str
) -> dict[tuple[bytes, ...], Identity]:
    """The cache of one metric's points from one resource and scope (one lookup per metric)."""
    if _identity_state[:2] != [max_attributes, max_label_value] or _identity_state[2] >= IDENTITY_CACHE_SIZE:
        _identities.clear()
        _identity_state[:] = [max_attributes, max_label_value, 0]
    known = _identities.get((metric, kind, resource_key, scope_key))
    if known is None:
        known = _identities[(metric, kind, resource_key, scope_key)] = {}
    return known


def resolve_identity(  # noqa: PLR0917 - the point's identity, parts and all
    label_problem: Callable[[dict[str, str], dict[str, str]], str | None],
    known: dict[tuple[bytes, ...], Identity],
    metric: str,
    resource_key: str,
    scope_key: str,
    raw_attrs: tuple[bytes, ...],
    resource_labels: tuple[tuple[str, str], ...],
) -> Identity:
    _identity_state[2] += 1
    try:
        attrs = raw_point_attrs(raw_attrs)
    except ValueError as exc:
        found: Identity = ("", {}, str(exc), "", "")
        known[raw_attrs] = found
        return found
    labels = dict(resource_labels)
    labels.update(attrs)
    problem = label_problem(labels, attrs)
    found = (
        series_id(metric, labels),
        labels,
        problem,
        stream_id(metric, resource_key, scope_key, attrs),
        origin_id(resource_key, scope_key),
    )
    known[raw_attrs] = found
    return found
