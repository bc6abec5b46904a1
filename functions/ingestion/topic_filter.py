"""What ``ingest_pubsub`` accepts from topic ``metrics``: routing's metrics and nothing else.

The public ``route`` function may publish to ``metrics``, so anyone who can make it publish (or
who holds its credentials) could forge batches that fire, or drown, the latency rules. A batch
from the topic keeps only series of the catalogue's routing metrics, emitted as one of the
services routing emits as, with the catalogue's labels and, where a label is bounded, its
values. Anything else is refused and counted: the batch's refusals (logged with their reasons
by the handler) and the ``refused_from_topic`` count of its log line.
"""

from __future__ import annotations

from functions.ingestion.aggregate import Batch, SeriesBatch
from shared.metrics.catalogue import Metric, load_catalogue

# The ``service.name`` routing's telemetry sets (functions/routing/metrics.py SERVICE_NAME; a test
# checks they agree). The resource's service.name becomes the series' ``service`` label.
ROUTING_SERVICES = frozenset({"routing"})
PRODUCER = "routing"


def _points(series: SeriesBatch) -> int:
    cells = sum(cell.points for cell in series.minutes.values())
    return cells + sum(len(stream) for stream in series.streams.values())


def refusal(series: SeriesBatch, metrics: dict[str, Metric]) -> str | None:
    """Why topic ``metrics`` may not carry ``series``, or None when it may."""
    spec = metrics.get(series.metric)
    if spec is None or PRODUCER not in spec.producers:
        return "not a routing metric of the catalogue; topic metrics carries routing's metrics only"
    service = series.labels.get("service")
    if service not in ROUTING_SERVICES:
        return (
            f"service {service!r} is not one routing emits as ({', '.join(sorted(ROUTING_SERVICES))}); "
            "topic metrics carries routing's metrics only"
        )
    if spec.customer_usage is not None:
        return None  # its labels are customer usage's to refuse, marking the customer (customer_usage.py)
    for name, value in series.labels.items():
        label = spec.labels.get(name)
        if label is None:
            return f"label {name!r} is not one the catalogue lists for {series.metric}"
        if label.values is not None and value not in label.values:
            return f"label {name!r} is never {value[:64]!r} for {series.metric}"
    return None


def confine_to_routing(batch: Batch) -> int:
    """Take out of ``batch`` every series topic ``metrics`` may not carry, refusing its points
    with the reason; the number of points refused."""
    metrics = load_catalogue().produced_by(PRODUCER)
    refused = 0
    for sid, series in list(batch.series.items()):
        reason = refusal(series, metrics)
        if reason is None:
            continue
        del batch.series[sid]
        points = _points(series)
        batch.reject(series.metric, reason, points)
        batch.accepted -= points
        refused += points
    kept = {series.metric for series in batch.series.values()}
    for name in [name for name in batch.metrics if name not in kept]:
        del batch.metrics[name]
    return refused
