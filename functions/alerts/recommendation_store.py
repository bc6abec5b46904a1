"""The tuning job's recommendations in Firestore, one document per rule and series.

One document held them all (``alert_recommendations/latest``): about 1 KB a series, so a few
hundred series of the threshold rules passed Firestore's 1 MiB limit and every daily run failed
from then on. Now each series' recommendation is its own document
(``alert_recommendations/latest/alert_recommendation_series/{id}``, tagged with its run), and
``latest`` names the run once all of them are written: a reader never sees a run half written,
and a series that stopped reporting is not shown (its document, of an older run, expires).
Knows nothing of HTTP.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

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
            batch.set(ref, {"run": run, "recommendation": recommendation, "expire_at": generated_at + KEEP})
        batch.commit()
    latest.set({"generated_at": run, "run": run, "series": len(recommendations)})


def load_latest() -> dict[str, Any] | None:
    """``{"generated_at", "recommendations"}`` of the latest run, or None before the first."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    from shared.firestore import get_firestore

    latest = get_firestore().collection(RECOMMENDATIONS).document(LATEST)
    snap = latest.get()
    if not snap.exists:
        return None
    head = snap.to_dict() or {}
    run = head.get("run")
    if run is None:  # written whole by a version before this one
        return {"generated_at": head.get("generated_at"), "recommendations": head.get("recommendations", [])}
    found = latest.collection(SERIES).where(filter=FieldFilter("run", "==", run)).stream()
    recommendations = [(doc.to_dict() or {}).get("recommendation") or {} for doc in found]
    recommendations.sort(key=series_order)
    return {"generated_at": head["generated_at"], "recommendations": recommendations}
