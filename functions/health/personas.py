"""Persona satisfaction per week and persona-mix drift: pure functions over counts.

Drift is tested two ways each week: the mix of routed requests against the configured expected
mix (chi-square goodness of fit) and against the same traffic's own previous ``baseline_weeks``
(chi-square homogeneity), each with the Jensen-Shannon distance between the shares. A shift is
alerted only when it is both significant (p < ``significance``) and large (distance >=
``min_js_distance``): with 100,000 requests a day every wobble is significant, with 1,000 a real
shift may not be; the pair keeps both cases quiet unless the mix really moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel

from functions.health.config import Personas
from functions.health.stats import chi2_goodness_of_fit, chi2_homogeneity, js_distance, mean_interval, wilson


class Answer(BaseModel):
    persona: str
    helpful: bool
    rating: int | None = None


class Satisfaction(BaseModel):
    persona: str
    answers: int
    helpful_share: float | None
    helpful_ci: tuple[float, float] | None
    ratings: int
    mean_rating: float | None
    rating_ci: tuple[float, float] | None


class DriftTest(BaseModel):
    against: str
    requests: int
    shares: dict[str, float]
    reference: dict[str, float]
    chi_square: float | None
    p_value: float | None
    js_distance: float | None
    significant: bool
    large: bool
    drift: bool
    note: str = ""


def satisfaction(answers: Iterable[Answer], personas: Sequence[str]) -> list[Satisfaction]:
    by: dict[str, list[Answer]] = {p: [] for p in personas}
    for answer in answers:
        by.setdefault(answer.persona, []).append(answer)
    out: list[Satisfaction] = []
    for persona, items in by.items():
        helpful = sum(1 for a in items if a.helpful)
        ratings: dict[int, float] = {}
        for a in items:
            if a.rating is not None:
                ratings[a.rating] = ratings.get(a.rating, 0) + 1
        interval = wilson(helpful, len(items))
        mean = mean_interval(ratings)
        out.append(
            Satisfaction(
                persona=persona,
                answers=len(items),
                helpful_share=round(helpful / len(items), 4) if items else None,
                helpful_ci=(round(interval[0], 4), round(interval[1], 4)) if interval else None,
                ratings=int(sum(ratings.values())),
                mean_rating=round(mean[0], 3) if mean else None,
                rating_ci=(round(mean[1], 3), round(mean[2], 3)) if mean else None,
            )
        )
    return out


def _shares(counts: Mapping[str, float], names: Sequence[str]) -> dict[str, float]:
    total = sum(counts.get(n, 0) for n in names)
    return {n: round(counts.get(n, 0) / total, 4) if total else 0.0 for n in names}


def drift_vs_expected(counts: Mapping[str, float], cfg: Personas) -> DriftTest:
    names = list(cfg.expected_mix)
    observed = [float(counts.get(n, 0)) for n in names]
    expected = [cfg.expected_mix[n] for n in names]
    total = int(sum(observed))
    base = {
        "against": "expected",
        "requests": total,
        "shares": _shares(counts, names),
        "reference": dict(cfg.expected_mix),
    }
    if total < cfg.min_requests:
        return _too_few(base, f"fewer than {cfg.min_requests} requests")
    stat, p = chi2_goodness_of_fit(observed, expected)
    distance = js_distance(observed, expected)
    return _verdict(base, stat, p, distance, cfg)


def drift_vs_baseline(counts: Mapping[str, float], baseline: Mapping[str, float], cfg: Personas) -> DriftTest:
    names = sorted(
        set(cfg.expected_mix) | set(counts) | set(baseline), key=lambda n: (n not in cfg.expected_mix, n)
    )
    now = [float(counts.get(n, 0)) for n in names]
    then = [float(baseline.get(n, 0)) for n in names]
    total = int(sum(now))
    base = {
        "against": "baseline",
        "requests": total,
        "shares": _shares(counts, names),
        "reference": _shares(baseline, names),
    }
    if total < cfg.min_requests or sum(then) < cfg.min_requests:
        return _too_few(base, f"fewer than {cfg.min_requests} requests this week or in the baseline")
    stat, p = chi2_homogeneity(now, then)
    distance = js_distance(now, then)
    return _verdict(base, stat, p, distance, cfg)


def _too_few(base: dict, note: str) -> DriftTest:  # type: ignore[type-arg]
    """No test: too few requests to tell drift from chance."""
    return DriftTest(
        **base,
        chi_square=None,
        p_value=None,
        js_distance=None,
        significant=False,
        large=False,
        drift=False,
        note=note,
    )


def _verdict(base: dict, stat: float, p: float, distance: float, cfg: Personas) -> DriftTest:  # type: ignore[type-arg]
    significant = p < cfg.significance
    large = distance >= cfg.min_js_distance
    return DriftTest(
        **base,
        chi_square=round(stat, 3),
        p_value=p,
        js_distance=round(distance, 5),
        significant=significant,
        large=large,
        drift=significant and large,
    )


def band_alert(counts: Mapping[str, float], expected: Mapping[str, float], band: float = 0.05) -> bool:
    """The naive rule the bench compares with: any persona's share off its expected share by more
    than ``band`` (absolute)."""
    total = sum(counts.values())
    if total <= 0:
        return False
    return any(abs(counts.get(n, 0) / total - share) > band for n, share in expected.items())
