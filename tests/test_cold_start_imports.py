"""Cold start: the heavy clients a function loads before its first call are only those that call
needs. Each deployed function imports the root ``main.py`` (and, deployed, its settings module for
the start check) at start, and its capability's handler module (``functions/<cap>/main.py``) on its
first call: a client imported there that the first call does not use is paid for nothing.

Each capability is imported in a fresh interpreter (this one has loaded everything). No timing is
asserted: ``bench/cold_start.py`` gives the figures.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest
import yaml

import main
from shared.topology import ROOT

# Packages whose import a cold start notices (tens to hundreds of milliseconds each).
HEAVY = (
    "google.cloud.firestore_v1",
    "google.cloud.pubsub_v1",
    "google.cloud.bigquery",
    "google.cloud.monitoring_v3",
    "google.cloud.scheduler_v1",
    "google.cloud.tasks_v2",
    "google.cloud.run_v2",
    "google.cloud.recommender_v1",
    "google.api_core",
    "grpc",
    "redis",
    "slack_sdk",
    "jinja2",
    "opentelemetry",
    "ddsketch",
    "requests",
    "numpy",
    "pandas",
)

# flask imports jinja2 itself: every function has it.
FLASK = frozenset({"jinja2"})
# The Firestore client and what it brings: google.api_core and grpc (its transport), requests
# (google-auth's), opentelemetry (its tracing API).
FIRESTORE = frozenset({"google.cloud.firestore_v1", "google.api_core", "grpc", "requests", "opentelemetry"})

# What a capability's first call needs, so may be loaded with its handler module; anything else
# is imported in the function that uses it. A ceiling, not a requirement: needed clients may
# still be imported late.
NEEDED_AT_FIRST_CALL: dict[str, frozenset[str]] = {
    # /v2/route answers from its decision table in memory: Redis (rate limits, customer keys),
    # Firestore (feedback, customer keys) and Pub/Sub (telemetry, from a background thread) are
    # each imported where used. The public hot path: nothing heavy with the module.
    "functions.routing.main": FLASK,
    # Every route reads or writes Firestore (a batch, a query, collect, downsample, /health); a
    # batch is decoded with opentelemetry's protobuf messages and folded into DDSketches. Cloud
    # Monitoring (collect only) and Pub/Sub (the update after a batch is stored) come later.
    "functions.ingestion.main": FLASK | FIRESTORE | {"ddsketch"},
    # A cycle reads rules' state and rollups from Firestore and folds their sketches; Pub/Sub (a
    # transition to publish) and Cloud Scheduler (/v1/schedules) only some cycles or routes use.
    "functions.alerts.main": FLASK | FIRESTORE | {"ddsketch"},
    # An alert or a call is checked against silences and incidents in Firestore; Slack, PagerDuty,
    # mail templates (jinja2 is flask's anyway) and Cloud Tasks (timers) only at delivery.
    "functions.fanout.main": FLASK | FIRESTORE,
    "functions.deadletters.main": FLASK | FIRESTORE,
    # Snapshots and reads are kept in Firestore; BigQuery (the billing export) is read by a
    # snapshot only, the Recommender API by recommendations only.
    "functions.cost.main": FLASK | FIRESTORE,
    # Decisions are kept in Firestore; the Cloud Run Admin API only when a rule changes a service.
    "functions.scaling.main": FLASK | FIRESTORE,
    # Every route reads or writes Firestore (its handler imports it on purpose); Redis (customer
    # keys) only where configured and used.
    "functions.health.main": FLASK | FIRESTORE,
    # Reports are built from Firestore; mail (SMTP) only when one is sent.
    "functions.reports.main": FLASK | FIRESTORE,
}

# What every deployed function loads at start, before any call: nothing heavy but flask's own.
NEEDED_AT_START = FLASK

_PROBE = """
import importlib, json, sys
heavy = {heavy!r}
loaded = lambda: [name for name in heavy if name in sys.modules]
import main
for module in {start_modules!r}:
    importlib.import_module(module)
at_start = loaded()
importlib.import_module({handler!r})
print(json.dumps({{"start": at_start, "handler": loaded()}}))
"""


def handler_modules() -> dict[str, list[str]]:
    """Handler module -> the entry points of main.py that import it on their first call."""
    tree = ast.parse((ROOT / "main.py").read_text())
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in main.DEPLOYMENT_CHECKS:
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("functions."):
                    found.setdefault(inner.module or "", []).append(node.name)
    return found


def loaded_by(handler: str, entry_points: list[str]) -> dict[str, list[str]]:
    start_modules = sorted({main.DEPLOYMENT_CHECKS[entry] for entry in entry_points})
    env = {**os.environ, "ION_LOG_LEVEL": "WARNING"}
    for name in ("K_SERVICE", "FUNCTION_TARGET", "ION_RECORD_API_CALLS"):  # as deployed, unrecorded
        env.pop(name, None)
    code = _PROBE.format(heavy=HEAVY, start_modules=start_modules, handler=handler)
    answer = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(answer.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_every_entry_point_has_its_handler_module_declared() -> None:
    handlers = handler_modules()
    assert sorted(entry for entries in handlers.values() for entry in entries) == sorted(
        main.DEPLOYMENT_CHECKS
    )
    assert set(handlers) == set(NEEDED_AT_FIRST_CALL)


@pytest.mark.parametrize("handler", sorted(NEEDED_AT_FIRST_CALL))
def test_handler_module_loads_only_what_its_first_call_needs(handler: str) -> None:
    loaded = loaded_by(handler, handler_modules()[handler])
    assert set(loaded["start"]) - NEEDED_AT_START == set(), f"main.py or {handler}'s settings module"
    assert set(loaded["handler"]) - NEEDED_AT_FIRST_CALL[handler] == set(), handler


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
def test_files_read_at_start_or_first_call_are_parsed_by_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    """The topology (every start check), alert rules, report audiences and dashboards (their start
    checks) and the metric catalogue (ingestion's first batch): the pure-Python parser made them
    tens of milliseconds of a cold start each, libyaml about an eighth."""
    from functions.alerts.rules import load_rules
    from functions.reports.audiences import load_audiences
    from functions.reports.panels import DEFAULT_DASHBOARDS_FILE, load_catalog
    from functions.reports.settings import ReportsSettings
    from shared.metrics.catalogue import load_catalogue
    from shared.topology import load_topology

    def pure_python_parser(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed by PyYAML's pure-Python parser")

    monkeypatch.setattr(yaml.SafeLoader, "__init__", pure_python_parser)
    for cached in (load_audiences, load_catalog, load_catalogue):
        cached.cache_clear()
    try:
        load_topology()
        load_rules()
        load_catalog(DEFAULT_DASHBOARDS_FILE)
        reports = ReportsSettings()
        load_audiences(reports.audiences_file, reports.dashboards_file)
        load_catalogue()
    finally:
        for cached in (load_audiences, load_catalog, load_catalogue):
            cached.cache_clear()
