"""A local stand-in of the BigQuery REST API (v2) serving one Cloud Billing export table, for
`make run` and the tests, talked to by the real google-cloud-bigquery client.

It answers ``jobs.query`` (``POST /bigquery/v2/projects/P/queries``), ``jobs.insert``,
``jobs.get`` and ``jobs.getQueryResults`` (paged), and checks what it receives as BigQuery
would: a JSON body, standard SQL (``useLegacySql`` false; legacy SQL has no named parameters),
named parameters each typed and referenced in the query, a table that exists (404 ``notFound``
otherwise), and the project in the path. It does not run SQL: it understands the one query shape
the cost capability sends (rows of the export table whose ``usage_start_time`` lies in
``[@since, @until)``) and refuses others with 400 ``invalidQuery``. Rows are served only once
landed (``export_time`` at or before now), as in the real export.

    python -m devtools.bigquery_standin --port 9050 --table P.billing.gcp_billing_export_v1_X \
        [--rows FILE.jsonl | --generate-days 62]
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from devtools import standin_http
from devtools.billing_export import generate
from devtools.standin_http import JsonHandler

DEFAULT_PAGE = 5000

RECORD = "RECORD"
SCHEMA: list[dict[str, Any]] = [
    {"name": "service", "type": RECORD, "mode": "NULLABLE", "fields": [
        {"name": "id", "type": "STRING"}, {"name": "description", "type": "STRING"}]},
    {"name": "sku", "type": RECORD, "mode": "NULLABLE", "fields": [
        {"name": "id", "type": "STRING"}, {"name": "description", "type": "STRING"}]},
    {"name": "usage_start_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
    {"name": "usage_end_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
    {"name": "location", "type": RECORD, "mode": "NULLABLE", "fields": [
        {"name": "location", "type": "STRING"}, {"name": "country", "type": "STRING"},
        {"name": "region", "type": "STRING"}, {"name": "zone", "type": "STRING"}]},
    {"name": "cost", "type": "NUMERIC", "mode": "NULLABLE"},
    {"name": "currency", "type": "STRING", "mode": "NULLABLE"},
    {"name": "credits", "type": RECORD, "mode": "REPEATED", "fields": [
        {"name": "name", "type": "STRING"}, {"name": "amount", "type": "NUMERIC"},
        {"name": "type", "type": "STRING"}]},
    {"name": "invoice", "type": RECORD, "mode": "NULLABLE", "fields": [{"name": "month", "type": "STRING"}]},
    {"name": "labels", "type": RECORD, "mode": "REPEATED", "fields": [
        {"name": "key", "type": "STRING"}, {"name": "value", "type": "STRING"}]},
    {"name": "export_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
]  # fmt: skip


class BigQueryError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def body(self) -> dict[str, Any]:
        status = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 401: "UNAUTHENTICATED"}.get(
            self.status, "UNKNOWN"
        )
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
                "status": status,
            }
        }


def _parse_ts(text: str) -> datetime:
    text = text.strip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _cell(field: dict[str, Any], value: Any, int64_ts: bool) -> Any:
    if field.get("mode") == "REPEATED":
        return [{"v": _cell({**field, "mode": "NULLABLE"}, item, int64_ts)} for item in (value or [])]
    if value is None:
        return None
    kind = field["type"]
    if kind == RECORD:
        return {"f": [{"v": _cell(sub, value.get(sub["name"]), int64_ts)} for sub in field["fields"]]}
    if kind == "TIMESTAMP":
        moment = _parse_ts(value) if isinstance(value, str) else value
        micros = int(moment.timestamp()) * 1_000_000 + moment.microsecond
        return str(micros) if int64_ts else f"{micros / 1e6:.6E}"
    if kind == "NUMERIC":
        # NUMERIC has 9 decimal digits; the export's FLOAT64 cast keeps the float's shortest form.
        return format(Decimal(str(value)).quantize(Decimal("1e-9")).normalize(), "f")
    return str(value)


class Table:
    def __init__(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.name = name
        self.rows = sorted(rows, key=lambda r: str(r["usage_start_time"]))

    def select(self, since: datetime, until: datetime, now: datetime) -> list[dict[str, Any]]:
        out = []
        for row in self.rows:
            start = _parse_ts(str(row["usage_start_time"]))
            landed = row.get("export_time") is None or _parse_ts(str(row["export_time"])) <= now
            if since <= start < until and landed:
                out.append(row)
        return out


class StandIn:
    """The server's state: the table, finished jobs' results, and every request seen."""

    def __init__(self, project: str, table: Table, *, clock: Any = None) -> None:
        self.project = project
        self.table = table
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.Lock()

    def run_query(self, config: dict[str, Any], project: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if project != self.project:
            raise BigQueryError(
                403,
                "accessDenied",
                f"Access Denied: Project {project}: User does not have bigquery.jobs.create",
            )
        sql = config.get("query")
        if not isinstance(sql, str) or not sql.strip():
            raise BigQueryError(400, "invalid", "Required parameter is missing: query")
        if config.get("useLegacySql", True) is not False:
            raise BigQueryError(400, "invalidQuery", "Query parameters cannot be used in legacy SQL queries.")
        if config.get("parameterMode", "NAMED") != "NAMED":
            raise BigQueryError(400, "invalidQuery", "Positional parameters are not supported by this query.")
        tables = re.findall(r"FROM\s+`([^`]+)`", sql)
        if not tables:
            raise BigQueryError(400, "invalidQuery", "Syntax error: no table in FROM (name it in backquotes)")
        for name in tables:
            if name != self.table.name:
                raise BigQueryError(404, "notFound", f"Not found: Table {name} was not found in location US")
        params: dict[str, datetime] = {}
        for param in config.get("queryParameters", []):
            name = param.get("name")
            kind = (param.get("parameterType") or {}).get("type")
            value = (param.get("parameterValue") or {}).get("value")
            if not name or kind is None or value is None:
                raise BigQueryError(
                    400, "invalid", f"Invalid query parameter {param!r}: name, type and value needed"
                )
            if f"@{name}" not in sql:
                raise BigQueryError(400, "invalidQuery", f"Query parameter '{name}' is not used in the query")
            if kind != "TIMESTAMP":
                raise BigQueryError(
                    400, "invalidQuery", f"Query parameter '{name}' has type {kind}; TIMESTAMP expected"
                )
            try:
                params[name] = _parse_ts(value)
            except ValueError:
                raise BigQueryError(
                    400, "invalidQuery", f"Invalid TIMESTAMP literal for '{name}': {value}"
                ) from None
        for used in set(re.findall(r"@(\w+)", sql)):
            if used not in params:
                raise BigQueryError(400, "invalidQuery", f"Query parameter '{used}' not found")
        if set(params) != {"since", "until"} or "usage_start_time >= @since" not in sql:
            raise BigQueryError(
                400, "invalidQuery", "this stand-in answers the cost capability's export query only"
            )
        rows = self.table.select(params["since"], params["until"], self.clock())
        return rows, params

    def new_job(self, project: str, config: dict[str, Any], job_id: str | None, location: str | None) -> dict:
        rows, _ = self.run_query(config, project)
        job_id = job_id or f"job_{uuid.uuid4().hex}"
        job = {
            "kind": "bigquery#job",
            "id": f"{project}:{location or 'US'}.{job_id}",
            "jobReference": {"projectId": project, "jobId": job_id, "location": location or "US"},
            "configuration": {"query": config, "jobType": "QUERY"},
            "status": {"state": "DONE"},
            "statistics": {"query": {"totalBytesProcessed": str(len(rows) * 400), "statementType": "SELECT"}},
            "_rows": rows,
        }
        with self.lock:
            self.jobs[job_id] = job
        return job


def page(job: dict[str, Any], token: str | None, size: int | None, int64_ts: bool) -> dict[str, Any]:
    rows = job["_rows"]
    start = int(token or 0)
    size = size or DEFAULT_PAGE
    chunk = rows[start : start + size]
    body: dict[str, Any] = {
        "kind": "bigquery#getQueryResultsResponse",
        "jobReference": job["jobReference"],
        "jobComplete": True,
        "schema": {"fields": SCHEMA},
        "totalRows": str(len(rows)),
        "rows": [{"f": [{"v": _cell(f, row.get(f["name"]), int64_ts)} for f in SCHEMA]} for row in chunk],
        "cacheHit": False,
    }
    if start + size < len(rows):
        body["pageToken"] = str(start + size)
    return body


class Handler(JsonHandler):
    def _json(self) -> dict[str, Any]:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            raise BigQueryError(400, "invalid", "Content-Type must be application/json")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise BigQueryError(400, "parseError", "Parse Error: the body is not JSON") from None
        if not isinstance(body, dict):
            raise BigQueryError(400, "invalid", "The body must be a JSON object")
        return body

    def _route(self, method: str) -> None:
        standin: StandIn = self.server.standin
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        int64_ts = query.get("formatOptions.useInt64Timestamp", "false").lower() == "true"
        try:
            match = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/(queries|jobs)(?:/([^/]+))?", url.path)
            if not match:
                raise BigQueryError(404, "notFound", f"Not found: {url.path}")
            project, kind, job_id = match.groups()
            with standin.lock:
                standin.requests.append({"method": method, "path": url.path, "query": query})
            if method == "POST" and kind == "queries" and job_id is None:
                body = self._json()
                with standin.lock:
                    standin.requests[-1]["body"] = body
                config = {
                    k: body[k]
                    for k in ("query", "useLegacySql", "parameterMode", "queryParameters")
                    if k in body
                }
                job = standin.new_job(project, config, None, body.get("location"))
                int64 = bool((body.get("formatOptions") or {}).get("useInt64Timestamp"))
                answer = page(job, None, body.get("maxResults"), int64)
                answer["kind"] = "bigquery#queryResponse"
                answer["queryId"] = job["jobReference"]["jobId"]
                self.send_json(200, answer)
            elif method == "POST" and kind == "jobs" and job_id is None:
                body = self._json()
                with standin.lock:
                    standin.requests[-1]["body"] = body
                config = (body.get("configuration") or {}).get("query")
                if not isinstance(config, dict):
                    raise BigQueryError(400, "invalid", "Required parameter is missing: configuration.query")
                ref = body.get("jobReference") or {}
                job = standin.new_job(project, config, ref.get("jobId"), ref.get("location"))
                self.send_json(200, {k: v for k, v in job.items() if not k.startswith("_")})
            elif method == "GET" and job_id is not None:
                job = standin.jobs.get(job_id)
                if job is None:
                    raise BigQueryError(404, "notFound", f"Not found: Job {project}:{job_id}")
                if kind == "jobs":
                    self.send_json(200, {k: v for k, v in job.items() if not k.startswith("_")})
                else:
                    size = int(query["maxResults"]) if "maxResults" in query else None
                    self.send_json(200, page(job, query.get("pageToken"), size, int64_ts))
            else:
                raise BigQueryError(405, "notImplemented", f"{method} {url.path} is not served here")
        except BigQueryError as exc:
            self.send_json(exc.status, exc.body())

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")


def serve(standin: StandIn, port: int) -> ThreadingHTTPServer:
    return standin_http.serve(Handler, port, standin=standin)


def load_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--table", required=True, help="project.dataset.table")
    parser.add_argument("--rows", type=Path, help="JSON-lines export rows to serve")
    parser.add_argument(
        "--generate-days", type=int, default=62, help="else: generate this many days to today"
    )
    args = parser.parse_args(argv)
    if args.rows:
        rows = load_rows(args.rows)
    else:
        today = datetime.now(UTC).date()
        rows = generate(today - timedelta(days=args.generate_days), today).rows
    standin = StandIn(args.table.split(".", 1)[0], Table(args.table, rows))
    banner = f"bigquery stand-in serving {args.table} ({len(rows)} rows) on 127.0.0.1:{args.port}"
    return standin_http.serve_until_interrupted(Handler, args.port, banner, standin=standin)


if __name__ == "__main__":
    raise SystemExit(main())
