"""Lexicon inference of tone, pace and intent: each rule, and the evidence it reports."""

from __future__ import annotations

import pytest

from functions.routing.config import DEFAULT_WEIGHTS_FILE, load_weight_config
from functions.routing.engine import DecisionTable
from functions.routing.inference import infer
from functions.routing.recommend import recommend


@pytest.mark.parametrize(
    ("message", "tone"),
    [
        ("Ugh, I'm so frustrated, this build is stuck again", "frustrated"),
        ("haha this is a fun little game, lol", "playful"),
        ("I'm really worried and nervous about the interview", "anxious"),
        ("Let's compare the metrics and look at the data before deciding", "analytical"),
        ("No rush at all, whenever you have time", "calm"),
        ("I'm curious, I wonder why does the cache behave like that", "curious"),
        ("This is urgent, the deadline is right now and prod is blocking", "urgent"),
        ("I'm confused, this makes no sense and I don't understand it", "confused"),
        ("Our team wants to work on this together with everyone", "collaborative"),
        ("The meeting is at noon in room four", "calm"),
    ],
)
def test_tone(message: str, tone: str) -> None:
    assert infer(message).tone.value == tone


def test_shouting_and_double_bangs_read_urgent() -> None:
    result = infer("SERVER DOWN need this back!!")
    assert result.tone.value == "urgent"
    assert any("capitals" in e for e in result.tone.evidence)


def test_no_tone_cue_says_so() -> None:
    result = infer("The meeting is at noon in room four")
    assert result.tone.evidence == ["no tone cue found; neutral text reads as calm"]


@pytest.mark.parametrize(
    ("message", "pace"),
    [
        ("help pls", "burst"),
        ("This is broken again! Fix it now! Please!", "burst"),
        ("Deploy failed. Logs empty. Retried. Same.", "burst"),
        (
            "I've been thinking about whether my career is heading in the right direction, "
            "perhaps it is time for a change",
            "contemplative",
        ),
        (
            "When I look at the way the service has grown over the last three years I can see that "
            "almost every decision we made was reasonable at the time it was made",
            "contemplative",
        ),
        (
            "I started the migration on Monday and it went well. Then the tests broke because the "
            "schema changed, so I rolled back. After that I rewrote the script and ran it again, "
            "but the staging data was stale. Now I want to try once more with fresh data.",
            "flowing",
        ),
        ("Can you tell me how to structure the service layer for this project?", "medium"),
    ],
)
def test_pace(message: str, pace: str) -> None:
    assert infer(message).pace.value == pace


def test_pace_evidence_reports_the_figures() -> None:
    evidence = infer("Can you tell me how to structure the service layer for this project?").pace.evidence
    assert "13 words" in evidence[0]
    assert "1 sentences" in evidence[0]


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("What should I do, any advice on picking a mentor?", "seek_advice"),
        ("The app crashes with an error when I debug it, how do I fix it", "problem_solving"),
        ("Can you explain what is a monad? I want to learn the concept", "learning"),
        ("Is this right? Please review and check my proof", "validation"),
        ("Help me plan the roadmap and the milestones for Q3", "planning"),
        ("Looking back, I realized the lesson was to ask earlier", "reflection"),
        ("The meeting is at noon in room four", "seek_advice"),
    ],
)
def test_intent(message: str, intent: str) -> None:
    assert infer(message).intent.value == intent


def test_evidence_names_the_cues_found() -> None:
    result = infer("Help me plan the roadmap and the milestones for Q3")
    assert result.intent.evidence == ["cue: plan", "cue: roadmap", "cue: milestones"]


def test_curly_apostrophes_match_like_straight_ones() -> None:
    assert infer("I don\u2019t understand this at all, it is unclear").tone.value == "confused"


def test_inference_is_a_valid_key_and_round_trips_through_a_dict() -> None:
    from functions.routing.inference import Inference

    result = infer("We need to plan our sprint together")
    assert str(result.key) == f"{result.tone.value}-{result.pace.value}-{result.intent.value}"
    assert Inference.from_dict(result.as_dict()) == result


@pytest.fixture(scope="module")
def table() -> DecisionTable:
    config = load_weight_config(DEFAULT_WEIGHTS_FILE)
    return DecisionTable("baseline", config.weight_sets[config.default].weights)


@pytest.mark.parametrize(
    ("scenario", "persona"),
    [
        ("I need help designing the system architecture and the code structure of our API", "Elro"),
        ("We want to analyse the data and the metrics to verify quality objectively", "Riri"),
        ("Coordinating stakeholders across teams, meetings and documentation for the project", "Nana"),
        ("I feel burned out and need encouragement and emotional support to find creative ideas", "Lua"),
    ],
)
def test_recommend_follows_the_domain_keywords(table: DecisionTable, scenario: str, persona: str) -> None:
    result = recommend(scenario, table)
    assert result["recommended_persona"] == persona
    assert result["matched_keywords"][persona]
    assert set(result["capabilities"]) == {"Lua", "Elro", "Riri", "Nana"}
    assert result["scores"][persona] == max(result["scores"].values())


def test_recommend_without_keywords_uses_the_routing_scores(table: DecisionTable) -> None:
    result = recommend("The weather is nice at noon today", table)
    decision = table[infer("The weather is nice at noon today").key]
    assert result["recommended_persona"] == decision.primary
    assert result["method"].startswith("no domain keyword")
