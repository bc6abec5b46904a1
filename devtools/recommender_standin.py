"""A local stand-in of the Recommender API (v1, REST) for `make run` and the tests, talked to by
the real google-cloud-recommender client (REST transport).

It answers ``recommendations.list`` (``GET /v1/{parent}/recommendations``) for project and billing
account parents, and checks what it receives as the API would: the parent's shape
(``projects/P/locations/L/recommenders/R`` or ``billingAccounts/B/locations/global/...``), a
known recommender id (404 otherwise), a location the recommender serves, a well-formed ``filter``
and paging. Recommendations carry cost projections as the API writes them (negative ``units`` and
``nanos`` for a saving over ``duration``).

    python -m devtools.recommender_standin --port 9060 --project P
"""

from __future__ import annotations

import argparse
import json
import re
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from devtools import standin_http
from devtools.standin_http import JsonHandler

KNOWN = {
    "google.run.service.CostRecommender": "project",
    "google.cloudsql.instance.IdleRecommender": "project",
    "google.cloudsql.instance.OverprovisionedRecommender": "project",
    "google.compute.commitment.UsageCommitmentRecommender": "project",
    "google.cloudbilling.commitment.SpendBasedCommitmentRecommender": "billing",
}
# Enum numbers, for clients asking ``$alt=json;enum-encoding=int`` (the Python client does).
ENUMS = {
    "state": {"ACTIVE": 1, "CLAIMED": 6, "SUCCEEDED": 3, "FAILED": 4, "DISMISSED": 5},
    "priority": {"P4": 1, "P3": 2, "P2": 3, "P1": 4},
    "category": {"COST": 1, "SECURITY": 2, "PERFORMANCE": 3, "MANAGEABILITY": 4},
}
FILTER = re.compile(r"^\s*(stateInfo\.state\s*=\s*(ACTIVE|CLAIMED|SUCCEEDED|FAILED|DISMISSED)\s*)?$")


def recommendation(parent: str, rec_id: str, description: str, subtype: str, monthly: float,
                   *, state: str = "ACTIVE", priority: str = "P2") -> dict[str, Any]:  # fmt: skip
    units = -int(monthly)
    nanos = -round((monthly - int(monthly)) * 1e9)
    return {
        "name": f"{parent}/recommendations/{rec_id}",
        "description": description,
        "recommenderSubtype": subtype,
        "lastRefreshTime": "2026-11-29T06:00:00Z",
        "primaryImpact": {
            "category": "COST",
            "costProjection": {
                "cost": {"currencyCode": "USD", "units": str(units), "nanos": nanos},
                "duration": "2592000s",
            },
        },
        "priority": priority,
        "stateInfo": {"state": state},
        "etag": f'"{rec_id}"',
    }


def sample(project: str, billing_account: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """A plausible set for ION: an overprovisioned database, min instances, a commitment."""
    base = f"projects/{project}/locations"
    run = f"{base}/us-central1/recommenders/google.run.service.CostRecommender"
    sql = f"{base}/us-central1/recommenders/google.cloudsql.instance.OverprovisionedRecommender"
    idle = f"{base}/europe-west1/recommenders/google.cloudsql.instance.IdleRecommender"
    out = {
        run: [
            recommendation(
                run, "r1", "Switch service ion-route to CPU always allocated", "CHANGE_CPU_ALLOCATION", 41.6
            )
        ],
        sql: [
            recommendation(sql, "s1", "Resize ion-main from 16 to 8 vCPUs", "DOWNSIZE", 100.0, priority="P1"),
            recommendation(sql, "s2", "Dismissed earlier", "DOWNSIZE", 55.0, state="DISMISSED"),
        ],
        idle: [recommendation(idle, "i1", "Stop idle instance ion-reporting-replica", "STOP", 63.25)],
    }
    if billing_account:
        cud = (
            f"billingAccounts/{billing_account}/locations/global/recommenders/"
            "google.cloudbilling.commitment.SpendBasedCommitmentRecommender"
        )
        out[cud] = [
            recommendation(cud, "c1", "Buy a 1-year Cloud SQL spend-based commitment", "SPEND_BASED", 88.8)
        ]
    return out


class Handler(JsonHandler):
    def _error(self, status: int, message: str) -> None:
        code = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "UNIMPLEMENTED"}[status]
        self.send_json(status, {"error": {"code": status, "message": message, "status": code}})

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.server.requests.append({"path": url.path, "query": query})
        match = re.fullmatch(
            r"/v1/((?:projects|billingAccounts)/([^/]+)/locations/([^/]+)/recommenders/([^/]+))/recommendations",
            url.path,
        )
        if not match:
            self._error(404, f"Requested entity was not found: {url.path}")
            return
        parent, _owner, location, recommender = match.groups()
        kind = KNOWN.get(recommender)
        if kind is None:
            self._error(404, f"Recommender {recommender} does not exist.")
            return
        if (kind == "billing") != parent.startswith("billingAccounts/"):
            self._error(400, f"Recommender {recommender} is not available for parent {parent}.")
            return
        if kind == "billing" and location != "global":
            self._error(400, f"Location {location} is not supported by {recommender}; use global.")
            return
        if not FILTER.match(query.get("filter", "")):
            self._error(400, f"Invalid filter: {query['filter']!r}")
            return
        items = list(self.server.data.get(parent, []))
        wanted = FILTER.match(query.get("filter", "")).group(2)  # type: ignore[union-attr]
        if wanted:
            items = [r for r in items if r["stateInfo"]["state"] == wanted]
        size = int(query.get("pageSize") or 50)
        start = int(query.get("pageToken") or 0)
        page = items[start : start + size]
        if "enum-encoding=int" in query.get("$alt", ""):
            page = [_int_enums(r) for r in page]
        body: dict[str, Any] = {"recommendations": page}
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        self.send_json(200, body)

    def do_POST(self) -> None:
        self._error(405, "only recommendations.list is served here")


def _int_enums(rec: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(rec))
    out["stateInfo"]["state"] = ENUMS["state"][out["stateInfo"]["state"]]
    out["priority"] = ENUMS["priority"][out["priority"]]
    out["primaryImpact"]["category"] = ENUMS["category"][out["primaryImpact"]["category"]]
    return out


def serve(data: dict[str, list[dict[str, Any]]], port: int) -> ThreadingHTTPServer:
    return standin_http.serve(Handler, port, data=data, requests=[])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--billing-account")
    args = parser.parse_args(argv)
    banner = f"recommender stand-in for {args.project} on 127.0.0.1:{args.port}"
    data = sample(args.project, args.billing_account)
    return standin_http.serve_until_interrupted(Handler, args.port, banner, data=data, requests=[])


if __name__ == "__main__":
    raise SystemExit(main())
