"""Where billing rows come from: one small interface, a plug-in per source.

- :class:`BigQueryBillingSource`: the Cloud Billing export table, through google-cloud-bigquery
  (``query_and_wait``, named parameters, costs cast to NUMERIC so they arrive as exact decimals).
  ``ION_COST_BIGQUERY_ENDPOINT`` points the real client at a local stand-in.
- :class:`FileBillingSource`: a JSON-lines export file (the CLI's form; a labelled local fallback).
- :class:`MemoryBillingSource`: rows in memory (tests, replay).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from functions.cost.billing import BillingRow, load_jsonl, parse_rows

# Costs and credits as NUMERIC: the export stores FLOAT64, and NUMERIC answers come back as exact
# decimal strings (the float's shortest form), so no binary rounding enters our sums.
EXPORT_QUERY = """
SELECT
  service,
  sku,
  usage_start_time,
  usage_end_time,
  location,
  CAST(cost AS NUMERIC) AS cost,
  currency,
  ARRAY(
    SELECT AS STRUCT c.name, CAST(c.amount AS NUMERIC) AS amount, c.type FROM UNNEST(credits) AS c
  ) AS credits,
  invoice,
  labels,
  export_time
FROM `{table}`
WHERE usage_start_time >= @since AND usage_start_time < @until
  AND _PARTITIONTIME >= TIMESTAMP_SUB(@since, INTERVAL 1 DAY)
ORDER BY usage_start_time
"""


class BillingSource(Protocol):
    name: str
    fallback: bool

    def rows(self, first: date, last: date) -> list[BillingRow]:
        """Rows with usage starting on ``first``..``last`` (UTC days); raises BadRows on bad ones."""
        ...


def _bounds(first: date, last: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(first, time(0), tzinfo=UTC),
        datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC),
    )


class MemoryBillingSource:
    name = "memory"
    fallback = False

    def __init__(self, rows: list[BillingRow]) -> None:
        self._rows = rows

    def rows(self, first: date, last: date) -> list[BillingRow]:
        start, end = _bounds(first, last)
        return [r for r in self._rows if start <= r.usage_start_time < end]


class FileBillingSource(MemoryBillingSource):
    """A JSON-lines export re-read at every run (so a file that grows shows late rows)."""

    name = "file (local fallback)"
    fallback = True

    def __init__(self, path: str) -> None:
        self.path = path

    def rows(self, first: date, last: date) -> list[BillingRow]:
        self._rows = load_jsonl(self.path)
        return super().rows(first, last)


class BigQueryBillingSource:
    name = "bigquery"
    fallback = False

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        endpoint: str | None = None,
        location: str | None = None,
        job_project: str | None = None,
    ):
        self.table = table
        # The project the query job runs (and is billed) in: where this function may create jobs,
        # not necessarily the export's project (a billing account's export often lives apart).
        self.job_project = job_project or table.split(".", 1)[0]
        self.endpoint = endpoint
        self.location = location
        self._client = client

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

    def rows(self, first: date, last: date) -> list[BillingRow]:
        from google.cloud import bigquery

        start, end = _bounds(first, last)
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("since", "TIMESTAMP", start),
                bigquery.ScalarQueryParameter("until", "TIMESTAMP", end),
            ],
            use_legacy_sql=False,
            labels={"ion-capability": "cost"},
        )
        result = self.client().query_and_wait(
            EXPORT_QUERY.format(table=self.table), job_config=config, location=self.location, wait_timeout=120
        )
        return parse_rows((number, dict(row.items())) for number, row in enumerate(result, start=1))


def billing_source(settings: Any) -> BillingSource | None:
    """The configured source: the export table, else the local file, else none."""
    if settings.billing_table:
        return BigQueryBillingSource(
            settings.billing_table,
            endpoint=settings.bigquery_endpoint,
            location=settings.bigquery_location,
            job_project=settings.bigquery_project,
        )
    if settings.billing_file:
        return FileBillingSource(settings.billing_file)
    return None


def rows_from_dicts(raw: list[dict[str, Any]]) -> list[BillingRow]:
    return parse_rows(enumerate(raw, start=1))
