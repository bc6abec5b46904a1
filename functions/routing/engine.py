"""The resonance router: key parsing, scoring, and the decision table of all 216 keys.

Scores follow ``persona_routing.json`` (the reference's 76 affinity values) exactly:
``score(p) = w_tone*tone[p] + w_pace*pace[p] + w_intent*intent[p]`` clamped to [0, 1], and
``confidence = clamp(0.3*(primary - secondary) + 0.7*primary, 0, 1)``. Arithmetic is done in
exact fractions so that ties are real ties (in floats 0.5*0.6 + 0.3*1.0 is not 0.6), and ties go
to the persona first in the order Lua, Elro, Riri, Nana.

Every decision is computed once per weight set when the table is built; a request only looks up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from functions.routing.config import Weights

REFERENCE_FILE = Path(__file__).resolve().parent / "persona_routing.json"
REFERENCE: dict[str, Any] = json.loads(REFERENCE_FILE.read_text())

PERSONAS: tuple[str, ...] = ("Lua", "Elro", "Riri", "Nana")
TONES: tuple[str, ...] = tuple(REFERENCE["tones"])
PACES: tuple[str, ...] = tuple(REFERENCE["paces"])
INTENTS: tuple[str, ...] = tuple(REFERENCE["intents"])
PARTS: dict[str, tuple[str, ...]] = {"tone": TONES, "pace": PACES, "intent": INTENTS}

# Spellings of intents seen in the wild, after lower-casing and turning '-' and ' ' into '_'.
INTENT_ALIASES: dict[str, str] = {
    "seeking_advice": "seek_advice",
    "advice": "seek_advice",
    "problem_solve": "problem_solving",
    "solving_problems": "problem_solving",
    "learn": "learning",
    "validate": "validation",
    "plan": "planning",
    "reflect": "reflection",
}

_AFFINITY: dict[str, dict[str, dict[str, Fraction]]] = {
    part: {
        value: {p: Fraction(str(score)) for p, score in row.items()}
        for value, row in REFERENCE[f"{part}_affinity"].items()
    }
    for part in PARTS
}

ZERO, ONE = Fraction(0), Fraction(1)


class InvalidKey(ValueError):
    """A resonance key that is not ``tone-pace-intent`` with known parts; ``errors`` say which."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(e["message"] for e in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ResonanceKey:
    tone: str
    pace: str
    intent: str

    def __str__(self) -> str:
        return f"{self.tone}-{self.pace}-{self.intent}"

    @property
    def index(self) -> int:
        """Position in the key space (0-215), tone-major, in the reference's orders."""
        return (TONES.index(self.tone) * len(PACES) + PACES.index(self.pace)) * len(INTENTS) + INTENTS.index(
            self.intent
        )


ALL_KEYS: tuple[ResonanceKey, ...] = tuple(
    ResonanceKey(t, p, i) for t in TONES for p in PACES for i in INTENTS
)


def _spellings() -> dict[str, ResonanceKey]:
    """Every accepted exact spelling of every key, for a one-lookup fast path."""
    lookup: dict[str, ResonanceKey] = {}
    intent_spellings: dict[str, list[str]] = {i: [i, i.replace("_", "-")] for i in INTENTS}
    for alias, intent in INTENT_ALIASES.items():
        intent_spellings[intent] += [alias, alias.replace("_", "-")]
    for key in ALL_KEYS:
        for spelling in intent_spellings[key.intent]:
            lookup[f"{key.tone}-{key.pace}-{spelling}"] = key
    return lookup


_LOOKUP = _spellings()


def parse_key(raw: str, field: str = "resonance_key") -> ResonanceKey:
    """Normalise a key (case, spaces, ``_``/``-`` in the intent, known aliases) or raise InvalidKey."""
    key = _LOOKUP.get(raw)
    if key is not None:
        return key
    parts = [part.strip() for part in raw.strip().lower().split("-", 2)]
    if len(parts) != 3 or not all(parts):
        raise InvalidKey(
            [
                {
                    "field": field,
                    "message": "expected tone-pace-intent, e.g. calm-flowing-seek_advice",
                    "type": "key_format",
                }
            ]
        )
    tone, pace, intent = parts[0], parts[1], parts[2].replace("-", "_").replace(" ", "_")
    intent = INTENT_ALIASES.get(intent, intent)
    errors = [
        {
            "field": f"{field}.{part}",
            "message": f"unknown {part} {value!r}; allowed: {', '.join(PARTS[part])}",
            "type": f"unknown_{part}",
            "allowed": list(PARTS[part]),
        }
        for part, value in (("tone", tone), ("pace", pace), ("intent", intent))
        if value not in PARTS[part]
    ]
    if errors:
        raise InvalidKey(errors)
    return ResonanceKey(tone, pace, intent)


@dataclass(frozen=True, slots=True)
class Decision:
    key: ResonanceKey
    key_text: str  # str(key), the spelling answers use
    key_index: int
    primary: str
    primary_index: int
    secondary: str
    confidence: float
    scores: dict[str, float]
    exact_scores: dict[str, Fraction]
    reasoning: str
    system_prompt: str


def exact_scores(key: ResonanceKey, weights: Weights) -> dict[str, Fraction]:
    w_tone, w_pace, w_intent = weights.exact()
    tone, pace, intent = (
        _AFFINITY["tone"][key.tone],
        _AFFINITY["pace"][key.pace],
        _AFFINITY["intent"][key.intent],
    )
    return {
        p: min(ONE, max(ZERO, w_tone * tone[p] + w_pace * pace[p] + w_intent * intent[p])) for p in PERSONAS
    }


def rank(scores: dict[str, Fraction]) -> list[str]:
    """Personas best first; Python's sort is stable, so equal scores keep Lua, Elro, Riri, Nana."""
    return sorted(PERSONAS, key=lambda p: scores[p], reverse=True)


def confidence_of(primary: Fraction, secondary: Fraction) -> Fraction:
    return min(ONE, max(ZERO, Fraction(3, 10) * (primary - secondary) + Fraction(7, 10) * primary))


def decide(key: ResonanceKey, weights: Weights) -> Decision:
    scores = exact_scores(key, weights)
    ranking = rank(scores)
    primary, secondary = ranking[0], ranking[1]
    confidence = confidence_of(scores[primary], scores[secondary])
    return Decision(
        key=key,
        key_text=str(key),
        key_index=key.index,
        primary=primary,
        primary_index=PERSONAS.index(primary),
        secondary=secondary,
        confidence=float(confidence),
        scores={p: float(scores[p]) for p in PERSONAS},
        exact_scores=scores,
        reasoning=_reasoning(key, weights, scores, ranking, confidence),
        system_prompt=system_prompt(primary, key),
    )


class DecisionTable:
    """All 216 decisions for one weight set, computed once."""

    def __init__(self, name: str, weights: Weights) -> None:
        self.name = name
        self.weights = weights
        self._by_key = {key: decide(key, weights) for key in ALL_KEYS}

    def __getitem__(self, key: ResonanceKey) -> Decision:
        return self._by_key[key]

    def __len__(self) -> int:
        return len(self._by_key)


def _fmt(value: Fraction) -> str:
    return f"{float(value):.4g}"


def _reasoning(
    key: ResonanceKey,
    weights: Weights,
    scores: dict[str, Fraction],
    ranking: list[str],
    confidence: Fraction,
) -> str:
    w_tone, w_pace, w_intent = weights.exact()
    primary, secondary = ranking[0], ranking[1]

    def terms(p: str) -> str:
        return (
            f"{_fmt(w_tone)}*{_fmt(_AFFINITY['tone'][key.tone][p])} (tone {key.tone}) + "
            f"{_fmt(w_pace)}*{_fmt(_AFFINITY['pace'][key.pace][p])} (pace {key.pace}) + "
            f"{_fmt(w_intent)}*{_fmt(_AFFINITY['intent'][key.intent][p])} (intent {key.intent})"
        )

    text = f"{primary} scores {_fmt(scores[primary])} = {terms(primary)}; "
    text += f"runner-up {secondary} scores {_fmt(scores[secondary])}"
    tied = [p for p in ranking[1:] if scores[p] == scores[primary]]
    if tied:
        text += f"; tie with {', '.join(tied)} goes to {primary}, first in the order Lua, Elro, Riri, Nana"
    text += (
        f". Confidence {_fmt(confidence)} = 0.3*({_fmt(scores[primary])} - {_fmt(scores[secondary])})"
        f" + 0.7*{_fmt(scores[primary])}."
    )
    return text


_TONE_GUIDANCE = {
    "frustrated": "acknowledge the frustration first, then remove one obstacle at a time",
    "playful": "match the light mood while still being useful",
    "anxious": "reassure, slow down and make the next step small and safe",
    "analytical": "be precise, show the reasoning and the evidence",
    "calm": "keep an even, unhurried tone",
    "curious": "feed the curiosity with the why as well as the how",
    "urgent": "lead with the fastest safe action, details after",
    "confused": "untangle the confusion: define terms, one idea at a time",
    "collaborative": "treat it as joint work and involve the people concerned",
}
_PACE_GUIDANCE = {
    "burst": "answer briefly, in short direct sentences",
    "flowing": "answer in connected prose that follows their train of thought",
    "contemplative": "give room for reflection; depth over speed",
    "medium": "use a moderate length with clear structure",
}
_INTENT_GUIDANCE = {
    "seek_advice": "they want a recommendation they can act on",
    "problem_solving": "they want a concrete problem solved",
    "learning": "they want to understand; teach the concept",
    "validation": "they want their work or idea checked honestly",
    "planning": "they want a plan with steps and order",
    "reflection": "they want to think back and draw lessons",
}


def _words(values: list[str]) -> str:
    return ", ".join(v.replace("_", " ") for v in values)


def system_prompt(persona: str, key: ResonanceKey) -> str:
    profile = REFERENCE["personas"][persona]
    return (
        f"You are {persona}, ION Mentoring's {profile['kind']}. "
        f"Your traits: {_words(profile['traits'])}. Your strengths: {_words(profile['strengths'])}. "
        f"Your style is {profile['prompt_style'].replace('_', ' ')}. "
        f"The user's message reads as {key.tone} in tone ({_TONE_GUIDANCE[key.tone]}), "
        f"{key.pace} in pace ({_PACE_GUIDANCE[key.pace]}), "
        f"with the intent {key.intent.replace('_', ' ')} ({_INTENT_GUIDANCE[key.intent]})."
    )


def user_prompt(message: str | None, context: list[tuple[str, str]], key: ResonanceKey) -> str:
    """The user turn: the recent context (oldest first) and the message to answer."""
    lines: list[str] = []
    if context:
        lines.append("Recent conversation (oldest first):")
        lines.extend(f"{role}: {content}" for role, content in context)
        lines.append("")
    if message:
        lines.append("Message to answer:")
        lines.append(message)
    else:
        lines.append(f"No message text was given; the request named the resonance key {key} only.")
    return "\n".join(lines)


# The user turn of a request that names only a key (no message, no context), by the key's text.
KEY_ONLY_PROMPTS: dict[str, str] = {str(key): user_prompt(None, [], key) for key in ALL_KEYS}


def persona_profiles() -> list[dict[str, Any]]:
    return [
        {"name": p, **REFERENCE["personas"][p], "keywords": REFERENCE["recommend_keywords_seen"][p]}
        for p in PERSONAS
    ]
