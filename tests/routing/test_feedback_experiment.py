"""Feedback in Firestore (emulator) and the Thompson-sampling experiment over weight sets."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from functions.routing.config import DEFAULT_WEIGHTS_FILE, load_weight_config
from functions.routing.experiment import Bandit
from functions.routing.feedback import FEEDBACK_COLLECTION, STATS_COLLECTION, Totals
from shared.firestore import get_route_firestore

pytestmark = pytest.mark.emulators


def routed(client: Any, **body: Any) -> dict[str, Any]:
    response = client.post("/v2/route", json={"resonance_key": "anxious-burst-seek_advice", **body})
    assert response.status_code == 200
    return response.get_json()


def test_feedback_is_stored_once_and_aggregated_per_persona(client: Any, fs: Any) -> None:
    first = routed(client)
    assert first["primary_persona"] == "Lua"
    created = client.post(
        "/v2/feedback", json={"request_id": first["request_id"], "helpful": True, "rating": 5}
    )
    assert created.status_code == 201
    assert created.get_json()["outcome"] == "created"
    assert created.get_json()["persona"] == "Lua"

    # The same answer again (a client retry) changes nothing.
    again = client.post(
        "/v2/feedback", json={"request_id": first["request_id"], "helpful": True, "rating": 5}
    )
    assert again.status_code == 200
    assert again.get_json()["outcome"] == "unchanged"

    second = routed(client)
    client.post("/v2/feedback", json={"request_id": second["request_id"], "helpful": False, "rating": 2})
    # A changed mind moves the totals by the difference.
    changed = client.post(
        "/v2/feedback", json={"request_id": second["request_id"], "helpful": True, "rating": 4}
    )
    assert changed.get_json()["outcome"] == "updated"

    totals = Totals.model_validate(
        get_route_firestore().collection(STATS_COLLECTION).document("persona:Lua").get().to_dict()
    )
    assert (totals.helpful, totals.not_helpful, totals.rating_sum, totals.rating_count) == (2, 0, 9, 2)
    stored = (
        get_route_firestore().collection(FEEDBACK_COLLECTION).document(second["request_id"]).get().to_dict()
    )
    assert stored["helpful"] is True
    assert stored["rating"] == 4
    assert stored["resonance_key"] == "anxious-burst-seek_advice"

    summary = client.get("/v2/feedback/summary").get_json()
    assert summary["personas"]["Lua"]["helpful_rate"] == 1.0
    assert summary["personas"]["Lua"]["mean_rating"] == 4.5
    assert summary["personas"]["Elro"]["answers"] == 0


def test_the_summary_reads_its_totals_by_id_not_every_experiment_ever_run(
    make_client: Any, fs: Any, query_reads: list[int]
) -> None:
    """Arm totals name nobody and are kept: a new experiment every week leaves hundreds. Before,
    the summary streamed the whole collection for the 4 personas and the current arms."""
    stats = get_route_firestore().collection(STATS_COLLECTION)
    batch = get_route_firestore().batch()
    for week in range(150):
        for arm in ("control", "candidate"):
            old = Totals(scope="arm", name=arm, experiment=f"weights-w{week}", helpful=week)
            batch.set(stats.document(f"arm:weights-w{week}:{arm}"), old.model_dump())
    batch.set(stats.document("persona:Riri"), Totals(scope="persona", name="Riri", helpful=3).model_dump())
    batch.set(
        stats.document("arm:weights-2026a:tone_heavy"),
        Totals(scope="arm", name="tone_heavy", experiment="weights-2026a", not_helpful=2).model_dump(),
    )
    batch.commit()

    client = make_client(ION_ROUTING_EXPERIMENT="true")
    query_reads[0] = 0
    summary = client.get("/v2/feedback/summary").get_json()
    assert query_reads[0] == 0  # read by id (4 personas, the current arms); before: 302 documents
    assert summary["personas"]["Riri"]["helpful"] == 3
    assert summary["personas"]["Lua"]["answers"] == 0
    arms = summary["experiment"]["arms"]
    assert set(arms) == set(load_weight_config(DEFAULT_WEIGHTS_FILE).experiment.arms)  # type: ignore[union-attr]
    assert arms["tone_heavy"]["not_helpful"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"request_id": "rq_made_up", "helpful": True}, "request_id"),
        ({"helpful": True}, "request_id"),
        ({"request_id": "x", "helpful": "very"}, "helpful"),
    ],
)
def test_bad_feedback_is_422_and_stores_nothing(
    client: Any, fs: Any, body: dict[str, Any], field: str
) -> None:
    response = client.post("/v2/feedback", json=body)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.get_json()["errors"]}
    assert list(get_route_firestore().collection(FEEDBACK_COLLECTION).stream()) == []


def test_rating_out_of_range_and_altered_ids_are_refused(client: Any, fs: Any) -> None:
    request_id = routed(client)["request_id"]
    assert (
        client.post("/v2/feedback", json={"request_id": request_id, "helpful": True, "rating": 6}).status_code
        == 422
    )
    tampered = request_id[:-2] + ("AA" if request_id[-2:] != "AA" else "BB")
    assert client.post("/v2/feedback", json={"request_id": tampered, "helpful": True}).status_code == 422
    assert list(get_route_firestore().collection(FEEDBACK_COLLECTION).stream()) == []


def test_health_reports_firestore_reachable(client: Any, fs: Any) -> None:
    body = client.get("/health").get_json()
    assert body["checks"]["firestore"]["ok"] is True
    assert body["serving"]["feedback"] is True


def test_feedback_store_down_is_503_not_500(make_client: Any) -> None:
    from devtools.processes import free_port

    client = make_client(FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{free_port()}")
    request_id = routed(client)["request_id"]
    response = client.post("/v2/feedback", json={"request_id": request_id, "helpful": True})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def _bandit(totals: dict[str, Totals] | None = None) -> Bandit:
    config = load_weight_config(DEFAULT_WEIGHTS_FILE)
    assert config.experiment is not None
    return Bandit(
        config.experiment,
        refresh_seconds=60,
        redis_client=lambda: None,
        read_totals=lambda _e, _a: totals or {},
    )


def test_thompson_sampling_favours_the_arm_users_find_helpful() -> None:
    good = Totals(scope="arm", name="tone_heavy", helpful=90, not_helpful=10)
    bad = Totals(scope="arm", name="baseline", helpful=10, not_helpful=90)
    bandit = _bandit({"tone_heavy": good, "baseline": bad})
    picks = Counter(bandit.arms[bandit.assign(None)] for _ in range(500))
    assert picks["tone_heavy"] > 400
    assert picks["baseline"] < 25
    # With no feedback at all every arm is explored.
    fresh = _bandit()
    assert set(Counter(fresh.arms[fresh.assign(None)] for _ in range(300))) == set(fresh.arms)


def test_assignment_is_sticky_per_user_and_deterministic_across_instances() -> None:
    one, two = _bandit(), _bandit()
    users = [f"user-{i}" for i in range(60)]
    first = [one.assign(u) for u in users]
    assert [one.assign(u) for u in users] == first
    assert [two.assign(u) for u in users] == first  # another instance, no shared store: same draw
    assert len(set(first)) == 3


@pytest.mark.redis
def test_experiment_mode_end_to_end(make_client: Any, fs: Any, redis_url: str) -> None:
    client = make_client(ION_ROUTING_EXPERIMENT="true")
    answers = [routed(client, user_id="ada") for _ in range(3)]
    arms = {a["experiment"]["arm"] for a in answers}
    assert len(arms) == 1  # sticky
    arm = arms.pop()
    assert answers[0]["experiment"]["name"] == "weights-2026a"
    assert answers[0]["weights"]["set"] == arm
    # The assignment is stored in Redis, so it survives the instance.
    import redis

    stored = redis.Redis.from_url(redis_url).keys("ion:routing:arm:weights-2026a:*")
    assert len(stored) == 1
    other = make_client(ION_ROUTING_EXPERIMENT="true")
    assert routed(other, user_id="ada")["experiment"]["arm"] == arm

    # Feedback is credited to the arm the request was served with, and the posterior moves.
    for answer in answers:
        response = other.post("/v2/feedback", json={"request_id": answer["request_id"], "helpful": True})
        assert response.get_json()["arm"] == arm
    summary = other.get("/v2/feedback/summary").get_json()["experiment"]
    assert summary["arms"][arm]["helpful"] == 3
    assert summary["arms"][arm]["posterior"] == {"alpha": 4, "beta": 1, "mean": 0.8}
    arm_totals = (
        get_route_firestore()
        .collection(STATS_COLLECTION)
        .document(f"arm:weights-2026a:{arm}")
        .get()
        .to_dict()
    )
    assert arm_totals["helpful"] == 3


def test_experiment_off_serves_the_reference_weights(client: Any) -> None:
    answer = routed(client, user_id="ada")
    assert answer["experiment"] is None
    assert answer["weights"]["set"] == "baseline"


def test_feedback_store_refusing_for_good_is_a_500_not_retry_later(make_client: Any) -> None:
    """PERMISSION_DENIED is a misconfiguration a retry cannot cure: a logged 500, no Retry-After."""
    from tests.grpc_refusing import refusing_grpc_server

    with refusing_grpc_server() as host:
        client = make_client(FIRESTORE_EMULATOR_HOST=host)
        request_id = routed(client)["request_id"]
        response = client.post("/v2/feedback", json={"request_id": request_id, "helpful": True})
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert "refused by the test server" not in response.get_data(as_text=True)
