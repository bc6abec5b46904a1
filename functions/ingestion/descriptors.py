"""One metric, one unit and one kind. The query API pools the series of every sender of a metric
(a p95 across services, a sum across regions): a service exporting
``http.server.request.duration`` in ``ms`` beside others in ``s`` made every percentile and
average across them meaningless, and a gauge stored under a counter's name was added to its
increments, silently. As Cloud Monitoring refuses a point whose unit or kind differs from its
metric descriptor's, such points are refused, naming both; points without a unit are taken as
the metric's.

The unit and kind are the metric document's (``metrics/{metric}``, written when series are
registered), or the batch's first for a metric not stored yet; each instance keeps what it read.
"""

from __future__ import annotations

import re
from typing import Any

from functions.ingestion.aggregate import Batch
from shared.firestore import get_firestore
from shared.metrics.store import METRICS, metric_id

# metric -> its (unit, kind) as stored ("" when none is stored yet), for the Firestore client it
# was read from.
_known: dict[str, tuple[str, str]] = {}
_read_from: list[Any] = [None]
_KNOWN_MAX = 100_000


def _measure(unit: str) -> str:
    """What a UCUM unit measures: ``{request}`` and ``1`` are both a count (curly braces are
    annotations, not units), ``{packet}/s`` and ``1/s`` both per second."""
    bare = re.sub(r"\{[^}]*\}", "", unit)
    return "1" + bare if bare[:1] in ("", "/") else bare


def unit_problem(metric: str, unit: str, known: str) -> str | None:
    """Why points of ``metric`` in ``unit`` are refused when the metric is in ``known``, or None."""
    if not unit or not known or _measure(unit) == _measure(known):
        return None
    return (
        f"unit {unit!r} differs from {known!r}, the unit {metric} is stored in: one metric has one "
        "unit (convert the values, or export them under another metric name)"
    )


def kind_problem(metric: str, kind: str, known: str) -> str | None:
    if not known or kind == known:
        return None
    return (
        f"a {kind} differs from {metric}'s kind, {known}: one metric has one kind "
        "(export it under another metric name)"
    )


def _stored(batch: Batch) -> dict[str, tuple[str, str]]:
    """Each metric of ``batch``'s (unit, kind): as stored, else as this batch first gives it."""
    client = get_firestore()
    if _read_from[0] is not client or len(_known) > _KNOWN_MAX:
        _known.clear()  # another store (a test's emptied emulator), or too many to keep
        _read_from[0] = client
    names = {series.metric for series in batch.series.values()}
    unread = sorted(name for name in names if name not in _known)
    if unread:
        refs = [client.collection(METRICS).document(metric_id(name)) for name in unread]
        stored = {
            snap.id: (snap.to_dict() or {}) for snap in client.get_all(refs, field_paths=["unit", "kind"])
        }
        for name in unread:
            doc, info = stored.get(metric_id(name), {}), batch.metrics.get(name)
            unit, kind = doc.get("unit"), doc.get("kind")
            _known[name] = (
                unit if isinstance(unit, str) and unit else (info.unit if info else ""),
                kind if isinstance(kind, str) and kind else (info.kind if info else ""),
            )
    return {name: _known[name] for name in names}


def refuse_conflicts(batch: Batch) -> None:
    """Take out of ``batch`` the series whose metric's unit, or whose kind, differs from their
    metric's stored one, their points counted refused with the reason."""
    if not batch.series:
        return
    known = _stored(batch)
    for sid, series in list(batch.series.items()):
        unit, kind = known[series.metric]
        info = batch.metrics.get(series.metric)
        reason = unit_problem(series.metric, info.unit if info else "", unit) or kind_problem(
            series.metric, series.kind, kind
        )
        if reason is not None:
            del batch.series[sid]
            batch.accepted -= series.points
            batch.reject(series.metric, reason, series.points)
