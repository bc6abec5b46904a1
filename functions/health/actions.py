"""Success actions (the seeds' four), each firing once per customer and episode, with a cooldown.

An episode is a run of days on which the action's condition holds. The action fires on the
first day of an episode unless it fired less than ``cooldown_days`` ago; an episode that began
inside the cooldown fires once the cooldown ends, if it still holds. A condition that stops
holding ends the episode. State per customer and action: ``active``, ``episode_start``,
``fired`` (in this episode), ``last_fired``. Pure: the caller stores the state and publishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from functions.health.config import HealthConfig
from functions.health.scoring import USAGE_UNKNOWN, ScoreResult

ACTIONS: dict[str, str] = {
    "onboarding_checkin": "New customer: onboarding check-in",
    "training_outreach": "Low engagement: training outreach",
    "retention_campaign": "Churn risk: retention campaign",
    "education_campaign": "Adoption lag: education campaign",
}

# What the success manager does about each action: sent in the notice with the score behind it.
PLAYBOOKS: dict[str, str] = {
    "onboarding_checkin": (
        "Book a 30-minute check-in this week: confirm their first integration works (a key in use, "
        "requests answered), walk through the features they have not tried, agree a success goal."
    ),
    "training_outreach": (
        "Offer a training session to the team using the API: look at which features they stopped "
        "using (components below), ask what blocks them, send the integration guide."
    ),
    "retention_campaign": (
        "Call the account owner within 2 working days: review what moved the score, open tickets "
        "and invoices; agree a recovery plan and record it with the account."
    ),
    "education_campaign": (
        "Send the education series for the unused core features (named in the reason) and offer "
        "a short demo of the one closest to their use."
    ),
}


class ActionState(BaseModel):
    active: bool = False
    episode_start: datetime | None = None
    fired: bool = False
    last_fired: datetime | None = None


@dataclass(frozen=True)
class Firing:
    action: str
    title: str
    reason: str
    episode_start: datetime


def conditions(result: ScoreResult, age_days: float, cfg: HealthConfig) -> dict[str, str | None]:
    """Each action's reason if its condition holds today, else None."""
    a = cfg.actions
    onboarding = age_days < a.onboarding_days
    engagement = result.components.get("engagement")
    adoption = result.components.get("adoption")
    used = adoption.inputs["features_used"] if adoption else 0
    core = used + len(adoption.inputs["unused"]) if adoption else 0
    unused = ", ".join(adoption.inputs["unused"]) if adoption else ""
    reasons: dict[str, str | None] = dict.fromkeys(ACTIONS)
    if onboarding:
        reasons["onboarding_checkin"] = f"customer for {age_days:.0f} of the first {a.onboarding_days} days"
    if result.category == USAGE_UNKNOWN:
        # The usage-driven actions would act on usage known to be incomplete: none fires (and an
        # episode under way ends). The check-in depends on the customer's age alone.
        return reasons
    # Engagement and churn actions wait for the onboarding window: a day-old customer with no
    # traffic yet is not at risk.
    if engagement and not onboarding and engagement.score < a.low_engagement_below:
        reasons["training_outreach"] = f"engagement {engagement.score:g} < {a.low_engagement_below:g}"
    if not onboarding and result.category == "churn_risk":
        reasons["retention_campaign"] = f"score {result.score:g}: churn risk"
    if core and age_days >= a.adoption_after_days and used / core < a.adoption_below:
        reasons["education_campaign"] = (
            f"{used} of {core} core features after {age_days:.0f} days (unused: {unused})"
        )
    return reasons


def step(
    states: dict[str, ActionState], reasons: dict[str, str | None], now: datetime, cfg: HealthConfig
) -> tuple[dict[str, ActionState], list[Firing]]:
    """Advance every action's episode state by one evaluation; returns the new states and what fires."""
    cooldown = timedelta(days=cfg.actions.cooldown_days)
    new_states: dict[str, ActionState] = {}
    fired: list[Firing] = []
    for action, title in ACTIONS.items():
        state = states.get(action, ActionState()).model_copy()
        reason = reasons.get(action)
        if reason is None:
            new_states[action] = state.model_copy(
                update={"active": False, "fired": False, "episode_start": None}
            )
            continue
        if not state.active:
            state = state.model_copy(update={"active": True, "episode_start": now, "fired": False})
        if not state.fired and (state.last_fired is None or now - state.last_fired >= cooldown):
            state = state.model_copy(update={"fired": True, "last_fired": now})
            assert state.episode_start is not None
            fired.append(Firing(action, title, reason, state.episode_start))
        new_states[action] = state
    return new_states, fired


def states_from(stored: dict[str, Any] | None) -> dict[str, ActionState]:
    return {
        name: ActionState.model_validate(value) for name, value in (stored or {}).items() if name in ACTIONS
    }
