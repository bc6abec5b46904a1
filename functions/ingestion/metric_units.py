"""One metric, one unit. Series of every sender of a metric are pooled by the query API (a p95
across services, a sum across regions): a service exporting ``http.server.request.duration`` in
``ms`` beside others in ``s`` made every percentile and average across them meaningless, silently.
As Cloud Monitoring refuses a point whose unit differs from its metric descriptor's, a point whose
(non-empty) unit differs from the unit its metric was first stored with is refused, naming both;
points without a unit are taken as the metric's.

The unit is the metric document's ``unit`` (``metrics/{metric}``, written when series are
registered); each instance keeps what it read.
"""

from __future__ import annotations

from typing import Any

from functions.ingestion.aggregate import Batch
from shared.firestore import get_firestore
from shared.metrics.store import METRICS, metric_id

# metric -> its stored unit ("" when none is stored yet), for the Firestore client it was read from.
_units: dict[str, str] = {}
_read_from: list[Any] = [None]
_UNITS_MAX = 100_000


def unit_problem(metric: str, unit: str, known: str) -> str | None:
    """Why points of ``metric`` in ``unit`` are refused when the metric is in ``known``, or None."""
    if not unit or not known or unit == known:
        return None
    return (
        f"unit {unit!r} differs from {known!r}, the unit {metric} is stored in: one metric has one "
        "unit (convert the values, or export them under another metric name)"
    )


def refuse_unit_conflicts(batch: Batch) -> None:
    """Take out of ``batch`` the series of metrics whose unit differs from their stored unit,
    their points counted refused with the reason."""
    units = {name: info.unit for name, info in batch.metrics.items() if info.unit}
    if not units or not batch.series:
        return
    client = get_firestore()
    if _read_from[0] is not client or len(_units) > _UNITS_MAX:
        _units.clear()  # another store (a test's emptied emulator), or too many to keep
        _read_from[0] = client
    unread = sorted(name for name in units if name not in _units)
    if unread:
        refs = [client.collection(METRICS).document(metric_id(name)) for name in unread]
        stored = {snap.id: (snap.to_dict() or {}) for snap in client.get_all(refs, field_paths=["unit"])}
        for name in unread:
            found = stored.get(metric_id(name), {}).get("unit")
            # None stored yet: this batch's unit is the metric's (registration writes it).
            _units[name] = found if isinstance(found, str) and found else units[name]
    refused = {name: unit_problem(name, unit, _units[name]) for name, unit in units.items()}
    for sid, series in list(batch.series.items()):
        reason = refused.get(series.metric)
        if reason is not None:
            del batch.series[sid]
            batch.accepted -= series.points
            batch.reject(series.metric, reason, series.points)
