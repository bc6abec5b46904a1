"""Every permission proved from the calls each function makes (devtools/permissions.py): the
checked-in needs against the Terraform grants, the README's table, negative cases that must fail
the check, and the recorder's reading of calls (shared/api_calls.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools import permissions as perms
from shared import api_calls, api_methods
from shared.api_calls import ApiCall
from shared.topology import ROOT

FIRESTORE = "google.firestore.v1.Firestore/"
DATABASE = "projects/ion-ops-test/databases/(default)"


@pytest.fixture(scope="module")
def deployment() -> perms.Deployment:
    return perms.Deployment()


def _copy(tmp_path: Path) -> Path:
    """A copy of terraform/ and topology.yaml a test may edit (HCL reads ../topology.yaml)."""
    shutil.copytree(
        ROOT / "terraform", tmp_path / "terraform", ignore=shutil.ignore_patterns(".terraform", ".build")
    )
    shutil.copy(ROOT / "topology.yaml", tmp_path / "topology.yaml")
    return tmp_path / "terraform"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _call(function: str, method: str, resource: str = DATABASE, detail: str = "", **kw: Any) -> ApiCall:
    return ApiCall(function=function, api="x", method=method, resource=resource, detail=detail, **kw)


# --- the proof ----------------------------------------------------------------------------------


def test_every_needed_permission_is_granted_and_every_grant_is_needed(deployment: perms.Deployment) -> None:
    report = perms.check(perms.load_needs(), deployment)
    assert not report.failures, "\n".join(report.failures)


def test_every_function_has_needs_proved_by_recorded_calls(deployment: perms.Deployment) -> None:
    needs = perms.load_needs()
    assert {n.function for n in needs} == set(deployment.functions)


def test_the_readme_table_is_the_generated_one(deployment: perms.Deployment) -> None:
    readme = (ROOT / "README.md").read_text()
    assert perms.readme_table(readme) == perms.grants_table(deployment=deployment), (
        "README's 'Grants and the calls that need them' differs: paste `python -m devtools.permissions table`"
    )


def test_every_method_names_a_source_page() -> None:
    table = perms.method_table()
    for method, entry in table.methods.items():
        assert entry.source in table.sources, method
    assert table.methods[FIRESTORE + "BeginTransaction"].permissions == ["datastore.databases.get"]
    assert table.methods[FIRESTORE + "Rollback"].permissions == ["datastore.databases.get"]


# --- negative cases: each must fail the check ---------------------------------------------------


def test_a_transaction_without_databases_get_is_a_gap(tmp_path: Path) -> None:
    terraform = _copy(tmp_path)
    _edit(terraform / "iam.tf", '"datastore.databases.get",', "")
    report = perms.check(perms.load_needs(), perms.Deployment(terraform))
    assert any(
        g.startswith(
            "route: BeginTransaction on projects/PROJECT/databases/route needs datastore.databases.get"
        )
        for g in report.gaps
    ), report.gaps


def test_a_grant_on_the_wrong_topic_is_a_gap_and_an_unused_grant(tmp_path: Path) -> None:
    terraform = _copy(tmp_path)
    _edit(tmp_path / "topology.yaml", "publishes: [metrics]  # public", "publishes: [alerts]  # public")
    report = perms.check(perms.load_needs(), perms.Deployment(terraform))
    assert any(
        g.startswith("route: Publish on projects/PROJECT/topics/metrics needs pubsub.topics.publish")
        for g in report.gaps
    ), report.gaps
    assert any(
        u.startswith("route: roles/pubsub.publisher on projects/PROJECT/topics/alerts") for u in report.unused
    )


def test_a_call_no_grant_covers_is_a_gap_naming_function_method_resource_and_permission(
    deployment: perms.Deployment,
) -> None:
    call = _call("mail_reports", "google.pubsub.v1.Publisher/Publish", "projects/ion-ops-test/topics/alerts")
    found = perms.needs_of([call], deployment, "ion-ops-test")
    assert perms.gaps(found.needs, deployment.grants()) == [
        "mail_reports: Publish on projects/PROJECT/topics/alerts needs pubsub.topics.publish, "
        "which no grant of mail_reports gives on that resource"
    ]


def test_a_method_or_detail_missing_from_the_table_is_an_error(deployment: perms.Deployment) -> None:
    found = perms.needs_of(
        [
            _call("route", FIRESTORE + "Listen", detail="stream"),
            _call("route", FIRESTORE + "Commit", detail="teleport"),
        ],
        deployment,
        "ion-ops-test",
    )
    assert any("Listen is not in" in e for e in found.errors)
    assert any("detail 'teleport'" in e for e in found.errors)


def test_an_unused_grant_fails_unless_justified_and_a_stale_justification_fails(
    tmp_path: Path, deployment: perms.Deployment
) -> None:
    needs = {
        n
        for n in perms.load_needs()
        if not (n.function == "evaluate_alerts" and n.permission.startswith("cloudscheduler."))
    }
    report = perms.check(needs, deployment)
    assert any(
        u.startswith("evaluate_alerts: roles/cloudscheduler.viewer on projects/PROJECT")
        for u in report.unused
    )

    why = perms.justifications()
    why.unused_grants.append(
        perms.Justification(function="evaluate_alerts", role="roles/cloudscheduler.viewer", why="t")
    )
    assert not perms.check(needs, deployment, why).unused
    assert perms.check(perms.load_needs(), deployment, why).stale_justifications


def test_a_custom_role_permission_no_call_needs_is_unused(tmp_path: Path) -> None:
    terraform = _copy(tmp_path)
    _edit(
        terraform / "iam.tf",
        '"datastore.entities.get",',
        '"datastore.entities.get",\n    "datastore.entities.delete",',
    )
    report = perms.check(perms.load_needs(), perms.Deployment(terraform))
    assert any("datastore.entities.delete is needed by no recorded call" in u for u in report.unused), (
        report.unused
    )


def test_a_resource_from_a_setting_is_checked_as_deployed(deployment: perms.Deployment) -> None:
    """Tests name their own queue; the check relates it to the queue Terraform gives the setting."""
    queue = "projects/ion-ops-test/locations/us-central1/queues/missing"
    call = _call(
        "manage_alerts",
        "google.cloud.tasks.v2.CloudTasks/CreateTask",
        queue,
        settings={"ION_FANOUT_TASKS_QUEUE": queue},
    )
    found = perms.needs_of([call], deployment, "ion-ops-test")
    assert {n.resource for n in found.needs if n.function == "manage_alerts" and "tasks" in n.permission} == {
        "projects/PROJECT/locations/us-central1/queues/fanout-timers"
    }


def test_local_only_calls_are_not_checked(deployment: perms.Deployment) -> None:
    call = _call(
        "route", "google.pubsub.v1.Publisher/GetTopic", "projects/ion-ops-test/topics/metrics", local_only="x"
    )
    found = perms.needs_of([call], deployment, "ion-ops-test")
    assert found.skipped
    assert not [n for n in found.needs if n.because == "GetTopic"]


# --- main paths run with the settings Terraform deploys ------------------------------------------
# Other tests name their own resources or leave a setting to its local default; these give the
# function the deployed value of each setting that names a resource, so the calls they record
# prove the per-resource grants (stand-ins serve those names; the project is the tests' own).


@pytest.fixture
def deployed_settings(deployment: perms.Deployment, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def use(function: str, *names: str) -> None:
        for name in names:
            value = deployment.setting(function, name)
            assert value is not None, f"Terraform gives {function} no {name}"
            monkeypatch.setenv(name, value.replace(perms.PROJECT, os.environ["GOOGLE_CLOUD_PROJECT"]))

    return use


def _served(app: str) -> Any:
    import functions_framework

    return functions_framework.create_app(app, str(ROOT / "main.py"), "http").test_client()


@pytest.fixture
def scaling_caches() -> Iterator[None]:
    from functions.scaling import cloudrun, settings

    settings.get_scaling_settings.cache_clear()
    cloudrun.reset_clients()
    yield
    settings.get_scaling_settings.cache_clear()
    cloudrun.reset_clients()


def test_adjust_scaling_applies_to_the_deployed_target_services(  # type: ignore[no-untyped-def]
    fs, emulators, deployed_settings, monkeypatch, scaling_caches
) -> None:
    from devtools.cloudrun_standin import CloudRunState, serve
    from devtools.processes import free_port
    from functions.scaling.settings import parse_targets

    deployed_settings("adjust_scaling", "ION_SCALING_TARGETS")
    targets = parse_targets(os.environ["ION_SCALING_TARGETS"])
    assert len({t.project for t in targets}) == 1, "the stand-in serves one project"
    state = CloudRunState(targets[0].project)
    for target in targets:
        state.add_service(target.region, target.service)
    port = free_port()
    server = serve(port, state)
    try:
        monkeypatch.setenv("ION_SCALING_DRY_RUN", "false")
        monkeypatch.setenv("ION_SCALING_CLOUDRUN_ENDPOINT", f"http://127.0.0.1:{port}")
        answer = _served("adjust_scaling").post("/", json={})
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 200, answer.data
    assert {d["outcome"] for d in answer.get_json()["decisions"]} == {"applied"}


def test_snapshot_cost_reads_the_deployed_export_and_recommenders(  # type: ignore[no-untyped-def]
    fs, emulators, deployed_settings, monkeypatch
) -> None:
    from devtools import recommender_standin
    from devtools.bigquery_standin import StandIn, Table
    from devtools.bigquery_standin import serve as serve_bigquery
    from devtools.billing_export import generate
    from devtools.processes import free_port
    from functions.cost import main as cost_main

    deployed_settings(
        "snapshot_cost",
        "ION_COST_BILLING_TABLE",
        "ION_COST_PROJECTS",
        "ION_COST_BIGQUERY_PROJECT",
        "ION_COST_BIGQUERY_LOCATION",
        "ION_COST_BILLING_ACCOUNT",
        "ION_COST_RECOMMENDER_PROJECT",
        "ION_COST_RECOMMENDER_LOCATIONS",
    )
    today = datetime.now(UTC).date()
    rows = generate(
        today - timedelta(days=40), today - timedelta(days=1), hours=24, seed=3, late_share=0.0
    ).rows
    bigquery = StandIn(
        os.environ["ION_COST_BIGQUERY_PROJECT"], Table(os.environ["ION_COST_BILLING_TABLE"], rows)
    )
    bigquery_server = serve_bigquery(bigquery, free_port())
    recommendations = recommender_standin.sample(
        os.environ["ION_COST_RECOMMENDER_PROJECT"], os.environ["ION_COST_BILLING_ACCOUNT"]
    )
    recommender_server = recommender_standin.serve(recommendations, free_port())
    try:
        monkeypatch.setenv(
            "ION_COST_BIGQUERY_ENDPOINT", f"http://127.0.0.1:{bigquery_server.server_address[1]}"
        )
        monkeypatch.setenv(
            "ION_COST_RECOMMENDER_ENDPOINT", f"http://127.0.0.1:{recommender_server.server_address[1]}"
        )
        monkeypatch.setenv("ION_COST_BUDGET", "1")  # every threshold crossed: notices on alerts
        _topics("alerts")
        cost_main.reset()
        answer = _served("snapshot_cost").post("/", json={})
    finally:
        cost_main.reset()
        for server in (bigquery_server, recommender_server):
            server.shutdown()
            server.server_close()
    assert answer.status_code == 200, answer.data
    assert answer.get_json()["as_of"] < today.isoformat()  # yesterday in the billing account's zone


def _topics(*names: str) -> None:
    """Topics on the Pub/Sub emulator (made by the test itself: its calls are no function's)."""
    from google.api_core.exceptions import AlreadyExists
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    for name in names:
        with contextlib.suppress(AlreadyExists):
            publisher.create_topic(name=publisher.topic_path(os.environ["GOOGLE_CLOUD_PROJECT"], name))


def test_evaluate_alerts_publishes_a_transition_it_finds(fs, emulators, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.test_alert_pipeline import RULES, otlp_gauge

    _topics("alerts", "metric-updates")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    monkeypatch.setenv("ION_RULES_FILE", str(rules))
    ingested = _served("ingest").post("/v1/metrics", json=otlp_gauge("checkout", "europe-west1", [0.45] * 20))
    assert ingested.status_code == 200, ingested.data
    # The minute tick before the metric-updates push: the tick finds the breach and announces it.
    assert _served("evaluate_alerts").post("/").status_code == 200
    firing = _served("evaluate_alerts").get("/v1/alerts?state=firing").get_json()["alerts"]
    assert [a["rule"] for a in firing] == ["checkout-latency-p95"]


def test_score_health_publishes_a_success_action(fs, emulators) -> None:  # type: ignore[no-untyped-def]
    from functions.health.settings import get_health_settings

    _topics("alerts")
    get_health_settings.cache_clear()
    client = _served("score_health")
    created = client.post("/v1/customers", json={"id": "fresh", "name": "Fresh Ltd", "plan": "pro"})
    assert created.status_code in (200, 201), created.data
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)  # scores the days before: today's customer
    answer = client.post(f"/v1/health/run?as_of={tomorrow.isoformat()}")
    get_health_settings.cache_clear()
    assert answer.status_code == 200, answer.data
    assert answer.get_json()["actions_fired"], "a new customer without usage gets its onboarding check-in"


# --- the recorder -------------------------------------------------------------------------------


def test_firestore_commit_records_what_each_write_needs() -> None:
    from google.cloud.firestore_v1.types import common, firestore, write

    request = firestore.CommitRequest(
        database=DATABASE,
        writes=[
            write.Write(
                update={"name": DATABASE + "/documents/a/1"},
                current_document=common.Precondition(exists=False),
            ),
            write.Write(
                update={"name": DATABASE + "/documents/a/2"},
                current_document=common.Precondition(exists=True),
            ),
            write.Write(update={"name": DATABASE + "/documents/a/3"}),
            write.Write(delete=DATABASE + "/documents/a/4"),
        ],
    )
    calls = api_methods.grpc_calls(FIRESTORE + "Commit", firestore.CommitRequest.pb(request))
    assert calls == [(DATABASE, "create"), (DATABASE, "delete"), (DATABASE, "update"), (DATABASE, "upsert")]
    empty = firestore.CommitRequest.pb(firestore.CommitRequest(database=DATABASE, transaction=b"t"))
    assert api_methods.grpc_calls(FIRESTORE + "Commit", empty) == [(DATABASE, "empty")]
    query = firestore.RunQueryRequest(parent=DATABASE + "/documents", new_transaction={})
    assert api_methods.grpc_calls(FIRESTORE + "RunQuery", firestore.RunQueryRequest.pb(query)) == [
        (DATABASE, ""),
        (DATABASE, "begins-transaction"),
    ]


def test_rest_calls_are_named_like_their_grpc_methods_with_the_tables_a_query_reads() -> None:
    body = '{"query": "SELECT 1 FROM `billing-admin.billing.export_v1` JOIN `p.d.t` USING (x)"}'
    assert api_methods.rest_call(
        "POST", "http://127.0.0.1:1/bigquery/v2/projects/jobs-here/queries", body
    ) == [
        ("bigquery.googleapis.com", "bigquery.jobs.query", "projects/jobs-here", ""),
        (
            "bigquery.googleapis.com",
            "bigquery.jobs.query",
            "projects/billing-admin/datasets/billing/tables/export_v1",
            "reads",
        ),
        ("bigquery.googleapis.com", "bigquery.jobs.query", "projects/p/datasets/d/tables/t", "reads"),
    ]
    task = (
        '{"task": {"httpRequest": {"oidcToken": {"serviceAccountEmail": "t@p-1.iam.gserviceaccount.com"}}}}'
    )
    queue = "projects/p-1/locations/us-central1/queues/q"
    assert api_methods.rest_call("POST", f"https://cloudtasks.googleapis.com/v2/{queue}/tasks", task) == [
        ("cloudtasks.googleapis.com", "google.cloud.tasks.v2.CloudTasks/CreateTask", queue, ""),
        (
            "cloudtasks.googleapis.com",
            "google.cloud.tasks.v2.CloudTasks/CreateTask",
            "projects/p-1/serviceAccounts/t@p-1.iam.gserviceaccount.com",
            "oidc-token",
        ),
    ]
    unknown = api_methods.rest_call("DELETE", "https://example.googleapis.com/v9/things/1", None)
    assert unknown[0][1] == "unknown REST call DELETE /v9/things/1"


def test_calls_are_attributed_to_the_function_and_its_threads_but_not_to_tests() -> None:
    assert api_calls.recording(), "the test session records (tests/conftest.py)"
    seen: dict[str, str | None] = {}

    def note(key: str) -> None:
        seen[key] = api_calls.current_function()

    note("test")
    with api_calls.calls_of("route"):
        thread = threading.Thread(target=note, args=("thread",))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(note, "pool").result()
    with ThreadPoolExecutor(max_workers=1) as pool:  # a worker made for route, reused by a test
        pool.submit(int).result()
        with api_calls.calls_of("ingest"):
            pool.submit(note, "ingest-pool").result()
        pool.submit(note, "test-pool").result()
    assert seen == {
        "test": None,
        "thread": "route",
        "pool": "route",
        "ingest-pool": "ingest",
        "test-pool": None,
    }


# --- the health probe of a topic ----------------------------------------------------------------


class _Api:
    def __init__(self, permissions: list[str] | Exception) -> None:
        self.permissions = permissions
        self.topics: list[str] = []

    def test_iam_permissions(self, request: dict[str, Any], **_: Any) -> Any:
        if isinstance(self.permissions, Exception):
            raise self.permissions
        assert request["permissions"] == ["pubsub.topics.publish"]
        return type("Answer", (), {"permissions": self.permissions})()

    def get_topic(self, topic: str, **_: Any) -> None:
        self.topics.append(topic)


@pytest.fixture
def publisher(monkeypatch: pytest.MonkeyPatch) -> Any:
    from shared import pubsub

    def use(api: _Api) -> _Api:
        client = type("Publisher", (), {"api": api})()
        monkeypatch.setattr(pubsub, "get_publisher", lambda: client)
        return api

    return use


def test_the_topic_probe_proves_the_function_may_publish(
    publisher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.health import PublishNotPermitted, pubsub_probe

    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    publisher(_Api(["pubsub.topics.publish"]))
    pubsub_probe("alerts").check()
    publisher(_Api([]))
    with pytest.raises(PublishNotPermitted):
        pubsub_probe("alerts").check()


def test_without_test_iam_permissions_only_the_emulator_falls_back_to_get_topic(
    publisher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.api_core.exceptions import MethodNotImplemented

    from shared.health import pubsub_probe

    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    api = publisher(_Api(MethodNotImplemented("no")))
    with pytest.raises(MethodNotImplemented):
        pubsub_probe("alerts").check()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
    pubsub_probe("alerts").check()
    assert api.topics == ["projects/ion-ops-test/topics/alerts"]
