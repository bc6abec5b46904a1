"""The tuning job's recommendations in Firestore, one document per rule and series.

One document held them all (``alert_recommendations/latest``): about 1 KB a series, so a few
hundred series of the threshold rules passed Firestore's 1 MiB limit and every daily run failed
from then on. Now each series' recommendation is its own document
(``alert_recommendations/latest/alert_recommendation_series/{id}``, tagged with its run), and
``latest`` names the run once all of them are written: a reader never sees a run half written,
and a series that stopped reporting is not shown (its document, of an older run, expires).

A run has a document per series (1,500 series: ~1.5 MB), so it is read a page at a time, by rule
then labels as before (``rule`` and ``labels_key`` on each document; an index on ``run`` then
those in ``topology.yaml``). A run written before those fields (``ordered`` absent from
``latest``) is paged by series id until the next daily run replaces it. Knows nothing of HTTP.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.paging import UnknownCursor, after_listed

RECOMMENDATIONS = "alert_recommendations"
LATEST = "latest"
SERIES = "alert_recommendation_series"
# Older runs' series documents are deleted by TTL (topology.yaml); a reader uses only the latest.
KEEP = timedelta(days=8)
BATCH = 400


def series_id(recommendation: dict[str, Any]) -> str:
    """A series' document id: its rule and labels (the same id every run)."""
    key = json.dumps([recommendation.get("rule"), recommendation.get("labels") or {}], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def series_order(recommendation: dict[str, Any]) -> tuple[str, str]:
    return str(recommendation.get("rule")), json.dumps(recommendation.get("labels") or {}, sort_keys=True)


@dataclass(frozen=True)
class RecommendationPage:
    generated_at: str | None
    recommendations: list[dict[str, Any]]
    next: str | None  # the last series' id when the page is full, None on the last


def store(generated_at: datetime, recommendations: list[dict[str, Any]]) -> None:
    """Every recommendation of the run, then the run named as the latest."""
    from shared.firestore import get_firestore

    client = get_firestore()
    latest = client.collection(RECOMMENDATIONS).document(LATEST)
    run = generated_at.isoformat()
    for start in range(0, len(recommendations), BATCH):
        batch = client.batch()
        for recommendation in recommendations[start : start + BATCH]:
            ref = latest.collection(SERIES).document(series_id(recommendation))
            rule, labels_key = series_order(recommendation)
            batch.set(
                ref,
                {
                    "run": run,
                    "rule": rule,
                    "labels_key": labels_key,
                    "recommendation": recommendation,
                    "expire_at": generated_at + KEEP,
                },
            )
        batch.commit()
    latest.set({"generated_at": run, "run": run, "series": len(recommendations), "ordered": True})


def load_page(limit: int, after: str | None = None) -> RecommendationPage | None:
    """At most ``limit`` series of the latest run after the series ``after`` (its id), by rule
    then labels; None before the first run."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    from shared.firestore import get_firestore

    latest = get_firestore().collection(RECOMMENDATIONS).document(LATEST)
    snap = latest.get()
    if not snap.exists:
        return None
    head = snap.to_dict() or {}
    run = head.get("run")
    if run is None:  # written whole (under 1 MiB) by a version before the series documents
        return _page_of_whole(head, limit, after)
    series = latest.collection(SERIES)
    query = series.where(filter=FieldFilter("run", "==", run))
    query = query.order_by("rule").order_by("labels_key") if head.get("ordered") else query
    query = query.order_by("__name__")
    if after is not None:
        what = f"series of the latest recommendations ({run})"
        query = after_listed(query, series.document(after), lambda fields: fields.get("run") == run, what)
    docs = list(query.limit(limit).stream())
    found = [(doc.to_dict() or {}).get("recommendation") or {} for doc in docs]
    following = docs[-1].id if len(docs) == limit else None
    return RecommendationPage(head["generated_at"], found, following)


def _page_of_whole(head: dict[str, Any], limit: int, after: str | None) -> RecommendationPage:
    held: list[dict[str, Any]] = head.get("recommendations", [])
    ids = [series_id(r) for r in held]
    start = 0
    if after is not None:
        if after not in ids:
            raise UnknownCursor(f"after={after} is no series of the latest recommendations")
        start = ids.index(after) + 1
    found = held[start : start + limit]
    following = ids[start + limit - 1] if found and len(found) == limit else None
    return RecommendationPage(head.get("generated_at"), found, following)
