"""The series registry: which bucket each series of a metric is in, the per-metric series limit
and the per-service metric name limit.

Registration (``register_series``, before anything is applied): the metric names of each service
not admitted by this instance within a day are admitted against
``ION_METRICS_MAX_METRICS_PER_SERVICE`` (``metric_services/{service}``); series not known to this
instance are looked up in the registry (``metric_series``), which gives their bucket; new ones are
registered, while the metric stays within ``ION_METRICS_MAX_SERIES_PER_METRIC``, in the metric's
open bucket (``bucket_open``/``bucket_fill``/``series_count`` on the metric document), opening the
next one once ``ION_METRICS_BUCKET_SERIES`` are in it. Both are decided on what was read and
committed only if the documents are unchanged (optimistic concurrency), so concurrent instances
never pass a limit nor overfill a bucket. A series keeps its bucket for as long as its registry
entry lives (90 days after it was last seen, so longer than any of its rollups). A registry entry
is refreshed once a day.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from google.api_core.exceptions import Aborted

from functions.ingestion import known_series as known
from functions.ingestion.aggregate import Batch, SeriesBatch
from functions.ingestion.settings import get_ingestion_settings
from shared.clock import utcnow
from shared.firestore import backoff, get_firestore
from shared.metrics.store import METRICS, SERIES, SERIES_RETENTION, document_size, metric_id

# metric_services/{hash(service)}: service, metrics {name: last seen}, updated. The per-service
# metric name limit (ION_METRICS_MAX_METRICS_PER_SERVICE).
SERVICES = "metric_services"
COMMIT_ROUNDS = 12
T = TypeVar("T")

# A known series' entry older than a day is looked up again, and refreshed in the registry if due.
REFRESH_SECONDS = 86_400.0


class CardinalityExceeded(Exception):
    """Every point of the batch was refused by the per-metric series limit."""

    def __init__(self, metrics: dict[str, int], limit: int) -> None:
        self.metrics = metrics
        self.limit = limit
        names = ", ".join(f"{m} ({n} series)" for m, n in sorted(metrics.items()))
        super().__init__(f"series limit of {limit} per metric reached by {names}")


def service_id(service: str) -> str:
    return hashlib.blake2b(service.encode(), digest_size=10).hexdigest()


def register_series(batch: Batch) -> int:
    """Know the bucket of every series of ``batch``: refuse metrics past
    ``ION_METRICS_MAX_METRICS_PER_SERVICE`` names per service, look up the series this instance
    does not know, register new ones in their buckets while the metric stays within
    ``ION_METRICS_MAX_SERIES_PER_METRIC`` (checked inside the registering transaction, so that
    concurrent instances never overfill it), and refresh registry entries last seen more than a
    day ago. Refused series leave the batch, their points counted refused. Returns the number of
    registry writes."""
    settings = get_ingestion_settings()
    client = get_firestore()
    writes = _admit_metrics(batch)
    stale = time.monotonic() - REFRESH_SECONDS
    by_metric: dict[str, list[SeriesBatch]] = {}
    for series in batch.series.values():
        cached = known.series.get(series.sid)
        if cached is not None:
            batch.buckets[series.sid] = cached[0]
        if cached is None or cached[1] <= stale:
            by_metric.setdefault(series.metric, []).append(series)
    now = utcnow()
    for metric, unknown in by_metric.items():
        parent = client.collection(METRICS).document(metric_id(metric)).collection(SERIES)
        refs = [parent.document(s.sid) for s in unknown]
        found = {
            snap.id: snap.to_dict() or {}
            for snap in client.get_all(refs, field_paths=["bucket", "last_seen"])
            if snap.exists
        }
        read_at = time.monotonic()
        refresh = []
        new = []
        for series in unknown:
            doc = found.get(series.sid)
            if doc is None or not isinstance(doc.get("bucket"), int):
                # Never registered, or its entry expired (silent for 90 days, so is every rollup
                # of it): registered afresh, in whichever bucket is open.
                known.series.pop(series.sid, None)
                new.append(series)
                continue
            known.remember(known.series, series.sid, (doc["bucket"], read_at))
            batch.buckets[series.sid] = doc["bucket"]
            last_seen = doc.get("last_seen")
            if not isinstance(last_seen, datetime) or now - last_seen >= timedelta(seconds=REFRESH_SECONDS):
                refresh.append(parent.document(series.sid))
        new.sort(key=lambda s: s.sid)
        if new:
            writes += _register(batch, metric, new)
        for start in range(0, len(refresh), settings.max_writes_per_transaction):
            # A refresh only pushes the TTL back: merged, so the bucket and labels stay as they are.
            write = client.batch()
            for ref in refresh[start : start + settings.max_writes_per_transaction]:
                write.set(ref, {"last_seen": now, "expire_at": now + SERIES_RETENTION}, merge=True)
            write.commit()
        writes += len(refresh)
    known.forget_oldest(known.series)  # the batch has its buckets (``batch.buckets``)
    return writes


def _drop(batch: Batch, series: SeriesBatch, reason: str) -> None:
    if batch.series.pop(series.sid, None) is None:
        return
    batch.accepted -= series.points
    batch.reject(series.metric, reason, series.points)


def _admit_metrics(batch: Batch) -> int:
    """Refuse the series of metric names a service may not add (past
    ``ION_METRICS_MAX_METRICS_PER_SERVICE``): one transaction per service with names this instance
    has not admitted within a day, on ``metric_services/{service}`` (names with their last sight;
    names silent for 90 days give their place back). Returns the writes."""
    limit = get_ingestion_settings().max_metrics_per_service
    stale = time.monotonic() - REFRESH_SECONDS
    wanted: dict[str, set[str]] = {}
    for series in batch.series.values():
        pair = (series.labels.get("service", ""), series.metric)
        seen = known.metrics.get(pair)
        if seen is None or seen <= stale:
            wanted.setdefault(pair[0], set()).add(series.metric)
    if not wanted:
        return 0
    client = get_firestore()
    writes = 0
    refused: dict[tuple[str, str], str] = {}
    for service, names in sorted(wanted.items()):
        ref = client.collection(SERVICES).document(service_id(service))

        def admit(
            ref: Any = ref, service: str = service, names: set[str] = names
        ) -> tuple[Any, tuple[list[str], list[str], int, int]]:
            snap = ref.get()
            held: dict[str, Any] = dict((snap.to_dict() or {}).get("metrics") or {}) if snap.exists else {}
            now = utcnow()
            admitted, over = [], []
            changed = False
            for name in sorted(names):
                if name not in held and len(held) >= limit:
                    # Names silent longer than the series retention hold no data any more.
                    cutoff = now - SERIES_RETENTION
                    held = {n: at for n, at in held.items() if isinstance(at, datetime) and at >= cutoff}
                seen = held.get(name)
                if seen is not None or len(held) < limit:
                    if not isinstance(seen, datetime) or now - seen >= timedelta(seconds=REFRESH_SECONDS):
                        held[name] = now
                        changed = True
                    admitted.append(name)
                else:
                    over.append(name)
            write = None
            if changed:
                write = client.batch()
                fields = {"service": service, "metrics": held, "updated": now}
                _put(client, write, ref, snap, fields)
            return write, (admitted, over, len(held), 1 if changed else 0)

        admitted, over, count, written = _commit_if_unchanged(admit)
        writes += written
        at = time.monotonic()
        for name in admitted:
            known.remember(known.metrics, (service, name), at)
        for name in over:
            refused[(service, name)] = (
                f"metric limit reached: service {service or '(no service.name)'} has {count} metric "
                f"names, the limit is {limit} (ION_METRICS_MAX_METRICS_PER_SERVICE)"
            )
    if refused:
        for series in list(batch.series.values()):
            reason = refused.get((series.labels.get("service", ""), series.metric))
            if reason is not None:
                _drop(batch, series, reason)
    known.forget_oldest(known.metrics)
    return writes


def _register(batch: Batch, metric: str, new: list[SeriesBatch]) -> int:
    """Register ``new`` series of ``metric`` in the metric's open bucket(s), in transactions that
    read and move the metric's bucket state and series count, so that concurrent registrations
    never overfill a bucket nor pass the series limit, and a series registered meanwhile by
    another instance keeps the bucket it got. Series past the limit leave the batch, refused."""

    settings = get_ingestion_settings()
    limit = settings.max_series_per_metric
    client = get_firestore()
    metric_doc = client.collection(METRICS).document(metric_id(metric))
    parent = metric_doc.collection(SERIES)
    info = batch.metrics.get(metric)
    size = settings.max_writes_per_transaction - 1
    writes = 0
    now = utcnow()
    admissible = []
    for series in new:
        entry = _entry(series, 0, now)
        entry_bytes = document_size(parent.document(series.sid).path, entry)
        if entry_bytes > settings.max_document_bytes:
            _drop(
                batch,
                series,
                f"the series' registry entry would be {entry_bytes:,} bytes, over "
                f"ION_METRICS_MAX_DOCUMENT_BYTES ({settings.max_document_bytes:,}); send shorter labels",
            )
        else:
            admissible.append(series)
    for start in range(0, len(admissible), size):
        part = admissible[start : start + size]
        refs = {series.sid: parent.document(series.sid) for series in part}

        def register(
            part: list[SeriesBatch] = part, refs: dict[str, Any] = refs
        ) -> tuple[Any, tuple[dict[str, int], list[SeriesBatch], int, int]]:
            snaps = {snap.reference.path: snap for snap in client.get_all([metric_doc, *refs.values()])}
            state_snap = snaps[metric_doc.path]
            state = (state_snap.to_dict() or {}) if state_snap.exists else {}
            docs = {path: snap.to_dict() or {} for path, snap in snaps.items() if snap.exists}
            open_bucket = int(state.get("bucket_open") or 0)
            fill = int(state.get("bucket_fill") or 0)
            fresh = [s for s in part if not isinstance(docs.get(refs[s.sid].path, {}).get("bucket"), int)]
            # The count kept on the metric document moves only with that document's version:
            # two instances cannot both take the last places (the later commit finds the document
            # changed and decides again on the new count). It only ever overstates (entries
            # expire by TTL unseen), so it is recounted before refusing; what the recount misses
            # was committed after our read, and so fails our commit.
            count = state.get("series_count")
            if not isinstance(count, int) or count + len(fresh) > limit:
                count = int(parent.count().get()[0][0].value)
            room = max(0, limit - count)
            over = fresh[room:]
            over_sids = {s.sid for s in over}
            now = utcnow()
            assigned: dict[str, int] = {}
            written = 0
            write = client.batch()
            for series in part:
                if series.sid in over_sids:
                    continue
                existing = docs.get(refs[series.sid].path, {}).get("bucket")
                if isinstance(existing, int):
                    assigned[series.sid] = existing
                    continue
                if fill >= settings.bucket_series:
                    open_bucket, fill = open_bucket + 1, 0
                fill += 1
                written += 1
                assigned[series.sid] = open_bucket
                # Created, not set: an entry someone registered meanwhile fails the commit.
                write.create(refs[series.sid], _entry(series, open_bucket, now))
            if not written:
                return None, (assigned, over, 0, count)
            # A batch without a unit or description leaves the stored ones (descriptors.py).
            about = {"kind": info.kind, "unit": info.unit, "description": info.description} if info else {}
            about = {k: v for k, v in about.items() if v}
            fields = {
                "name": metric,
                **about,
                "updated": now,
                "bucket_open": open_bucket,
                "bucket_fill": fill,
                "series_count": count + written,
            }
            _put(client, write, metric_doc, state_snap, fields)
            return write, (assigned, over, written + 1, count)

        assigned, over, written, count = _commit_if_unchanged(register)
        registered_at = time.monotonic()
        for sid, bucket in assigned.items():
            known.remember(known.series, sid, (bucket, registered_at))
            batch.buckets[sid] = bucket
        for series in over:
            _drop(
                batch,
                series,
                f"series limit reached: {metric} has {count} series, the limit is {limit} "
                "(ION_METRICS_MAX_SERIES_PER_METRIC)",
            )
        writes += written
    return writes


def _put(client: Any, write: Any, ref: Any, snap: Any, fields: dict[str, Any]) -> None:
    """Write ``fields`` to ``ref`` in ``write`` only if it is still as ``snap`` read it."""
    if snap.exists:
        write.update(ref, fields, option=client.write_option(last_update_time=snap.update_time))
    else:
        write.create(ref, fields)


def _commit_if_unchanged(decide: Callable[[], tuple[Any, T]]) -> T:
    """Optimistic concurrency instead of a read-write transaction: ``decide`` reads, decides and
    returns a write batch guarded by what it read (or None: nothing to write) with its result;
    a batch whose documents changed meanwhile fails and everything is decided again. Transactions
    hold read locks, and concurrent registrations of one metric would wait on each other's
    (the emulator breaks such a deadlock only by a lock timeout)."""
    from google.api_core.exceptions import AlreadyExists, FailedPrecondition, NotFound

    for round_ in range(COMMIT_ROUNDS):
        if round_:
            backoff(round_, base_delay=0.01, max_delay=0.5)
        write, result = decide()
        if write is None:
            return result
        try:
            write.commit()
        except (FailedPrecondition, AlreadyExists, NotFound):
            continue
        return result
    raise Aborted(f"registry still contended after {COMMIT_ROUNDS} rounds; the caller retries")


def _entry(series: SeriesBatch, bucket: int, now: datetime) -> dict[str, Any]:
    return {
        "metric": series.metric,
        "labels": series.labels,
        "kind": series.kind,
        "bucket": bucket,
        "last_seen": now,
        "expire_at": now + SERIES_RETENTION,
    }
