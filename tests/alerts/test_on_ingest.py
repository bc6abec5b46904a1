"""evaluate_alerts_on_ingest through functions-framework, on the emulators: a rule failing on a
store or network down for now has Pub/Sub redeliver (answered 500); a rule failing for a reason no
retry cures (a defect of the rule or its data) is logged as an error and its message acknowledged
(200), so a rule that always fails does not send each update of its metric to the dead letters."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import requests
from google.api_core import exceptions as gexc

from functions.alerts.engine import retry_may_cure
from functions.alerts.source import Query, QueryApiSource
from shared.messages import MetricsIngested
from shared.topology import ROOT
from tests.conftest import PROJECT
from tests.pubsub_helpers import push_envelope
from tests.test_topology_and_terraform import TERRAFORM, load_hcl

RULES = """
rules:
  - name: queue-depth-high
    metric: queue.depth
    agg: max
    window: 5m
    op: ">"
    threshold: 100
    for: 0s
    severity: high
    annotations:
      summary: "queue depth {value}"
  - name: queue-age-high
    metric: queue.age
    agg: max
    window: 5m
    op: ">"
    threshold: 60
    for: 0s
    severity: high
    annotations:
      summary: "oldest message {value}s"
"""
Capture = pytest.CaptureFixture[str]


def _transaction_gave_up() -> Exception:
    """What Firestore's transactional wrapper raises once every attempt was aborted."""
    try:
        raise ValueError("Failed to commit transaction in 5 attempts.") from gexc.Aborted("contention")
    except ValueError as exc:
        return exc


LASTING: list[Any] = [
    pytest.param(lambda: gexc.FailedPrecondition("The query requires an index."), id="failed-precondition"),
    pytest.param(lambda: gexc.InvalidArgument("label filter on a missing field"), id="invalid-argument"),
    pytest.param(lambda: KeyError("region"), id="rule-bug"),
]
TRANSIENT: list[Any] = [
    pytest.param(lambda: gexc.ServiceUnavailable("Firestore unavailable"), id="unavailable"),
    pytest.param(lambda: gexc.DeadlineExceeded("Deadline exceeded"), id="deadline-exceeded"),
    pytest.param(lambda: gexc.Aborted("alert kept changing"), id="aborted"),
    pytest.param(_transaction_gave_up, id="transaction-gave-up-on-aborted"),
    pytest.param(lambda: requests.ConnectionError("connection reset"), id="connection-error"),
]


def _push(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, failing: dict[str, Exception], touched: list[str]
) -> int:
    """Push one metric-updates message touching ``touched`` through the real entry point, each
    rule reading a metric of ``failing`` raising that error; the status code Pub/Sub would see."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    monkeypatch.setenv("ION_RULES_FILE", str(rules))

    def fetch(_source: QueryApiSource, query: Query) -> list[Any]:
        if query.metric in failing:
            raise failing[query.metric]
        return []

    monkeypatch.setattr(QueryApiSource, "fetch", fetch)
    now = datetime.now(UTC)
    update = MetricsIngested(batch_id="b-1", metrics={m: [{}] for m in touched}, start=now, end=now)
    app = functions_framework.create_app("evaluate_alerts_on_ingest", str(ROOT / "main.py"))
    envelope = push_envelope(update.model_dump(mode="json"), message_id="mu-1")
    return app.test_client().post(f"/projects/{PROJECT}/topics/metric-updates", json=envelope).status_code


def _lines(out: str, message: str) -> list[dict[str, Any]]:
    found = []
    for line in out.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and str(entry.get("message", "")).startswith(message):
            found.append(entry)
    return found


ACKED_LINE = "rules failed on a metric update; acknowledged, not retried"
RETRY_LINE = "push handler failed; Pub/Sub redelivers"


def _counted_by_rule_failing(entry: dict[str, Any]) -> bool:
    """Whether Terraform's log-based metric of failing cycles (the ``rule_failing`` page) counts
    this line: its jsonPayload conditions, equalities and presences."""
    [metric] = [
        body
        for block in load_hcl(TERRAFORM / "logging.tf")["resource"]
        for kind, named in block.items()
        if kind == "google_logging_metric"
        for name, body in named.items()
        if name == "evaluation_cycles_with_errors"
    ]
    equal = dict(re.findall(r'jsonPayload\.([a-z_]+)\s*=\s*\\?"([^"\\]+)\\?"', metric["filter"]))
    present = re.findall(r"jsonPayload\.([a-z_]+):\*", metric["filter"])
    assert equal, metric["filter"]
    assert present, metric["filter"]
    return all(entry.get(k) == v for k, v in equal.items()) and all(k in entry for k in present)


@pytest.mark.emulators
@pytest.mark.parametrize("error", LASTING)
def test_a_rule_failing_for_good_is_logged_and_its_message_acknowledged(
    fs: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Capture, error: Callable[[], Exception]
) -> None:
    failure = error()
    assert not retry_may_cure(failure)
    assert _push(monkeypatch, tmp_path, {"queue.depth": failure}, ["queue.depth"]) == 200
    out = capsys.readouterr().out
    assert not _lines(out, RETRY_LINE)
    [line] = _lines(out, ACKED_LINE)
    assert line["severity"] == "ERROR"
    # Named as the scheduled cycle's line names a failing rule: rule -> "Class: message".
    assert line["errors"] == {"queue-depth-high": f"{type(failure).__name__}: {failure}"}
    assert line["message_id"] == "mu-1"
    # The full cycle fails on the same rule and pages; the on-ingest line, at the rate of
    # ingestion, is kept out of that count of full cycles.
    assert line["alerts_cycle"] == "partial"
    assert not _counted_by_rule_failing(line)
    assert _counted_by_rule_failing({**line, "alerts_cycle": "full"})


@pytest.mark.emulators
@pytest.mark.parametrize("error", TRANSIENT)
def test_a_rule_failing_on_a_store_down_for_now_is_retried_with_its_cause(
    fs: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Capture, error: Callable[[], Exception]
) -> None:
    failure = error()
    assert retry_may_cure(failure)
    assert _push(monkeypatch, tmp_path, {"queue.depth": failure}, ["queue.depth"]) == 500
    out = capsys.readouterr().out
    assert not _lines(out, ACKED_LINE)
    [line] = _lines(out, RETRY_LINE)
    # The retry says which rule and why (an outage, not a defect): the cause is chained.
    assert "queue-depth-high" in line["stack_trace"]
    assert f"{type(failure).__name__}: {failure}" in line["stack_trace"]


@pytest.mark.emulators
def test_one_rule_down_for_now_retries_the_message_and_another_failing_for_good_is_still_logged(
    fs: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Capture
) -> None:
    failing = {"queue.depth": gexc.ServiceUnavailable("unavailable"), "queue.age": KeyError("region")}
    assert _push(monkeypatch, tmp_path, failing, ["queue.depth", "queue.age"]) == 500
    out = capsys.readouterr().out
    [acked] = _lines(out, ACKED_LINE)
    assert acked["errors"] == {"queue-age-high": "KeyError: 'region'"}
    [retry] = _lines(out, RETRY_LINE)
    assert "queue-depth-high" in retry["stack_trace"]
    assert "queue-age-high" not in retry["stack_trace"]


def test_a_cause_chain_that_loops_is_read_to_its_end_once() -> None:
    outer, inner = KeyError("region"), ValueError("bad label")
    outer.__cause__, inner.__cause__ = inner, outer
    assert not retry_may_cure(outer)
    inner.__cause__ = gexc.ServiceUnavailable("unavailable")
    assert retry_may_cure(outer)
