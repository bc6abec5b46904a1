"""Report runs in Firestore ``report_runs/<audience>-<period>``: the claim that makes a report
mailed once per period and audience, and the archive of what was mailed.

A run is claimed in a transaction before it is built (``state: sending`` with a token and a
lease); a second caller finds it ``sent`` (nothing to do), or ``sending`` within its lease (409:
another instance is at it). A claim whose lease ran out (the instance died) or that failed may
be taken over. Only the holder of the claim's token may record the outcome. ``?resend=true``
claims a sent run again. The one window left, a crash between the relay accepting the mail and
the outcome being recorded, resends after the lease with the same Message-ID, so clients thread
it as one message.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.firestore import get_firestore, run_transaction
from shared.paging import after_listed

RUNS = "report_runs"
KEEP = timedelta(days=400)


@dataclass
class Claim:
    outcome: Literal["claimed", "sent", "busy"]
    token: str = ""
    resend: int = 0
    existing: dict[str, Any] | None = None


def _ref(run_id: str) -> Any:
    return get_firestore().collection(RUNS).document(run_id)


def claim(run_id: str, *, now: datetime, lease: timedelta, resend: bool, meta: dict[str, Any]) -> Claim:
    from google.cloud import firestore

    ref = _ref(run_id)

    def work(transaction: firestore.Transaction) -> Claim:
        snapshot = ref.get(
            transaction=transaction, field_paths=["state", "lease_until", "resends", "sent_at"]
        )
        doc = snapshot.to_dict() if snapshot.exists else None
        resends = int((doc or {}).get("resends") or 0)
        if doc is not None:
            state = doc.get("state")
            if state == "sent" and not resend:
                return Claim("sent", existing=doc)
            lease_until = doc.get("lease_until")
            if state == "sending" and isinstance(lease_until, datetime) and lease_until > now:
                return Claim("busy", existing=doc)
            if state == "sent":
                resends += 1
        token = secrets.token_hex(12)
        fields = {
            **meta,
            "state": "sending",
            "token": token,
            "claimed_at": now,
            "lease_until": now + lease,
            "resends": resends,
            "expire_at": now + KEEP,
        }
        transaction.set(ref, fields, merge=True)
        return Claim("claimed", token=token, resend=resends)

    return run_transaction(work)


def finish(run_id: str, token: str, fields: dict[str, Any]) -> bool:
    """Record the outcome if the claim is still ours; False if someone took it over."""
    from google.cloud import firestore

    ref = _ref(run_id)

    def work(transaction: firestore.Transaction) -> bool:
        snapshot = ref.get(transaction=transaction, field_paths=["token"])
        if not snapshot.exists or (snapshot.to_dict() or {}).get("token") != token:
            return False
        transaction.update(ref, fields)
        return True

    return run_transaction(work)


SUMMARY_FIELDS = [
    "id",
    "audience",
    "period",
    "state",
    "delivery",
    "recipients",
    "subject",
    "status",
    "sent_at",
    "resends",
    "size_bytes",
    "error",
    "empty",
]


def list_runs(limit: int, audience: str | None = None, after: str | None = None) -> list[dict[str, Any]]:
    """At most ``limit`` runs' summaries, newest claim first (ties by id, newest first), those
    after the run ``after``. Runs are kept 400 days: the query reads the page, never every run
    (a composite index on audience then claimed_at in ``topology.yaml``)."""
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = get_firestore().collection(RUNS)
    if audience:
        query = query.where(filter=FieldFilter("audience", "==", audience))
    query = query.order_by("claimed_at", direction=firestore.Query.DESCENDING)
    if after is not None:

        def listed(fields: dict[str, Any]) -> bool:
            claimed = isinstance(fields.get("claimed_at"), datetime)
            return claimed and (not audience or fields.get("audience") == audience)

        fields = ["claimed_at", "audience"]
        query = after_listed(query, _ref(after), listed, "report run this listing holds", fields)
    docs = query.select([*SUMMARY_FIELDS, "claimed_at"]).limit(limit).stream()
    return [{**(doc.to_dict() or {}), "id": doc.id} for doc in docs]


def get_run(run_id: str) -> dict[str, Any] | None:
    snapshot = _ref(run_id).get()
    return snapshot.to_dict() if snapshot.exists else None


def standalone_html(doc: dict[str, Any]) -> str:
    """An archived report's HTML with the mail's ``cid:`` images inlined, so the page stands alone
    in a browser."""
    import base64

    html: str = doc["html"]
    for cid, png in (doc.get("images") or {}).items():
        html = html.replace(f"cid:{cid}", "data:image/png;base64," + base64.b64encode(png).decode())
    return html
