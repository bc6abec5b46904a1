"""The routing API through functions-framework's real app: answers, bulk, v1, recommend, errors."""

from __future__ import annotations

from typing import Any

import pytest

from functions.routing.models import RouteResponse
from tests.routing.test_engine import expected


def test_route_by_key_answers_the_contract(client: Any) -> None:
    response = client.post(
        "/v2/route",
        json={
            "resonance_key": "calm-flowing-seek-advice",
            "message": "Should I switch teams?",
            "context": [
                {"role": "user", "content": "I have been on this team two years."},
                {"role": "assistant", "content": "What keeps you there?"},
            ],
        },
    )
    assert response.status_code == 200
    body = response.get_json()
    RouteResponse.model_validate(body)
    want = expected("calm", "flowing", "seek_advice")
    assert body["resonance_key"] == "calm-flowing-seek_advice"
    assert body["primary_persona"] == want["primary"] == "Riri"
    assert body["secondary_persona"] == want["secondary"]
    assert body["confidence"] == float(want["confidence"])
    assert body["scores"] == {p: float(s) for p, s in want["scores"].items()}
    assert body["inferred"] == []
    assert body["request_id"].startswith("rq_")
    assert body["prompt"]["system"].startswith("You are Riri")
    user = body["prompt"]["user"]
    assert (
        user.index("I have been on this team")
        < user.index("What keeps you there?")
        < user.index("Should I switch teams?")
    )
    assert body["weights"] == {"set": "baseline", "version": 1}
    assert body["experiment"] is None


def test_route_by_message_reports_what_was_inferred(client: Any) -> None:
    response = client.post("/v2/route", json={"message": "Ugh this keeps crashing with an error!! fix it"})
    body = response.get_json()
    assert response.status_code == 200
    assert body["resonance_key"] == "frustrated-burst-problem_solving"
    assert body["inferred"] == ["tone", "pace", "intent"]
    assert body["inference"]["intent"]["evidence"]
    assert body["primary_persona"] == expected("frustrated", "burst", "problem_solving")["primary"]


def test_given_key_wins_over_the_message(client: Any) -> None:
    body = client.post(
        "/v2/route", json={"resonance_key": "urgent-burst-planning", "message": "I feel so calm today"}
    ).get_json()
    assert body["resonance_key"] == "urgent-burst-planning"
    assert body["inferred"] == []


def test_request_ids_are_unique(client: Any) -> None:
    ids = {
        client.post("/v2/route", json={"resonance_key": "calm-medium-learning"}).get_json()["request_id"]
        for _ in range(50)
    }
    assert len(ids) == 50


def test_unknown_part_is_422_naming_it_and_listing_allowed(client: Any) -> None:
    response = client.post("/v2/route", json={"resonance_key": "calm-sprint-learning"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert [e["field"] for e in body["errors"]] == ["resonance_key.pace"]
    assert body["errors"][0]["allowed"] == ["burst", "flowing", "contemplative", "medium"]
    assert "pace" in body["detail"]
    assert "sprint" in body["detail"]


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ('{"resonance_key": ', "application/json", 400),
        ("[]", "application/json", 422),
        ("{}", "application/json", 422),
        ('{"message": "   "}', "application/json", 422),
        ('{"resonance_key": 7}', "application/json", 422),
        ('{"resonance_key": "calm"}', "application/json", 422),
        ('{"resonance_key": "calm-flowing-learning", "colour": "red"}', "application/json", 422),
        ('{"resonance_key": "calm-flowing-learning"}', "text/plain", 415),
        ("resonance_key=calm-flowing-learning", "application/x-www-form-urlencoded", 415),
    ],
)
def test_bad_input_is_a_4xx_problem(client: Any, data: str, content_type: str, status: int) -> None:
    response = client.post("/v2/route", data=data, content_type=content_type)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == status


def test_wrong_method_is_405(client: Any) -> None:
    response = client.get("/v2/route")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_body_over_the_limit_is_413(make_client: Any) -> None:
    client = make_client(ION_MAX_BODY_BYTES="200")
    response = client.post("/v2/route", json={"message": "x" * 500})
    assert response.status_code == 413


def test_unknown_path_is_404_listing_paths(client: Any) -> None:
    response = client.get("/v3/route")
    assert response.status_code == 404
    assert "/v2/route" in response.get_json()["paths"]


def test_v1_keeps_the_original_shape(client: Any) -> None:
    response = client.post(
        "/v1/route", json={"user_input": "I'm worried about my exam tomorrow", "session": "x"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"content", "persona_used", "resonance_key", "confidence", "metadata"}
    tone, pace, intent = body["resonance_key"].split("-", 2)
    assert body["persona_used"] == expected(tone, pace, intent)["primary"]
    assert body["metadata"]["prompt"]["system"].startswith(f"You are {body['persona_used']}")
    assert body["metadata"]["inferred"] == ["tone", "pace", "intent"]
    assert response.headers["Deprecation"] == "true"


def test_v1_refuses_a_bad_key_instead_of_defaulting(client: Any) -> None:
    response = client.post("/v1/route", json={"resonance_key": "nonsense", "user_input": "hello"})
    assert response.status_code == 422


def test_bulk_answers_one_result_or_error_per_item_in_order(client: Any) -> None:
    items = [
        {"resonance_key": "analytical-medium-learning"},
        {"resonance_key": "analytical-medium-dancing"},
        {"message": "Help me plan our team roadmap together"},
        "not an object",
        {"message": "Help me plan our team roadmap together"},
        {},
    ]
    response = client.post("/v2/bulk", json={"items": items})
    assert response.status_code == 200
    body = response.get_json()
    assert [i["index"] for i in body["items"]] == list(range(6))
    assert [i["status"] for i in body["items"]] == [200, 422, 200, 422, 200, 422]
    assert (body["count"], body["succeeded"], body["failed"]) == (6, 3, 3)
    first = body["items"][0]["result"]
    assert first["primary_persona"] == expected("analytical", "medium", "learning")["primary"]
    assert body["items"][1]["error"]["errors"][0]["field"] == "resonance_key.intent"
    assert body["items"][2]["result"]["resonance_key"] == body["items"][4]["result"]["resonance_key"]
    assert body["items"][2]["result"]["inferred"] == ["tone", "pace", "intent"]


def test_bulk_limits(client: Any) -> None:
    assert client.post("/v2/bulk", json={"items": []}).status_code == 422
    too_many = client.post("/v2/bulk", json={"items": [{"resonance_key": "calm-medium-learning"}] * 1001})
    assert too_many.status_code == 422
    assert too_many.get_json()["errors"][0]["field"] == "items"
    full = client.post(
        "/v2/bulk",
        json={"items": [{"resonance_key": "calm-medium-learning"}] * 1000, "include_prompts": False},
    )
    assert full.status_code == 200
    assert full.get_json()["succeeded"] == 1000
    assert full.get_json()["items"][999]["result"]["prompt"] is None


def test_recommend(client: Any) -> None:
    response = client.post(
        "/v2/recommend", json={"scenario": "We must coordinate the teams and document the process"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["recommended_persona"] == "Nana"
    assert body["capabilities"]["Nana"]["strengths"]
    assert client.post("/v2/recommend", json={"scenario": ""}).status_code == 422
    assert client.post("/v2/recommend", json={}).status_code == 422


def test_personas(client: Any) -> None:
    body = client.get("/v2/personas").get_json()
    assert [p["name"] for p in body["personas"]] == ["Lua", "Elro", "Riri", "Nana"]
    assert body["tie_order"] == ["Lua", "Elro", "Riri", "Nana"]
    assert body["weights"]["sets"]["baseline"] == {"tone": 0.5, "pace": 0.3, "intent": 0.2}
    assert client.post("/v2/personas").status_code == 405
