"""The function on real parts: the Cloud Run Admin API stand-in through the real google-cloud-run
client, the Firestore and Pub/Sub emulators, functions-framework over HTTP."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from google.api_core.exceptions import AlreadyExists, BadRequest, NotFound

from devtools.cloudrun_standin import CloudRunState
from devtools.processes import free_port
from functions.scaling.cloudrun import CloudRunScaler, LiveScaling
from functions.scaling.forecast import History
from functions.scaling.notices import notice_for, problem_notice
from functions.scaling.rules import parse_rules
from functions.scaling.service import run_cycle
from functions.scaling.settings import ScalingSettings
from functions.scaling.sources import MemoryGuard, MemoryHistory, RegionInputs
from functions.scaling.store import FirestoreDecisionStore, MemoryDecisionStore
from functions.scaling.time_grid import HOUR, MINUTE
from shared import clock
from tests.scaling.conftest import PROJECT

AT = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # 08:00 in Chicago: a forecast refresh


def test_apply_only_on_change_and_idempotent(standin: tuple[str, CloudRunState]) -> None:
    endpoint, state = standin
    scaler = CloudRunScaler(PROJECT, endpoint)
    assert scaler.read("us-central1", "persona-router") == LiveScaling(0, 100, '"1"')
    first = scaler.apply("us-central1", "persona-router", 4, 150)
    assert first.outcome == "applied"
    assert (first.after.min_instances, first.after.max_instances) == (4, 150)
    again = scaler.apply("us-central1", "persona-router", 4, 150)
    assert again.outcome == "unchanged"
    assert len(state.requests) == 1  # the second call sent nothing
    sent = state.requests[0]
    assert sent["update_mask"] == ["scaling.min_instance_count", "scaling.max_instance_count"]
    assert sent["body"]["etag"] == '"1"'
    service = state.services[f"projects/{PROJECT}/locations/us-central1/services/persona-router"]
    assert service["scaling"] == {"minInstanceCount": 4, "maxInstanceCount": 150}
    assert service["template"]["scaling"]["minInstanceCount"] == 0  # no new revision asked for
    assert service["generation"] == "2"


def test_template_level_and_rejected_requests(standin: tuple[str, CloudRunState]) -> None:
    endpoint, state = standin
    template = CloudRunScaler(PROJECT, endpoint, level="template")
    assert template.apply("europe-west1", "persona-router", 1, 80).outcome == "applied"
    assert state.requests[-1]["update_mask"] == [
        "template.scaling.min_instance_count",
        "template.scaling.max_instance_count",
    ]
    with pytest.raises(BadRequest, match="must not exceed"):
        CloudRunScaler(PROJECT, endpoint).apply("europe-west1", "persona-router", 9, 3)
    with pytest.raises(BadRequest, match="between 0 and 1000"):
        CloudRunScaler(PROJECT, endpoint).apply("europe-west1", "persona-router", 1, 5000)
    with pytest.raises(NotFound):
        CloudRunScaler(PROJECT, endpoint).read("us-east1", "persona-router")


def test_standin_checks_masks_and_etags(standin: tuple[str, CloudRunState]) -> None:
    endpoint, _ = standin
    url = f"{endpoint}/v2/projects/{PROJECT}/locations/us-central1/services/persona-router"
    bad_mask = requests.patch(url, params={"updateMask": "uid"}, json={"uid": "x"}, timeout=5)
    assert bad_mask.status_code == 400
    assert "not a mutable field" in bad_mask.json()["error"]["message"]
    no_mask = requests.patch(url, json={"scaling": {"minInstanceCount": 1}}, timeout=5)
    assert no_mask.status_code == 400
    assert "template is required" in no_mask.json()["error"]["message"]
    stale = requests.patch(
        url,
        params={"updateMask": "scaling.minInstanceCount"},
        json={"etag": '"0"', "scaling": {"minInstanceCount": 1}},
        timeout=5,
    )
    assert stale.status_code == 409
    other = requests.patch(
        url,
        params={"updateMask": "scaling.minInstanceCount"},
        json={"name": "projects/x/locations/y/services/z"},
        timeout=5,
    )
    assert other.status_code == 400


RULES = parse_rules(
    {
        "regions": {
            "us-central1": {
                "time_zone": "America/Chicago",
                "floor": 2,
                "max_instances": 100,
                "rules": [{"name": "morning-peak", "start": "08:00", "end": "09:00", "min": 4, "max": 150}],
            },
            "europe-west1": {"time_zone": "Europe/Brussels", "floor": 1, "max_instances": 100},
        }
    }
)


def busy_history(rpm: float, at: datetime) -> History:
    hourly = {at.replace(minute=0) - k * HOUR: rpm for k in range(1, 15 * 24)}
    recent = {at.replace(second=0) - k * MINUTE: rpm for k in range(1, 131)}
    return History(hourly=hourly, recent=recent, first_seen=at - timedelta(days=15))


def cycle(
    at: datetime,
    store: MemoryDecisionStore,
    scaler: CloudRunScaler | None,
    guard: MemoryGuard | None = None,
    rpm: float = 60_000.0,
    *,
    reported: list | None = None,  # type: ignore[type-arg]
):
    announced = []
    history = MemoryHistory(
        {
            "us-central1": RegionInputs(busy_history(rpm, at)),
            "europe-west1": RegionInputs(busy_history(rpm / 10, at)),
        }
    )
    settings = ScalingSettings(ION_SCALING_CAPACITY_RPM=2000.0)
    result = run_cycle(
        at=at, rules=RULES, settings=settings, history=history, guard=guard or MemoryGuard(),
        store=store, scaler=scaler, announce=announced.append,
        report=reported.append if reported is not None else None,
    )  # fmt: skip
    return result, announced


def test_cycle_applies_records_and_announces(standin: tuple[str, CloudRunState]) -> None:
    endpoint, state = standin
    store = MemoryDecisionStore()
    scaler = CloudRunScaler(PROJECT, endpoint)
    result, announced = cycle(AT, store, scaler)
    by_region = {r.decision.region: r for r in result.records}
    us = by_region["us-central1"]
    # Flat 60,000/min: peak factor at its floor 1.05, default band 1.3, 2,000/min per instance:
    # ceil(60,000 x 1.05 x 1.3 / 2,000) = ceil(40.95) = 41 instances, over the last minute's
    # 60,000 x 1.2 headroom / 2,000 = 36; the max room for 3x the band with its headroom (148).
    assert (us.decision.min_instances, us.decision.bound_by) == (41, "forecast")
    assert us.decision.max_instances == 148
    assert us.decision.rule == "morning-peak"
    assert us.outcome == "applied"
    # Compared with the live service (min 0 in the stand-in), not with an empty stored state.
    assert us.decision.previous_min == 0
    assert us.decision.from_live
    assert us.monthly_cost_change_usd == round(41 * 730 * 0.0587, 2)
    live = state.services[f"projects/{PROJECT}/locations/us-central1/services/persona-router"]["scaling"]
    assert live == {"minInstanceCount": 41, "maxInstanceCount": 148}
    assert {r.decision.region for r in announced} == {"us-central1", "europe-west1"}
    # The same slot again: nothing decided, nothing sent.
    again, _ = cycle(AT + timedelta(seconds=30), store, scaler)
    assert again.skipped == ["us-central1", "europe-west1"]
    assert len(state.requests) == 2
    # A minute later (the stored forecast reused), same load: decided, unchanged, not sent, not
    # announced; and at the next refresh too.
    later, quiet = cycle(AT + timedelta(minutes=1), store, scaler)
    assert [r.decision.forecast_at for r in later.records] == [AT, AT]
    assert [r.outcome for r in later.records] == ["unchanged", "unchanged"]
    later, quiet = cycle(AT + timedelta(minutes=5), store, scaler)
    assert [r.outcome for r in later.records] == ["unchanged", "unchanged"]
    assert quiet == []
    assert len(state.requests) == 2


def test_guard_reverts_a_scale_down_and_failures_keep_the_state(standin: tuple[str, CloudRunState]) -> None:
    endpoint, state = standin
    store = MemoryDecisionStore()
    scaler = CloudRunScaler(PROJECT, endpoint)
    cycle(AT, store, scaler)
    at = AT
    for _ in range(8):  # load drops: after 30 minutes the min comes down, by half at most
        at += timedelta(minutes=5)
        cycle(at, store, scaler, rpm=6_000.0)
    lowered = store.load("us-central1").state.min_instances
    assert lowered is not None
    assert lowered < 50
    at += timedelta(minutes=5)
    result, _ = cycle(
        at, store, scaler, guard=MemoryGuard({"us-central1": ["error-rate-critical"]}), rpm=6_000.0
    )
    us = next(r for r in result.records if r.decision.region == "us-central1")
    assert us.decision.bound_by == "guard-revert"
    assert us.decision.min_instances > lowered
    assert us.decision.guard_firing == ["error-rate-critical"]
    # The service is gone (NotFound, for good): recorded as misconfigured, not a retry (no 503),
    # the state keeps the old values, and it is reported once while it stays so.
    del state.services[f"projects/{PROJECT}/locations/europe-west1/services/persona-router"]
    before = store.load("europe-west1").state
    reported: list = []  # type: ignore[type-arg]
    failed, _ = cycle(at + timedelta(minutes=5), store, scaler, rpm=600_000.0, reported=reported)
    assert failed.failed == []
    assert failed.misconfigured == ["europe-west1"]
    assert store.load("europe-west1").state == before
    assert store.load("europe-west1").last_outcome == "misconfigured"
    again, _ = cycle(at + timedelta(minutes=10), store, scaler, rpm=600_000.0, reported=reported)
    assert again.misconfigured == ["europe-west1"]
    assert [r.decision.region for r in reported] == ["europe-west1"]
    assert "NotFound" in (reported[0].error or "")
    notice = problem_notice(reported[0])
    assert notice.severity == "high"
    assert "does not exist" in notice.annotations["summary"] or "NotFound" in notice.annotations["summary"]


def test_a_passing_fault_is_failed_and_retried(standin: tuple[str, CloudRunState]) -> None:
    from google.api_core.exceptions import ServiceUnavailable

    class Unavailable:
        def read(self, region: str, service: str, *, timeout: float | None = None) -> LiveScaling:
            return LiveScaling(1, 100, '"1"')

        def apply(
            self, region: str, service: str, min_instances: int, max_instances: int, **_: object
        ) -> None:
            raise ServiceUnavailable("try later")

    store = MemoryDecisionStore()
    result, _ = cycle(AT, store, Unavailable())  # type: ignore[arg-type]
    assert sorted(result.failed) == ["europe-west1", "us-central1"]
    assert result.misconfigured == []
    assert store.load("us-central1").last_outcome == "failed"


@pytest.mark.parametrize(
    ("method", "code", "passes_at_once"),
    [("GET", 429, False), ("GET", 503, True), ("PATCH", 429, False), ("PATCH", 503, False)],
)
def test_the_api_answering_429_or_503_fails_that_region_only_and_the_retry_applies(
    standin: tuple[str, CloudRunState], method: str, code: int, passes_at_once: bool
) -> None:
    """The Cloud Run Admin API out of quota (429) or unavailable (503) for one region, on the read
    or the update: the client retries a read's 503 itself; otherwise the region is failed (a 503
    answer, the scheduler retries), the other region is applied, and the retry of the slot
    applies from the live values."""
    endpoint, state = standin
    state.faults.append((method, "us-central1", code))
    store = MemoryDecisionStore()
    scaler = CloudRunScaler(PROJECT, endpoint)
    result, _ = cycle(AT, store, scaler)
    outcomes = {r.decision.region: r.outcome for r in result.records}
    assert outcomes["europe-west1"] == "applied"
    assert result.misconfigured == []
    us = f"projects/{PROJECT}/locations/us-central1/services/persona-router"
    if passes_at_once:
        assert outcomes["us-central1"] == "applied"
        assert result.failed == []
        return
    assert outcomes["us-central1"] == "failed"
    assert result.failed == ["us-central1"]
    assert state.services[us]["scaling"]["minInstanceCount"] == 0  # nothing was set
    assert store.load("us-central1").state.min_instances is None
    retry, _ = cycle(AT + timedelta(seconds=20), store, scaler)
    assert [(r.decision.region, r.outcome) for r in retry.records] == [("us-central1", "applied")]
    assert retry.skipped == ["europe-west1"]
    assert retry.records[0].decision.previous_min == 0  # stepped from the live value
    assert state.services[us]["scaling"]["minInstanceCount"] == retry.records[0].decision.min_instances


def test_dry_run_records_without_applying(standin: tuple[str, CloudRunState]) -> None:
    _, state = standin
    store = MemoryDecisionStore()
    result, announced = cycle(AT, store, None)
    assert {r.outcome for r in result.records} == {"dry-run"}
    assert state.requests == []
    notice = notice_for(announced[0])
    assert notice.severity == "low"
    assert "would set" in notice.annotations["summary"]
    assert notice.labels["source"] == "scaling"


def test_http_on_the_emulators(fs, emulators, serve_capability, standin) -> None:  # type: ignore[no-untyped-def]
    from google.cloud import pubsub_v1

    endpoint, state = standin
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(PROJECT, "alerts")
    subscription = subscriber.subscription_path(PROJECT, f"scaling-test-{free_port()}")
    with contextlib.suppress(AlreadyExists):  # made by another test
        publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)
    # A firing rollback trigger for Europe, as the alert evaluation stores it.
    fs.collection("alert_states").document("f1").set(
        {"rule": "latency-p95-high", "state": "firing", "labels": {"region": "europe-west1"}}
    )
    live = serve_capability(
        "scaling",
        {
            "ION_SCALING_DRY_RUN": "false",
            "ION_SCALING_CLOUDRUN_ENDPOINT": endpoint,
            "ION_SCALING_SETTLE_SECONDS": "0",  # the schedule times below are past: no wait anyway
        },
    )
    # The scheduler's last refresh slot (every 5 minutes on the clock), then the minute after it.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    grid = now - timedelta(minutes=now.minute % 5 + 5)
    scheduled = {"X-CloudScheduler-ScheduleTime": grid.strftime("%Y-%m-%dT%H:%M:%SZ")}
    answer = requests.post(f"{live.url}/", headers=scheduled, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["dry_run"] is False
    decisions = {d["decision"]["region"]: d for d in body["decisions"]}
    assert set(decisions) == {"us-central1", "europe-west1", "asia-southeast1"}
    # No traffic recorded: the floors of the packaged rules, applied to the stand-in.
    assert decisions["us-central1"]["decision"]["forecast"]["method"] == "no-data"
    assert decisions["us-central1"]["decision"]["min_instances"] >= 2
    assert decisions["europe-west1"]["decision"]["guard_firing"] == ["latency-p95-high[europe-west1]"]
    assert decisions["us-central1"]["outcome"] == "applied"
    us_live = state.services[f"projects/{PROJECT}/locations/us-central1/services/persona-router"]["scaling"]
    assert us_live["minInstanceCount"] == decisions["us-central1"]["decision"]["min_instances"]
    again = requests.post(f"{live.url}/v1/scaling/run", json={}, headers=scheduled, timeout=60).json()
    assert sorted(again["skipped"]) == ["asia-southeast1", "europe-west1", "us-central1"]
    # The minute after: the forecast the refresh stored in Firestore is followed, not remade.
    minute = {"X-CloudScheduler-ScheduleTime": (grid + MINUTE).strftime("%Y-%m-%dT%H:%M:%SZ")}
    between = requests.post(f"{live.url}/", headers=minute, timeout=60).json()["decisions"]
    assert {d["decision"]["forecast_at"] for d in between} == {grid.isoformat().replace("+00:00", "Z")}
    assert {d["decision"]["forecast"]["method"] for d in between} == {"no-data"}
    assert {d["outcome"] for d in between} == {"unchanged"}
    view = requests.get(f"{live.url}/v1/scaling", timeout=30).json()
    assert view["regions"]["us-central1"]["min_instances"] == us_live["minInstanceCount"]
    assert [d["outcome"] for d in view["regions"]["us-central1"]["last_decisions"][:2]] == [
        "unchanged",
        "applied",
    ]
    stored = list(fs.collection("scaling_decisions").stream())
    assert len(stored) == 6
    assert all("expire_at" in doc.to_dict() for doc in stored)
    pulled = subscriber.pull(subscription=subscription, max_messages=10, timeout=20)
    notices = [json.loads(m.message.data) for m in pulled.received_messages]
    assert any(n["labels"].get("source") == "scaling" and n["severity"] == "low" for n in notices)
    assert requests.get(f"{live.url}/v1/scaling?region=mars", timeout=10).status_code == 404
    bad = requests.post(f"{live.url}/", json={"regions": ["mars"]}, timeout=10)
    assert bad.status_code == 422
    assert requests.post(f"{live.url}/", json={"region": "x"}, timeout=10).status_code == 422
    health = requests.get(f"{live.url}/health", timeout=30).json()
    assert health["checks"]["firestore"]["ok"] is True
    assert health["checks"]["rules"] == {"ok": True, "regions": 3}
    # The capacity job with no history: every horizon says so; the forecast is kept and served.
    job = requests.post(f"{live.url}/v1/capacity/run", timeout=60)
    assert job.status_code == 200, job.text
    us_capacity = job.json()["regions"]["us-central1"]
    assert [h["enough_history"] for h in us_capacity["horizons"]] == [False, False, False]
    assert "history too short: 0 days" in us_capacity["horizons"][0]["note"]
    served = requests.get(f"{live.url}/v1/capacity", timeout=30).json()["regions"]
    assert set(served) == {"us-central1", "europe-west1", "asia-southeast1"}


def test_firestore_store_one_decision_per_slot(fs) -> None:  # type: ignore[no-untyped-def]
    clock.set_clock(clock.FrozenClock(AT))
    store = FirestoreDecisionStore()
    history = MemoryHistory({"us-central1": RegionInputs(busy_history(6000.0, AT))})
    settings = ScalingSettings(ION_SCALING_CAPACITY_RPM=2000.0)
    kwargs = {
        "rules": RULES,
        "settings": settings,
        "history": history,
        "guard": MemoryGuard(),
        "scaler": None,
        "announce": lambda r: None,
        "regions": ["us-central1"],
    }
    first = run_cycle(at=AT, store=store, **kwargs)
    second = run_cycle(at=AT + timedelta(seconds=30), store=store, **kwargs)
    assert len(first.records) == 1
    assert second.skipped == ["us-central1"]
    third = run_cycle(at=AT + timedelta(minutes=5), store=store, **kwargs)
    assert len(third.records) == 1
    loaded = store.load("us-central1")
    assert [r.slot for r in loaded.recent] == ["20261130T1405Z", "20261130T1400Z"]
    assert len(loaded.state.recommendations) == 2


def test_targets_narrow_the_rules_to_their_regions_services_and_project(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from functions.scaling import main as scaling_main
    from functions.scaling.settings import get_scaling_settings

    monkeypatch.setenv(
        "ION_SCALING_TARGETS",
        "projects/ion-mentoring-prod/locations/europe-west1/services/persona-router-eu",
    )
    get_scaling_settings.cache_clear()
    try:
        rules = scaling_main._rules()
        assert list(rules.regions) == ["europe-west1"]
        assert rules.regions["europe-west1"].service == "persona-router-eu"
        assert scaling_main._target_project() == "ion-mentoring-prod"
    finally:
        get_scaling_settings.cache_clear()


@pytest.mark.parametrize(
    "value",
    [
        "persona-router",
        "projects/p/locations/us-central1/services/persona-router",  # project id too short
        "projects/ion-prod/locations/us-central1/services/a,projects/ion-prod/locations/us-central1/services/b",
    ],
)
def test_malformed_targets_are_refused_naming_the_variable(value: str) -> None:
    from shared.deployment import load_settings

    settings, problems = load_settings(lambda: ScalingSettings(ION_SCALING_TARGETS=value))
    assert settings is None
    assert problems[0].startswith("ION_SCALING_TARGETS")
