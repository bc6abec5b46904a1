"""Recommend a persona for a scenario: what the scenario is about, and how it reads.

Two explainable signals, blended: the share of each persona's domain keywords in the scenario
(the reference's ``recommend_keywords_seen`` grown into small stem lists), and the router's score
for the resonance key inferred from the scenario's text. With no keyword at all, the router's
scores decide alone.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from functions.routing.engine import PERSONAS, REFERENCE, DecisionTable, confidence_of, rank
from functions.routing.inference import compile_keywords, infer, normalise, persona_keyword_hits

KEYWORD_WEIGHT = Fraction(6, 10)
ROUTING_WEIGHT = 1 - KEYWORD_WEIGHT

_KEYWORDS = compile_keywords(
    {
        "Lua": [
            r"emotion\w*",
            r"creativ\w*",
            r"empath\w*",
            r"feel\w*",
            r"motivat\w*",
            r"encourag\w*",
            r"burn-?out",
            r"confidence",
            r"inspir\w*",
            r"ideas?",
            r"support\w*",
            r"morale",
        ],
        "Elro": [
            r"technical",
            r"logic\w*",
            r"structur\w*",
            r"architect\w*",
            r"design\w*",
            r"code",
            r"coding",
            r"systems?",
            r"patterns?",
            r"api",
            r"refactor\w*",
            r"algorithm\w*",
            r"implement\w*",
        ],
        "Riri": [
            r"analy[sz]\w*",
            r"data",
            r"objective\w*",
            r"metric\w*",
            r"measur\w*",
            r"quality",
            r"test\w*",
            r"verif\w*",
            r"statistic\w*",
            r"experiment\w*",
            r"insights?",
            r"dashboards?",
        ],
        "Nana": [
            r"collaborat\w*",
            r"teams?",
            r"coordinat\w*",
            r"process\w*",
            r"document\w*",
            r"meetings?",
            r"stakeholders?",
            r"projects?",
            r"organi[sz]\w*",
            r"align\w*",
            r"onboard\w*",
            r"hand-?offs?",
        ],
    }
)


def recommend(scenario: str, table: DecisionTable) -> dict[str, Any]:
    inference = infer(scenario)
    decision = table[inference.key]
    hits = persona_keyword_hits(normalise(scenario), _KEYWORDS)
    total = sum(len(found) for found in hits.values())
    scores: dict[str, Fraction] = {}
    for persona in PERSONAS:
        routed = decision.exact_scores[persona]
        if total:
            share = Fraction(len(hits[persona]), total)
            scores[persona] = KEYWORD_WEIGHT * share + ROUTING_WEIGHT * routed
        else:
            scores[persona] = routed
    ranking = rank(scores)
    primary, secondary = ranking[0], ranking[1]
    return {
        "recommended_persona": primary,
        "alternative_persona": secondary,
        "confidence": float(confidence_of(scores[primary], scores[secondary])),
        "scores": {p: round(float(scores[p]), 6) for p in PERSONAS},
        "ranking": ranking,
        "matched_keywords": hits,
        "resonance_key": str(inference.key),
        "inference": inference.as_dict(),
        "method": (
            f"{float(KEYWORD_WEIGHT):g} * keyword share + {float(ROUTING_WEIGHT):g} * routing score"
            if total
            else "no domain keyword found: routing score of the inferred key"
        ),
        "capabilities": {
            p: {
                "kind": REFERENCE["personas"][p]["kind"],
                "strengths": REFERENCE["personas"][p]["strengths"],
                "traits": REFERENCE["personas"][p]["traits"],
            }
            for p in PERSONAS
        },
    }
