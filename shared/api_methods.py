"""What a Google API call's permission depends on, read from the request itself: the resource it
acts on and the kind of act (a Firestore commit's creates, updates or deletes; a task's OIDC
account; the tables a BigQuery query reads). gRPC requests (raw protobuf messages) and REST
requests (the API's own paths) give the same records, so both transports are checked alike.
Pure: ``shared/api_call_hooks.py`` reads calls with these, ``shared/api_calls.py`` records them.
"""

from __future__ import annotations

import json
import re
from typing import Any


def service_account_resource(email: str) -> str:
    """IAM's name of a service account, under its project where the address says it."""
    match = re.fullmatch(r"[^@]+@([A-Za-z0-9-]+)\.iam\.gserviceaccount\.com", email)
    return f"projects/{match.group(1) if match else '-'}/serviceAccounts/{email}"


FIRESTORE = "google.firestore.v1.Firestore/"


def database_of(path: str) -> str:
    return "/".join(path.split("/")[:4])


def firestore_write_kind(write: Any) -> str:
    """create (exists: false), update (exists: true or update_time), upsert (no precondition:
    create or update, whichever the document needs), delete, transform (legacy transform write)."""
    operation = write.WhichOneof("operation")
    if operation in ("delete", "transform"):
        return str(operation)
    if write.HasField("current_document"):
        condition = write.current_document
        if condition.WhichOneof("condition_type") == "exists" and not condition.exists:
            return "create"
        return "update"
    return "upsert"


def grpc_calls(method: str, request: Any) -> list[tuple[str, str]]:
    """(resource, detail) records of one gRPC request (a raw protobuf message)."""
    if method.startswith(FIRESTORE):
        name = method[len(FIRESTORE) :]
        path = next(
            (str(getattr(request, f)) for f in ("database", "parent", "name") if _has(request, f)),
            "",
        )
        if not path and _has(request, "document"):
            path = request.document.name
        database = database_of(path)
        if name in ("Commit", "BatchWrite"):
            kinds = sorted({firestore_write_kind(w) for w in request.writes}) or ["empty"]
            return [(database, kind) for kind in kinds]
        # A read that begins a transaction itself needs what BeginTransaction needs.
        options = getattr(request, "new_transaction", None)
        if options is not None and request.HasField("new_transaction"):
            return [(database, ""), (database, "begins-transaction")]
        return [(database, "")]
    if method == "google.cloud.tasks.v2.CloudTasks/CreateTask":
        calls = [(request.parent, "")]
        email = request.task.http_request.oidc_token.service_account_email
        if email:
            calls.append((service_account_resource(email), "oidc-token"))
        return calls
    if method == "google.cloud.run.v2.Services/UpdateService":
        return update_service(request.service.name)
    for field in ("topic", "resource", "name", "parent"):
        if _has(request, field):
            return [(str(getattr(request, field)), "")]
    return [("", "")]


def _has(message: Any, field: str) -> bool:
    try:
        return bool(getattr(message, field))
    except AttributeError:
        return False


def update_service(name: str) -> list[tuple[str, str]]:
    """Updating a Cloud Run service also acts as its runtime account (the check resolves which)."""
    return [(name, ""), (name, "runtime-account")]


def api_of(method: str) -> str:
    package = method.split("/", 1)[0]
    for prefix, api in (
        ("google.firestore.", "firestore.googleapis.com"),
        ("google.pubsub.", "pubsub.googleapis.com"),
        ("google.iam.v1.", "pubsub.googleapis.com"),  # TestIamPermissions here is Pub/Sub's only
        ("google.monitoring.", "monitoring.googleapis.com"),
        ("google.cloud.tasks.", "cloudtasks.googleapis.com"),
        ("google.cloud.run.", "run.googleapis.com"),
        ("google.cloud.scheduler.", "cloudscheduler.googleapis.com"),
        ("google.cloud.recommender.", "recommender.googleapis.com"),
        ("google.longrunning.", "longrunning"),
    ):
        if package.startswith(prefix):
            return api
    return package


# (HTTP method, path pattern, API host, method name). The path is the API's own (the stand-ins
# serve the same paths); GAPIC REST methods take their gRPC name, so both transports record alike.
_SEG = r"[^/]+"
_LOC = rf"projects/{_SEG}/locations/{_SEG}"
_BQ, _RUN, _TASKS = "bigquery.googleapis.com", "run.googleapis.com", "cloudtasks.googleapis.com"
_RUN_V2, _TASKS_V2 = "google.cloud.run.v2.Services/", "google.cloud.tasks.v2.CloudTasks/"
_REST: list[tuple[str, re.Pattern[str], str, str]] = [
    (verb, re.compile(pattern), api, method)
    for verb, pattern, api, method in [
        ("POST", rf"^/bigquery/v2/(projects/{_SEG})/queries$", _BQ, "bigquery.jobs.query"),
        ("GET", rf"^/bigquery/v2/(projects/{_SEG})/queries/{_SEG}$", _BQ, "bigquery.jobs.getQueryResults"),
        ("POST", rf"^/bigquery/v2/(projects/{_SEG})/jobs$", _BQ, "bigquery.jobs.insert"),
        ("GET", rf"^/bigquery/v2/(projects/{_SEG})/jobs/{_SEG}$", _BQ, "bigquery.jobs.get"),
        (
            "GET",
            rf"^/bigquery/v2/(projects/{_SEG}/datasets/{_SEG}/tables/{_SEG})/data$",
            _BQ,
            "bigquery.tabledata.list",
        ),
        ("GET", rf"^/v2/({_LOC}/services/{_SEG})$", _RUN, _RUN_V2 + "GetService"),
        ("PATCH", rf"^/v2/({_LOC}/services/{_SEG})$", _RUN, _RUN_V2 + "UpdateService"),
        ("GET", rf"^/v2/({_LOC}/operations/{_SEG})$", _RUN, "google.longrunning.Operations/GetOperation"),
        ("POST", rf"^/v2/({_LOC}/queues/{_SEG})/tasks$", _TASKS, _TASKS_V2 + "CreateTask"),
        ("GET", rf"^/v2/({_LOC}/queues/{_SEG})$", _TASKS, _TASKS_V2 + "GetQueue"),
        (
            "GET",
            rf"^/v1/({_LOC})/jobs$",
            "cloudscheduler.googleapis.com",
            "google.cloud.scheduler.v1.CloudScheduler/ListJobs",
        ),
        (
            "GET",
            rf"^/v1/((?:projects|billingAccounts|organizations|folders)/{_SEG}/locations/{_SEG}"
            rf"/recommenders/{_SEG})/recommendations$",
            "recommender.googleapis.com",
            "google.cloud.recommender.v1.Recommender/ListRecommendations",
        ),
        (
            "GET",
            rf"^/v3/(projects/{_SEG})/timeSeries$",
            "monitoring.googleapis.com",
            "google.monitoring.v3.MetricService/ListTimeSeries",
        ),
    ]
]

# Our queries name every table in backticks, `project.dataset.table`.
_TABLE = re.compile(r"`([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)\.([A-Za-z0-9_$*-]+)`")


def rest_call(verb: str, url: str, body: Any) -> list[tuple[str, str, str, str]]:
    """(api, method, resource, detail) records of one REST request."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    path = unquote(parts.path)
    for rest_verb, pattern, api, method in _REST:
        match = pattern.match(path) if rest_verb == verb.upper() else None
        if match is None:
            continue
        resource = match.group(1)
        calls = [(api, method, resource, "")]
        payload = json_body(body)
        if method in {"bigquery.jobs.query", "bigquery.jobs.insert"}:
            query = payload.get("query") or payload.get("configuration", {}).get("query", {}).get("query", "")
            calls += [
                (api, method, f"projects/{p}/datasets/{d}/tables/{t}", "reads")
                for p, d, t in sorted(set(_TABLE.findall(str(query))))
            ]
        elif method.endswith("/CreateTask"):
            email = (
                payload.get("task", {}).get("httpRequest", {}).get("oidcToken", {}).get("serviceAccountEmail")
            )
            if email:
                calls.append((api, method, service_account_resource(email), "oidc-token"))
        elif method.endswith("/UpdateService"):
            calls = [(api, method, r, d) for r, d in update_service(resource)]
        return calls
    return [(parts.netloc, f"unknown REST call {verb.upper()} {path}", "", "")]


def json_body(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes | str) and body:
        try:
            loaded = json.loads(body)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}
