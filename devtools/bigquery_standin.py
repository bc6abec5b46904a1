"""A local stand-in of the BigQuery REST API (v2) serving one Cloud Billing export table, for
`make run` and the tests, talked to by the real google-cloud-bigquery client.

It answers ``jobs.query`` (``POST /bigquery/v2/projects/P/queries``), ``jobs.insert``,
``jobs.get`` and ``jobs.getQueryResults`` (paged), and checks what it receives as BigQuery
would: a JSON body, standard SQL (``useLegacySql`` false; legacy SQL has no named parameters),
named parameters each typed as the query uses them (``@since``/``@until`` TIMESTAMP,
``@projects`` ARRAY<STRING>, ``@tz`` STRING naming a time zone, ``@invoice_month`` STRING) and
referenced in the query, a table that exists (404 ``notFound`` otherwise), and the project in the
path. It refuses a query without the ``project.id IN UNNEST(@projects)`` filter (a billing
account's export holds every project it pays for; ``allow_unfiltered`` serves it and records a
flag instead, for the bench's "before").

It is not a SQL engine, but it evaluates the cost capability's query as BigQuery would from a
vocabulary of the export's expressions (``DATE(usage_start_time, @tz)``, ``invoice.month``,
``cost_type``, ``service.description``, ``SUM(CAST(cost AS NUMERIC))``, the credits' correlated
``SUM`` over ``UNNEST(credits)``, ``COUNT(*)``, ``MAX(export_time)``, ...): the WHERE clause's
project, time window and invoice-month filters, GROUP BY (every non-aggregated column of the
SELECT list must be grouped, by alias or expression, or the query is refused as BigQuery refuses
it), NULL keys as groups of their own, SUM ignoring NULLs, NUMERIC sums of values rounded to 9
decimals, ORDER BY. An expression outside the vocabulary is refused with 400 ``invalidQuery``.
The raw-row query (no GROUP BY) is still served, for the bench's comparison. Rows are served only
once landed (``export_time`` at or before now), as in the real export.

    python -m devtools.bigquery_standin --port 9050 --table P.billing.gcp_billing_export_v1_X \
        [--rows FILE.jsonl | --generate-days 62]
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

from devtools import standin_http
from devtools.billing_export import generate
from devtools.standin_http import JsonHandler
from shared.clock import iana_time_zone

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
        return format(_numeric(value), "f")
    if kind == "DATE":
        return value.isoformat()
    return str(value)


def _numeric(value: Any) -> Decimal:
    """CAST(x AS NUMERIC): 9 decimal digits."""
    return Decimal(str(value)).quantize(Decimal("1e-9")).normalize()


# --- the query vocabulary -----------------------------------------------------------------------

Row = dict[str, Any]
Params = dict[str, Any]


def _record(row: Row, name: str) -> dict[str, Any]:
    return row.get(name) or {}


def _credit_sum(row: Row) -> Decimal:
    # (SELECT SUM(CAST(c.amount AS NUMERIC)) FROM UNNEST(credits) AS c): NULL without credits,
    # then IFNULL(..., 0).
    amounts = [_numeric(c["amount"]) for c in row.get("credits") or [] if c.get("amount") is not None]
    return sum(amounts, Decimal(0))


SCALARS: dict[str, tuple[str, Callable[[Row, Params], Any]]] = {
    "DATE(usage_start_time, @tz)": (
        "DATE",
        lambda r, p: _parse_ts(str(r["usage_start_time"])).astimezone(ZoneInfo(p["tz"])).date(),
    ),
    "invoice.month": ("STRING", lambda r, p: _record(r, "invoice").get("month")),
    "cost_type": ("STRING", lambda r, p: r.get("cost_type")),
    "service.description": ("STRING", lambda r, p: _record(r, "service").get("description")),
    "sku.description": ("STRING", lambda r, p: _record(r, "sku").get("description")),
    "location.region": ("STRING", lambda r, p: _record(r, "location").get("region")),
    "COALESCE(location.region, location.location, 'global')": (
        "STRING",
        lambda r, p: (
            _record(r, "location").get("region") or _record(r, "location").get("location") or "global"
        ),
    ),
    "currency": ("STRING", lambda r, p: r.get("currency")),
    "project.id": ("STRING", lambda r, p: _record(r, "project").get("id")),
}


def _sum_numeric(values: list[Any]) -> Decimal | None:
    present = [_numeric(v) for v in values if v is not None]
    return sum(present, Decimal(0)) if present else None  # SUM over only NULLs is NULL


AGGREGATES: dict[str, tuple[str, Callable[[list[Row]], Any]]] = {
    "SUM(CAST(cost AS NUMERIC))": ("NUMERIC", lambda rows: _sum_numeric([r.get("cost") for r in rows])),
    "SUM(IFNULL((SELECT SUM(CAST(c.amount AS NUMERIC)) FROM UNNEST(credits) AS c), 0))": (
        "NUMERIC",
        lambda rows: _sum_numeric([_credit_sum(r) for r in rows]),
    ),
    "COUNT(*)": ("INTEGER", len),
    "MAX(export_time)": (
        "TIMESTAMP",
        lambda rows: max(
            (_parse_ts(str(r["export_time"])) for r in rows if r.get("export_time")), default=None
        ),
    ),
}

# The type each named parameter must have where the query uses it.
PARAMETER_TYPES = {
    "since": "TIMESTAMP",
    "until": "TIMESTAMP",
    "projects": "ARRAY<STRING>",
    "tz": "STRING",
    "invoice_month": "STRING",
}
PROJECT_FILTER = "project.id IN UNNEST(@projects)"
WINDOW = "usage_start_time >= @since AND usage_start_time < @until"
INVOICE_MONTH = "OR invoice.month = @invoice_month"


def _split_top(text: str) -> list[str]:
    """Comma-separated items at parenthesis depth 0."""
    items, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if "".join(current).strip():
        items.append("".join(current).strip())
    return items


def _between(sql: str, start: str, *ends: str) -> str | None:
    found = re.search(rf"\b{start}\b", sql)
    if not found:
        return None
    rest = sql[found.end() :]
    cut = min((m.start() for end in ends if (m := re.search(rf"\b{end}\b", rest))), default=len(rest))
    return rest[:cut].strip()


def _param_type(param: dict[str, Any]) -> str:
    kind = (param.get("parameterType") or {}).get("type")
    if kind == "ARRAY":
        return f"ARRAY<{((param.get('parameterType') or {}).get('arrayType') or {}).get('type')}>"
    return str(kind)


class Table:
    def __init__(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.name = name
        self.rows = sorted(rows, key=lambda r: str(r["usage_start_time"]))

    def select(
        self,
        since: datetime,
        until: datetime,
        now: datetime,
        projects: set[str] | None = None,
        invoice_month: str | None = None,
    ) -> list[dict[str, Any]]:
        """Landed rows of ``projects`` (None: all) in ``[since, until)`` or billed in
        ``invoice_month`` (YYYYMM) when given."""
        out = []
        for row in self.rows:
            if projects is not None and _record(row, "project").get("id") not in projects:
                continue
            start = _parse_ts(str(row["usage_start_time"]))
            landed = row.get("export_time") is None or _parse_ts(str(row["export_time"])) <= now
            billed = invoice_month is not None and _record(row, "invoice").get("month") == invoice_month
            if (since <= start < until or billed) and landed:
                out.append(row)
        return out


class StandIn:
    """The server's state: the table, finished jobs' results, and every request seen."""

    def __init__(
        self, project: str, table: Table, *, clock: Any = None, allow_unfiltered: bool = False
    ) -> None:
        self.project = project
        self.table = table
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        # A query without the project filter is refused, unless allowed (the bench's "before"):
        # then served, and flagged here.
        self.allow_unfiltered = allow_unfiltered
        self.flags: list[str] = []
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.Lock()

    def run_query(
        self, config: dict[str, Any], project: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The rows the query answers and their schema."""
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
        sql = " ".join(sql.split())
        tables = re.findall(r"FROM\s+`([^`]+)`", sql)
        if not tables:
            raise BigQueryError(400, "invalidQuery", "Syntax error: no table in FROM (name it in backquotes)")
        for name in tables:
            if name != self.table.name:
                raise BigQueryError(404, "notFound", f"Not found: Table {name} was not found in location US")
        params = self._parameters(config.get("queryParameters", []), sql)
        where = _between(sql, "WHERE", "GROUP BY", "ORDER BY") or ""
        if WINDOW not in where or not {"since", "until"} <= set(params):
            raise BigQueryError(
                400, "invalidQuery", "this stand-in answers the cost capability's export queries only"
            )
        if PROJECT_FILTER not in where:
            message = (
                "the query has no project filter (project.id IN UNNEST(@projects)): a billing account's "
                "export holds every project it pays for"
            )
            if not self.allow_unfiltered:
                raise BigQueryError(400, "invalidQuery", f"stand-in refuses: {message}")
            self.flags.append(message)
        month = params.get("invoice_month") if INVOICE_MONTH in where else None
        projects = set(params["projects"]) if PROJECT_FILTER in where else None
        rows = self.table.select(params["since"], params["until"], self.clock(), projects, month)
        if _between(sql, "GROUP BY", "ORDER BY") is None:
            return rows, SCHEMA
        return self._aggregate(sql, rows, params)

    def _parameters(self, given: list[dict[str, Any]], sql: str) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for param in given:
            name = param.get("name")
            value = param.get("parameterValue") or {}
            if not name or not param.get("parameterType") or not value:
                raise BigQueryError(
                    400, "invalid", f"Invalid query parameter {param!r}: name, type and value needed"
                )
            if f"@{name}" not in sql:
                raise BigQueryError(400, "invalidQuery", f"Query parameter '{name}' is not used in the query")
            kind = _param_type(param)
            expected = PARAMETER_TYPES.get(name)
            if expected is None:
                raise BigQueryError(400, "invalidQuery", f"this stand-in does not know parameter @{name}")
            if kind != expected:
                raise BigQueryError(
                    400,
                    "invalidQuery",
                    f"Query parameter '{name}' has type {kind} where the query needs {expected}",
                )
            if kind == "TIMESTAMP":
                try:
                    params[name] = _parse_ts(value.get("value"))
                except (TypeError, ValueError):
                    raise BigQueryError(
                        400, "invalidQuery", f"Invalid TIMESTAMP literal for '{name}': {value}"
                    ) from None
            elif kind.startswith("ARRAY"):
                params[name] = [item.get("value") for item in value.get("arrayValues") or []]
            else:
                params[name] = value.get("value")
        if "tz" in params:
            try:
                iana_time_zone(str(params["tz"]))
            except ValueError:
                raise BigQueryError(400, "invalidQuery", f"Invalid time zone: {params['tz']}") from None
        for used in set(re.findall(r"@(\w+)", sql)):
            if used not in params:
                raise BigQueryError(400, "invalidQuery", f"Query parameter '{used}' not found")
        return params

    def _aggregate(
        self, sql: str, rows: list[dict[str, Any]], params: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        # The SELECT list runs to the table's FROM (the credits' subquery has a FROM of its own).
        select = sql[sql.index("SELECT") + len("SELECT") : sql.index("FROM `")].strip()
        items = []
        for item in _split_top(select):
            found = re.fullmatch(r"(.+?) AS (\w+)", item)
            expression, alias = (found.group(1), found.group(2)) if found else (item, item.split(".")[-1])
            if expression in SCALARS:
                items.append((alias, expression, False))
            elif expression in AGGREGATES:
                items.append((alias, expression, True))
            else:
                raise BigQueryError(400, "invalidQuery", f"this stand-in does not evaluate `{expression}`")
        by_alias = {alias: expression for alias, expression, _ in items}
        grouped = set()
        for key in _split_top(_between(sql, "GROUP BY", "ORDER BY") or ""):
            expression = by_alias.get(key, key)
            if expression in AGGREGATES:
                raise BigQueryError(400, "invalidQuery", f"Aggregate function not allowed in GROUP BY: {key}")
            if expression not in SCALARS:
                raise BigQueryError(400, "invalidQuery", f"Unrecognized name: {key}")
            grouped.add(expression)
        for _alias, expression, aggregated in items:
            if not aggregated and expression not in grouped:
                raise BigQueryError(
                    400,
                    "invalidQuery",
                    f"SELECT list expression references column {expression} which is neither grouped "
                    "nor aggregated",
                )
        keys = sorted(grouped)
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(SCALARS[k][1](row, params) for k in keys), []).append(row)
        out = []
        for key, members in groups.items():
            values = dict(zip(keys, key, strict=True))
            out.append(
                {
                    alias: AGGREGATES[expression][1](members) if aggregated else values[expression]
                    for alias, expression, aggregated in items
                }
            )
        order = [k.split()[0] for k in _split_top(_between(sql, "ORDER BY") or "")]
        # NULLs first in ascending order, as BigQuery sorts.
        out.sort(key=lambda r: tuple((r.get(k) is not None, r.get(k) or "") for k in order))
        schema = [
            {
                "name": alias,
                "type": (AGGREGATES if aggregated else SCALARS)[expression][0],
                "mode": "NULLABLE",
            }
            for alias, expression, aggregated in items
        ]
        return out, schema

    def new_job(self, project: str, config: dict[str, Any], job_id: str | None, location: str | None) -> dict:
        rows, schema = self.run_query(config, project)
        job_id = job_id or f"job_{uuid.uuid4().hex}"
        job = {
            "kind": "bigquery#job",
            "id": f"{project}:{location or 'US'}.{job_id}",
            "jobReference": {"projectId": project, "jobId": job_id, "location": location or "US"},
            "configuration": {"query": config, "jobType": "QUERY"},
            "status": {"state": "DONE"},
            "statistics": {"query": {"totalBytesProcessed": str(len(rows) * 400), "statementType": "SELECT"}},
            "_rows": rows,
            "_schema": schema,
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
        "schema": {"fields": job["_schema"]},
        "totalRows": str(len(rows)),
        "rows": [
            {"f": [{"v": _cell(f, row.get(f["name"]), int64_ts)} for f in job["_schema"]]} for row in chunk
        ],
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
        "--allow-unfiltered",
        action="store_true",
        help="serve (and flag) a query without the project filter: bench/cost.py's 'before' only",
    )
    parser.add_argument(
        "--generate-days", type=int, default=62, help="else: generate this many days to today"
    )
    args = parser.parse_args(argv)
    if args.rows:
        rows = load_rows(args.rows)
    else:
        today = datetime.now(UTC).date()
        # As a real account: other projects, tax, adjustments and rounding beside the usage.
        rows = generate(today - timedelta(days=args.generate_days), today, others=True, charges=True).rows
    standin = StandIn(
        args.table.split(".", 1)[0], Table(args.table, rows), allow_unfiltered=args.allow_unfiltered
    )
    banner = f"bigquery stand-in serving {args.table} ({len(rows)} rows) on 127.0.0.1:{args.port}"
    return standin_http.serve_until_interrupted(Handler, args.port, banner, standin=standin)


if __name__ == "__main__":
    raise SystemExit(main())
