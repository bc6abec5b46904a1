"""The router against the reference: every one of the 216 keys, ties, confidence, spellings."""

from __future__ import annotations

import json
from decimal import Decimal
from itertools import product

import pytest

from functions.routing.config import DEFAULT_WEIGHTS_FILE, Weights, load_weight_config
from functions.routing.engine import (
    ALL_KEYS,
    PERSONAS,
    REFERENCE_FILE,
    DecisionTable,
    InvalidKey,
    ResonanceKey,
    parse_key,
)
from tests.routing.conftest import SHARED_REFERENCE, load_reference

REF = load_reference()
ORDER = ["Lua", "Elro", "Riri", "Nana"]


def expected(tone: str, pace: str, intent: str, weights: dict[str, float] | None = None) -> dict:
    """The reference formula, computed here in decimal arithmetic, independently of the engine."""
    w = {k: Decimal(str(v)) for k, v in (weights or REF["weights"]).items()}
    scores = {}
    for p in ORDER:
        raw = (
            w["tone"] * Decimal(str(REF["tone_affinity"][tone][p]))
            + w["pace"] * Decimal(str(REF["pace_affinity"][pace][p]))
            + w["intent"] * Decimal(str(REF["intent_affinity"][intent][p]))
        )
        scores[p] = min(Decimal(1), max(Decimal(0), raw))
    best = max(scores.values())
    primary = next(p for p in ORDER if scores[p] == best)  # ties: first in Lua, Elro, Riri, Nana
    rest = [p for p in ORDER if p != primary]
    second_best = max(scores[p] for p in rest)
    secondary = next(p for p in rest if scores[p] == second_best)
    confidence = min(
        Decimal(1),
        max(
            Decimal(0),
            Decimal("0.3") * (scores[primary] - scores[secondary]) + Decimal("0.7") * scores[primary],
        ),
    )
    return {"primary": primary, "secondary": secondary, "scores": scores, "confidence": confidence}


@pytest.fixture(scope="module")
def baseline() -> DecisionTable:
    config = load_weight_config(DEFAULT_WEIGHTS_FILE)
    return DecisionTable("baseline", config.weight_sets[config.default].weights)


def test_reference_data_is_the_shared_reference_and_has_76_affinity_values() -> None:
    shipped = json.loads(REFERENCE_FILE.read_text())
    if SHARED_REFERENCE.exists():
        assert shipped == json.loads(SHARED_REFERENCE.read_text())
    values = sum(
        len(row) for part in ("tone", "pace", "intent") for row in shipped[f"{part}_affinity"].values()
    )
    # 9 tones + 4 paces + 6 intents, 4 personas each = 76 values.
    assert values == (9 + 4 + 6) * 4 == 76
    assert len(ALL_KEYS) == len(set(ALL_KEYS)) == 216


def test_default_weights_are_the_reference_50_30_20() -> None:
    config = load_weight_config(DEFAULT_WEIGHTS_FILE)
    assert config.weight_sets[config.default].weights.model_dump() == REF["weights"]


@pytest.mark.parametrize(
    ("tone", "pace", "intent"), list(product(REF["tones"], REF["paces"], REF["intents"]))
)
def test_every_key_matches_the_reference(baseline: DecisionTable, tone: str, pace: str, intent: str) -> None:
    want = expected(tone, pace, intent)
    got = baseline[parse_key(f"{tone}-{pace}-{intent}")]
    assert got.primary == want["primary"]
    assert got.secondary == want["secondary"]
    assert got.confidence == float(want["confidence"])
    assert got.scores == {p: float(s) for p, s in want["scores"].items()}


def test_ties_go_to_lua_then_elro_then_riri_then_nana(baseline: DecisionTable) -> None:
    tied_keys = []
    for key in ALL_KEYS:
        want = expected(key.tone, key.pace, key.intent)
        top = max(want["scores"].values())
        tied = [p for p in ORDER if want["scores"][p] == top]
        if len(tied) > 1:
            tied_keys.append(key)
            assert baseline[key].primary == tied[0]
            assert baseline[key].secondary == tied[1]
            assert "tie with" in baseline[key].reasoning
    # The reference has real ties; exact arithmetic finds them where floats would not
    # (Nana's 0.5*1.0 + 0.3*0.6 + 0.2*0.6 is 0.7999999999999999 in floats, Lua's 0.8).
    assert len(tied_keys) == 7
    assert 0.5 * 1.0 + 0.3 * 0.6 + 0.2 * 0.6 != 0.8
    exact = baseline[parse_key("collaborative-burst-reflection")]
    assert exact.scores["Lua"] == exact.scores["Nana"] == 0.8
    two_way = baseline[parse_key("curious-flowing-seek_advice")]
    assert two_way.scores["Elro"] == two_way.scores["Riri"] == 0.86
    assert (two_way.primary, two_way.secondary) == ("Elro", "Riri")
    three_way = baseline[parse_key("curious-burst-planning")]
    assert three_way.scores["Elro"] == three_way.scores["Riri"] == three_way.scores["Nana"]
    assert (three_way.primary, three_way.secondary) == ("Elro", "Riri")
    lua_nana = baseline[parse_key("confused-burst-problem_solving")]
    assert (lua_nana.primary, lua_nana.secondary) == ("Lua", "Nana")


def test_confidence_formula_by_hand(baseline: DecisionTable) -> None:
    # calm-flowing-seek_advice: Riri 0.5*1.0+0.3*0.9+0.2*0.7 = 0.91, Elro 0.5*1.0+0.3*0.8+0.2*0.6 = 0.86
    decision = baseline[parse_key("calm-flowing-seek_advice")]
    assert (decision.primary, decision.secondary) == ("Riri", "Elro")
    assert decision.scores == {"Lua": 0.8, "Elro": 0.86, "Riri": 0.91, "Nana": 0.78}
    assert decision.confidence == pytest.approx(0.3 * (0.91 - 0.86) + 0.7 * 0.91)


def test_other_weight_sets_follow_the_same_formula() -> None:
    config = load_weight_config(DEFAULT_WEIGHTS_FILE)
    for name, weight_set in config.weight_sets.items():
        table = DecisionTable(name, weight_set.weights)
        for key in ALL_KEYS[::7]:
            want = expected(key.tone, key.pace, key.intent, weight_set.weights.model_dump())
            assert table[key].primary == want["primary"], (name, key)
            assert table[key].confidence == float(want["confidence"]), (name, key)


@pytest.mark.parametrize(
    "spelling",
    [
        "calm-flowing-seek_advice",
        "calm-flowing-seek-advice",
        "calm-flowing-seeking_advice",
        "calm-flowing-seeking-advice",
        "  Calm-FLOWING-Seek-Advice ",
        "calm - flowing - seek advice",
    ],
)
def test_intent_spellings_normalise_to_one_key(spelling: str) -> None:
    assert parse_key(spelling) == ResonanceKey("calm", "flowing", "seek_advice")
    assert str(parse_key(spelling)) == "calm-flowing-seek_advice"


def test_problem_solving_with_hyphen() -> None:
    assert str(parse_key("urgent-burst-problem-solving")) == "urgent-burst-problem_solving"


def test_unknown_parts_are_named_with_allowed_values() -> None:
    with pytest.raises(InvalidKey) as caught:
        parse_key("happy-flowing-dance")
    fields = {e["field"]: e for e in caught.value.errors}
    assert set(fields) == {"resonance_key.tone", "resonance_key.intent"}
    assert fields["resonance_key.tone"]["allowed"] == REF["tones"]
    assert fields["resonance_key.intent"]["allowed"] == REF["intents"]


@pytest.mark.parametrize("bad", ["calm", "calm-flowing", "--", "calm--learning", ""])
def test_malformed_keys_are_refused_never_defaulted(bad: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        parse_key(bad)
    assert caught.value.errors[0]["field"].startswith("resonance_key")


def test_weights_must_add_up_to_one() -> None:
    with pytest.raises(ValueError, match="add up to 1"):
        Weights(tone=0.5, pace=0.3, intent=0.3)
    assert Weights(tone=0.6, pace=0.25, intent=0.15)


def test_key_index_round_trips() -> None:
    for index, key in enumerate(ALL_KEYS):
        assert key.index == index
    assert tuple(ORDER) == PERSONAS
