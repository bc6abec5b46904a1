"""Where cost lines come from: one small interface, a plug-in per source.

- :class:`BigQueryBillingSource`: the Cloud Billing export table, through google-cloud-bigquery
  (``query_and_wait``, named parameters). The query keeps only the configured projects (a billing
  account pays for other projects too), aggregates in SQL per usage day in the billing account's
  time zone, invoice month, cost type, service, SKU, region and currency (the function reads a few
  thousand lines, not the export's millions of rows), and casts costs to NUMERIC so they arrive
  as exact decimals. ``ION_COST_BIGQUERY_ENDPOINT`` points the real client at a local stand-in.
- :class:`FileBillingSource`: a JSON-lines export file (a labelled local fallback), aggregated in
  Python by the same keys.
- :class:`MemoryBillingSource`: raw rows in memory (tests, replay), aggregated the same way.

Every source answers :class:`~functions.cost.cost_lines.Parsed`: the lines, and the ones set aside
with why (a line that does not parse is reported, never summed, and never stops the run).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from functions.cost.billing import BillingRow, parse_rows, read_jsonl_rows
from functions.cost.cost_lines import Parsed, aggregate, parse_lines
from functions.cost.ledger import day_end, day_start

# One line per (usage day, invoice month, cost type, service, SKU, region, currency).
# - the day is the usage day in the billing account's zone (@tz), as invoices and Budgets count;
# - `invoice.month = @invoice_month` also brings corrections billed this month for older usage;
# - costs and credit amounts as NUMERIC: the export stores FLOAT64, and NUMERIC sums come back as
#   exact decimal strings, so no binary rounding enters our totals;
# - aliases differ from the export's column names so GROUP BY cannot bind to a column instead;
# - `_PARTITIONTIME` (export time) bounds the partitions scanned: nothing of the window or of
#   this invoice month was exported before the window's first day.
EXPORT_QUERY = """
SELECT
  DATE(usage_start_time, @tz) AS usage_day,
  invoice.month AS invoice_month,
  cost_type,
  service.description AS service_name,
  sku.description AS sku_name,
  COALESCE(location.region, location.location, 'global') AS region_name,
  currency,
  SUM(CAST(cost AS NUMERIC)) AS cost_sum,
  SUM(IFNULL((SELECT SUM(CAST(c.amount AS NUMERIC)) FROM UNNEST(credits) AS c), 0)) AS credit_sum,
  COUNT(*) AS source_rows,
  MAX(export_time) AS last_export
FROM `{table}`
WHERE project.id IN UNNEST(@projects)
  AND _PARTITIONTIME >= TIMESTAMP_SUB(@since, INTERVAL 1 DAY)
  AND ((usage_start_time >= @since AND usage_start_time < @until) OR invoice.month = @invoice_month)
GROUP BY usage_day, invoice_month, cost_type, service_name, sku_name, region_name, currency
ORDER BY usage_day, service_name, sku_name
"""

# Query column -> CostLine field.
COLUMNS = {
    "usage_day": "usage_day",
    "invoice_month": "invoice_month",
    "cost_type": "cost_type",
    "service_name": "service",
    "sku_name": "sku",
    "region_name": "region",
    "currency": "currency",
    "cost_sum": "cost",
    "credit_sum": "credits",
    "source_rows": "rows",
    "last_export": "last_export",
}


class NoProjects(ValueError):
    """The export source has no project to read: every project of the account would be summed."""


class BillingSource(Protocol):
    name: str
    fallback: bool

    def lines(self, first: date, last: date, *, month: str, zone: ZoneInfo) -> Parsed:
        """Lines of usage days ``first``..``last`` in ``zone``, and every line billed in invoice
        month ``month`` (YYYY-MM); the ones that do not parse set aside in ``rejected``."""
        ...


def _window(parsed: Parsed, first: date, last: date, month: str) -> Parsed:
    parsed.lines = [line for line in parsed.lines if first <= line.usage_day <= last or line.month == month]
    return parsed


class MemoryBillingSource:
    name = "memory"
    fallback = False

    def __init__(self, rows: list[BillingRow], *, projects: Iterable[str] | None = None) -> None:
        self._rows = rows
        self.projects = None if projects is None else list(projects)

    def lines(self, first: date, last: date, *, month: str, zone: ZoneInfo) -> Parsed:
        parsed = Parsed(lines=aggregate(self._rows, zone, self.projects), read=len(self._rows))
        return _window(parsed, first, last, month)


class FileBillingSource:
    """A JSON-lines export re-read at every run (so a file that grows shows late rows)."""

    name = "file (local fallback)"
    fallback = True

    def __init__(self, path: str, *, projects: Iterable[str] | None = None) -> None:
        self.path = path
        self.projects = None if projects is None else list(projects)

    def lines(self, first: date, last: date, *, month: str, zone: ZoneInfo) -> Parsed:
        rows, rejected, read = read_jsonl_rows(self.path)
        parsed = Parsed(lines=aggregate(rows, zone, self.projects), rejected=rejected, read=read)
        return _window(parsed, first, last, month)


class BigQueryBillingSource:
    name = "bigquery"
    fallback = False

    def __init__(
        self,
        table: str,
        *,
        projects: Iterable[str] = (),
        client: Any = None,
        endpoint: str | None = None,
        location: str | None = None,
        job_project: str | None = None,
    ):
        self.table = table
        self.projects = list(projects)
        # The project the query job runs (and is billed) in: where this function may create jobs,
        # not necessarily the export's project (a billing account's export often lives apart).
        self.job_project = job_project or table.split(".", 1)[0]
        self.endpoint = endpoint
        self.location = location
        self._client = client
        self.last_job: dict[str, Any] = {}

    def client(self) -> Any:
        if self._client is None:
            from google.cloud import bigquery

            project = self.job_project
            if self.endpoint:
                from google.api_core.client_options import ClientOptions
                from google.auth.credentials import AnonymousCredentials

                self._client = bigquery.Client(
                    project=project,
                    credentials=AnonymousCredentials(),
                    client_options=ClientOptions(api_endpoint=self.endpoint),
                )
            else:
                self._client = bigquery.Client(project=project)
        return self._client

    def parameters(self, first: date, last: date, month: str, zone: ZoneInfo) -> list[Any]:
        from google.cloud import bigquery

        if not self.projects:
            raise NoProjects(
                "ION_COST_PROJECTS is not set: the billing export holds every project the billing "
                "account pays for, and ION's cost is only its own projects'"
            )
        return [
            bigquery.ScalarQueryParameter("since", "TIMESTAMP", day_start(first, zone)),
            bigquery.ScalarQueryParameter("until", "TIMESTAMP", day_end(last, zone)),
            bigquery.ArrayQueryParameter("projects", "STRING", self.projects),
            bigquery.ScalarQueryParameter("tz", "STRING", zone.key),
            bigquery.ScalarQueryParameter("invoice_month", "STRING", month.replace("-", "")),
        ]

    def lines(self, first: date, last: date, *, month: str, zone: ZoneInfo) -> Parsed:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=self.parameters(first, last, month, zone),
            use_legacy_sql=False,
            labels={"ion-capability": "cost"},
        )
        result = self.client().query_and_wait(
            EXPORT_QUERY.format(table=self.table), job_config=config, location=self.location, wait_timeout=120
        )
        parsed = parse_lines(
            (number, {COLUMNS.get(k, k): v for k, v in row.items()})
            for number, row in enumerate(result, start=1)
        )
        self.last_job = {"bytes_processed": getattr(result, "total_bytes_processed", None)}
        return parsed


def billing_source(settings: Any) -> BillingSource | None:
    """The configured source: the export table, else the local file, else none."""
    if settings.billing_table:
        return BigQueryBillingSource(
            settings.billing_table,
            projects=settings.project_list,
            endpoint=settings.bigquery_endpoint,
            location=settings.bigquery_location,
            job_project=settings.bigquery_project,
        )
    if settings.billing_file:
        # A local file keeps every project unless ION_COST_PROJECTS narrows it.
        return FileBillingSource(settings.billing_file, projects=settings.project_list or None)
    return None


def rows_from_dicts(raw: list[dict[str, Any]]) -> list[BillingRow]:
    return parse_rows(enumerate(raw, start=1))
