"""Infer a resonance key from a message with a small lexicon and a few structural measures.

Deliberately simple and explainable: every part comes with the cues that decided it, so a wrong
guess can be traced to a word list entry or a threshold here, and fixed with a test.

- tone: the tone whose cue words occur most often (ties: the reference's order of tones);
  "!!" and ALL-CAPS words add an urgent cue. No cue at all reads as calm.
- pace: from length and sentence structure (word count, words per sentence, "!" count,
  reflective phrases, connectives): burst, contemplative, flowing, else medium.
- intent: the intent whose cue phrases occur most often (ties: the reference's order).
  No cue at all reads as seek_advice: a message sent to a mentor asks for advice by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from functions.routing.engine import INTENTS, TONES, ResonanceKey

_TONE_CUES: dict[str, list[str]] = {
    "frustrated": [
        r"frustrat\w*",
        r"annoy\w*",
        r"ugh+",
        r"argh+",
        r"fed up",
        r"sick of",
        r"hate",
        r"stuck",
        r"(?:doesn't|does not|won't|still not|nothing) work\w*",
        r"waste of time",
        r"give up",
    ],
    "playful": [
        r"haha\w*",
        r"lol",
        r"lmao",
        r"fun",
        r"funny",
        r"joke\w*",
        r"silly",
        r"game\w*",
        r"play\w*",
        r":\)",
        r":d",
        r"😄",
        r"😂",
        r"😉",
    ],
    "anxious": [
        r"worr\w*",
        r"anxious",
        r"anxiety",
        r"nervous",
        r"scared",
        r"afraid",
        r"panic\w*",
        r"stress\w*",
        r"overwhelm\w*",
        r"fear\w*",
        r"what if i fail",
    ],
    "analytical": [
        r"analy[sz]\w*",
        r"data",
        r"metric\w*",
        r"measur\w*",
        r"compar\w*",
        r"evidence",
        r"statistic\w*",
        r"benchmark\w*",
        r"trade-?offs?",
        r"quantif\w*",
        r"percent\w*",
        r"numbers",
    ],
    "calm": [r"calm\w*", r"no rush", r"no hurry", r"whenever", r"relax\w*", r"steady", r"at my own pace"],
    "curious": [
        r"curious",
        r"wonder\w*",
        r"interest\w*",
        r"fascinat\w*",
        r"how does",
        r"why does",
        r"why do",
        r"what if",
        r"explor\w*",
    ],
    "urgent": [
        r"urgent\w*",
        r"asap",
        r"immediately",
        r"right now",
        r"deadline\w*",
        r"emergency",
        r"quickly",
        r"hurry",
        r"critical",
        r"blocking",
        r"in an hour",
        r"by tomorrow",
    ],
    "confused": [
        r"confus\w*",
        r"(?:don't|do not|can't|cannot) understand",
        r"unclear",
        r"lost",
        r"makes no sense",
        r"(?:doesn't|does not) make sense",
        r"puzzl\w*",
        r"huh",
        r"what does \w+ mean",
    ],
    "collaborative": [
        r"we",
        r"our",
        r"us",
        r"team\w*",
        r"together",
        r"collaborat\w*",
        r"colleague\w*",
        r"everyone",
        r"pair(?:ing)?",
    ],
}

_INTENT_CUES: dict[str, list[str]] = {
    "seek_advice": [
        r"should i",
        r"advice",
        r"advise",
        r"recommend\w*",
        r"suggest\w*",
        r"what would you",
        r"any tips",
        r"tips",
        r"guidance",
        r"help me decide",
        r"which (?:one|option)",
    ],
    "problem_solving": [
        r"fix\w*",
        r"error\w*",
        r"bug\w*",
        r"solv\w*",
        r"issue\w*",
        r"broken",
        r"debug\w*",
        r"crash\w*",
        r"fail\w*",
        r"not working",
        r"(?:doesn't|does not) work",
        r"exception\w*",
        r"troubleshoot\w*",
        r"workaround",
    ],
    "learning": [
        r"learn\w*",
        r"understand\w*",
        r"explain\w*",
        r"teach\w*",
        r"how does",
        r"what is",
        r"what are",
        r"tutorial\w*",
        r"concept\w*",
        r"study\w*",
        r"basics",
    ],
    "validation": [
        r"is this (?:right|correct|ok|okay|good)",
        r"does this look",
        r"am i (?:right|doing)",
        r"review\w*",
        r"check my",
        r"feedback on",
        r"sanity check",
        r"validat\w*",
        r"looks? right",
    ],
    "planning": [
        r"plan\w*",
        r"roadmap\w*",
        r"schedul\w*",
        r"next steps",
        r"timeline\w*",
        r"organi[sz]\w*",
        r"prioriti[sz]\w*",
        r"milestone\w*",
        r"strateg\w*",
        r"goals?",
    ],
    "reflection": [
        r"reflect\w*",
        r"looking back",
        r"i reali[sz]ed",
        r"lessons?",
        r"retrospective\w*",
        r"in hindsight",
        r"i've been thinking",
        r"i have been thinking",
        r"journal\w*",
        r"grateful",
    ],
}

_REFLECTIVE = re.compile(
    r"\b(?:i've been thinking|i have been thinking|i wonder|wondering|perhaps|maybe|ponder\w*|"
    r"reflect\w*|looking back|in hindsight)\b|\.\.\.|…"
)
_CONNECTIVES = re.compile(r"\b(?:and|then|so|because|which|while|after|before|but)\b")
_SENTENCE_END = re.compile(r"[.!?…]+")
_WORD = re.compile(r"[\w']+")
_SHOUT = re.compile(r"\b[A-Z]{3,}\b")


def _compile(cues: dict[str, list[str]]) -> dict[str, re.Pattern[str]]:
    # Cues are whole words or phrases; emoticons have no word boundary, so they are matched bare.
    return {
        label: re.compile("|".join(rf"(?<!\w){cue}(?!\w)" if cue[0].isalnum() else cue for cue in patterns))
        for label, patterns in cues.items()
    }


_TONE_RE = _compile(_TONE_CUES)
_INTENT_RE = _compile(_INTENT_CUES)

# Structural thresholds of the pace rules (documented in the README).
BURST_MAX_WORDS = 6
BURST_MIN_EXCLAMATIONS = 2
CHOPPY_MAX_WORDS_PER_SENTENCE = 5
CONTEMPLATIVE_MIN_WORDS = 15
CONTEMPLATIVE_WORDS_PER_SENTENCE = 25
FLOWING_MIN_WORDS = 40
FLOWING_MIN_SENTENCES = 3
FLOWING_MIN_CONNECTIVES = 3


@dataclass(frozen=True, slots=True)
class PartInference:
    value: str
    evidence: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"value": self.value, "evidence": self.evidence}


@dataclass(frozen=True, slots=True)
class Inference:
    tone: PartInference
    pace: PartInference
    intent: PartInference

    @property
    def key(self) -> ResonanceKey:
        return ResonanceKey(self.tone.value, self.pace.value, self.intent.value)

    def as_dict(self) -> dict[str, object]:
        return {"tone": self.tone.as_dict(), "pace": self.pace.as_dict(), "intent": self.intent.as_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, object]]) -> Inference:
        def part(name: str) -> PartInference:
            raw = data[name]
            return PartInference(str(raw["value"]), [str(e) for e in raw["evidence"]])  # type: ignore[union-attr]

        return cls(part("tone"), part("pace"), part("intent"))


def normalise(message: str) -> str:
    """What inference reads: lower case, curly quotes straightened, whitespace collapsed."""
    text = message.replace("\u2019", "'").replace("\u2018", "'").lower()
    return " ".join(text.split())


def _by_cues(text: str, patterns: dict[str, re.Pattern[str]], order: tuple[str, ...]) -> dict[str, list[str]]:
    return {label: patterns[label].findall(text) for label in order}


def infer_tone(text: str, original: str) -> PartInference:
    hits = _by_cues(text, _TONE_RE, TONES)
    if "!!" in original:
        hits["urgent"].append("!!")
    shouted = _SHOUT.findall(original)
    if shouted:
        hits["urgent"].append(f"capitals: {shouted[0]}")
    best = max(TONES, key=lambda t: len(hits[t]))  # max keeps the first of equals: reference order
    if not hits[best]:
        return PartInference("calm", ["no tone cue found; neutral text reads as calm"])
    return PartInference(best, [f"cue: {cue}" for cue in hits[best]])


def infer_pace(text: str, original: str) -> PartInference:
    words = len(_WORD.findall(text))
    sentences = max(1, len([s for s in _SENTENCE_END.split(text) if s.strip()]))
    per_sentence = words / sentences
    exclamations = original.count("!")
    figures = f"{words} words, {sentences} sentences, {per_sentence:.1f} words per sentence"
    if words <= BURST_MAX_WORDS:
        return PartInference("burst", [f"short: {figures}"])
    if exclamations >= BURST_MIN_EXCLAMATIONS:
        return PartInference("burst", [f"{exclamations} exclamation marks; {figures}"])
    if sentences >= 2 and per_sentence <= CHOPPY_MAX_WORDS_PER_SENTENCE:
        return PartInference("burst", [f"choppy fragments: {figures}"])
    reflective = _REFLECTIVE.findall(text)
    if reflective and words >= CONTEMPLATIVE_MIN_WORDS:
        return PartInference("contemplative", [f"reflective: {', '.join(reflective)}; {figures}"])
    if per_sentence >= CONTEMPLATIVE_WORDS_PER_SENTENCE:
        return PartInference("contemplative", [f"long sentences: {figures}"])
    connectives = len(_CONNECTIVES.findall(text))
    if (
        words >= FLOWING_MIN_WORDS
        and sentences >= FLOWING_MIN_SENTENCES
        and connectives >= FLOWING_MIN_CONNECTIVES
    ):
        return PartInference("flowing", [f"connected sentences ({connectives} connectives): {figures}"])
    return PartInference("medium", [f"no burst, reflective or flowing pattern: {figures}"])


def infer_intent(text: str) -> PartInference:
    hits = _by_cues(text, _INTENT_RE, INTENTS)
    best = max(INTENTS, key=lambda i: len(hits[i]))
    if not hits[best]:
        return PartInference("seek_advice", ["no intent cue found; a message to a mentor seeks advice"])
    return PartInference(best, [f"cue: {cue}" for cue in hits[best]])


def infer(message: str) -> Inference:
    text = normalise(message)
    return Inference(infer_tone(text, message), infer_pace(text, message), infer_intent(text))


def persona_keyword_hits(text: str, keywords: dict[str, re.Pattern[str]]) -> dict[str, list[str]]:
    return {persona: pattern.findall(text) for persona, pattern in keywords.items()}


def compile_keywords(cues: dict[str, list[str]]) -> dict[str, re.Pattern[str]]:
    return _compile(cues)
