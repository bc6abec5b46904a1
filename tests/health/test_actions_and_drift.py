"""Actions once per episode with a cooldown; statistics against known values; drift on generated mixes."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from functions.health.actions import ActionState, conditions, step
from functions.health.config import load_config
from functions.health.personas import Answer, band_alert, drift_vs_baseline, drift_vs_expected, satisfaction
from functions.health.scoring import ScoreResult
from functions.health.settings import DEFAULT_CONFIG_FILE
from functions.health.signals import Component
from functions.health.stats import chi2_sf, js_distance, mean_interval, wilson

CFG = load_config(DEFAULT_CONFIG_FILE)
DAY0 = datetime(2026, 11, 1, 5, 15, tzinfo=UTC)


def result(score: float, engagement: float = 80, used: int = 5) -> ScoreResult:
    features = ["route_key", "route_message", "recommend", "bulk", "feedback"]
    return ScoreResult(
        id="c",
        as_of=date(2026, 11, 30),
        score=score,
        category="healthy" if score >= 70 else "at_risk" if score >= 40 else "churn_risk",
        components={
            "engagement": Component(score=engagement, weight=0.5),
            "adoption": Component(
                score=used * 20, weight=0.5, inputs={"features_used": used, "unused": features[used:]}
            ),
        },
        missing=[],
    )


def run(days: list[ScoreResult], age0: float = 100) -> list[list[str]]:
    """Fired actions per day over consecutive days."""
    states: dict[str, ActionState] = {}
    fired_by_day = []
    for offset, day in enumerate(days):
        reasons = conditions(day, age0 + offset, CFG)
        states, fired = step(states, reasons, DAY0 + timedelta(days=offset), CFG)
        fired_by_day.append([f.action for f in fired])
    return fired_by_day


def test_an_action_fires_once_per_episode_and_rerunning_a_day_fires_nothing_new() -> None:
    fired = run([result(30), result(32), result(35), result(80)])
    assert fired[0] == ["retention_campaign"]
    assert fired[1:] == [[], [], []]
    states: dict[str, ActionState] = {}
    reasons = conditions(result(30), 100, CFG)
    states, first = step(states, reasons, DAY0, CFG)
    _, again = step(states, reasons, DAY0, CFG)
    assert [f.action for f in first] == ["retention_campaign"]
    assert again == []


def test_a_new_episode_inside_the_cooldown_waits_for_it_then_fires_once() -> None:
    days = [result(30), result(80)] + [result(30)] * 40
    fired = run(days)
    firing_days = [i for i, actions in enumerate(fired) if "retention_campaign" in actions]
    assert firing_days == [0, 30]  # episode 2 began on day 2, the 30-day cooldown ended on day 30


def test_a_new_episode_after_the_cooldown_fires_at_once() -> None:
    days = [result(30)] + [result(80)] * 40 + [result(30)]
    firing_days = [i for i, a in enumerate(run(days)) if "retention_campaign" in a]
    assert firing_days == [0, 41]


def test_the_four_conditions() -> None:
    new = conditions(result(20, engagement=0, used=0), 2, CFG)
    assert new["onboarding_checkin"] is not None
    assert new["retention_campaign"] is None  # not during onboarding
    assert new["training_outreach"] is None
    assert new["education_campaign"] is None  # adoption judged after 14 days
    older = conditions(result(20, engagement=10, used=2), 20, CFG)
    assert older["onboarding_checkin"] is None
    assert older["retention_campaign"] is not None
    assert older["training_outreach"] == "engagement 10 < 40"
    assert "2 of 5 core features" in (older["education_campaign"] or "")
    assert conditions(result(75, used=3), 20, CFG)["education_campaign"] is None  # 60% is enough


@pytest.mark.parametrize(
    ("x", "df", "p"),
    [
        (7.814727903, 3, 0.05),
        (11.34486673, 3, 0.01),
        (3.841458821, 1, 0.05),
        (9.487729037, 4, 0.05),
        (0.0, 2, 1.0),
    ],
)
def test_chi_square_tail_matches_tables(x: float, df: int, p: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(p, rel=1e-6)


def test_js_distance_bounds_and_intervals() -> None:
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    low, high = wilson(8, 10)  # type: ignore[misc]
    assert low == pytest.approx(0.4902, abs=1e-3)
    assert high == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 0) is None
    mean, lo, hi = mean_interval({4: 10, 5: 10})  # type: ignore[misc]
    assert mean == 4.5
    assert lo < 4.5 < hi


def _week(mix: dict[str, float], n: int, rng: random.Random) -> dict[str, int]:
    names = list(mix)
    draws = rng.choices(names, weights=[mix[k] for k in names], k=n)
    return {k: draws.count(k) for k in names}


EXPECTED = dict(CFG.personas.expected_mix)


def test_no_drift_on_the_expected_mix_at_either_volume() -> None:
    rng = random.Random(7)
    for n in (7_000, 700_000):
        false_alarms = sum(drift_vs_expected(_week(EXPECTED, n, rng), CFG.personas).drift for _ in range(20))
        assert false_alarms == 0


def test_a_large_shift_is_drift_and_a_tiny_significant_one_is_not() -> None:
    rng = random.Random(11)
    shifted = {**EXPECTED, "Lua": 0.33, "Elro": 0.17}
    big = drift_vs_expected(_week(shifted, 7_000, rng), CFG.personas)
    assert big.drift
    tiny = {**EXPECTED, "Lua": 0.235, "Elro": 0.265}
    small = drift_vs_expected(_week(tiny, 700_000, rng), CFG.personas)
    assert small.significant
    assert not small.large
    assert not small.drift


def test_drift_against_the_own_baseline_and_too_little_traffic() -> None:
    rng = random.Random(5)
    live = {"Lua": 0.384, "Elro": 0.069, "Riri": 0.241, "Nana": 0.306}
    baseline = _week(live, 28_000, rng)
    steady = drift_vs_baseline(_week(live, 7_000, rng), baseline, CFG.personas)
    assert not steady.drift
    moved = drift_vs_baseline(_week({**live, "Lua": 0.30, "Elro": 0.153}, 7_000, rng), baseline, CFG.personas)
    assert moved.drift
    assert drift_vs_expected({"Lua": 50}, CFG.personas).note.startswith("fewer than")


def test_band_rule_and_satisfaction() -> None:
    assert band_alert({"Lua": 29, "Elro": 27, "Riri": 22, "Nana": 22}, EXPECTED)
    assert not band_alert({"Lua": 26, "Elro": 24, "Riri": 25, "Nana": 25}, EXPECTED)
    answers = [Answer(persona="Lua", helpful=i < 8, rating=5 if i < 8 else 2) for i in range(10)]
    rows = {s.persona: s for s in satisfaction(answers, ["Lua", "Elro"])}
    assert rows["Lua"].helpful_share == 0.8
    assert rows["Lua"].helpful_ci is not None
    assert rows["Lua"].helpful_ci[0] < 0.8 < rows["Lua"].helpful_ci[1]
    assert rows["Lua"].mean_rating == 4.4
    assert rows["Elro"].answers == 0
    assert rows["Elro"].helpful_share is None
