"""The open alerts of rules no longer configured: a full cycle closes them.

A rule removed from the rules file, or disabled (``enabled: false``), is evaluated no more, so
nothing else would ever resolve its pending and firing alerts. A full cycle (every rule, from a
file loaded whole: one error in it and no rule loads, so nothing is closed) looks for the rules
that have a cycle record (``alert_cycles``: every rule evaluated within ``KEEP_CYCLE``) but are not
among the enabled rules loaded, and closes their open alerts through the state store's usual
conditional write: a firing one resolves with a ``resolved`` transition whose summary and
``resolved_reason`` annotation say why, built from the transition that fired it (the outbox keeps
it) so that fan-out routes and closes it as it opened it; a pending one goes inactive, unannounced.
At most ``RETIRE_PER_CYCLE`` alerts a cycle, the rest at the next ones. The on-ingest and
named-rule evaluations see part of the rule set only and never close anything here.

A renamed rule is a removed rule and a new one: the old name's alerts resolve, the new name's
fire anew (a fingerprint is made of the rule's name and the labels).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from functions.alerts.engine import CycleResult
from functions.alerts.state import OPEN, AlertState, RuleCycle, expiry
from functions.alerts.state_store import Compute
from shared.logging import get_logger
from shared.messages import AlertTransition

log = get_logger("alerts.retired_rules")

# Alerts closed per cycle at most: ten batches of the store's, well inside a cycle's deadline.
RETIRE_PER_CYCLE = 500
REMOVED = "rule removed from the configuration"
DISABLED = "rule disabled"
# The failure's name in the cycle's errors when the rules gone could not be listed.
LISTING = "(rules gone)"


class RetiringStore(Protocol):
    def cycles(self) -> dict[str, RuleCycle]: ...

    def open_states(self, rule: str, limit: int | None = None) -> dict[str, AlertState]: ...

    def fired(self, transition_ids: list[str]) -> dict[str, AlertTransition]: ...

    def apply_all(self, rule: str, items: list[tuple[str, Compute]]) -> list[AlertTransition | None]: ...


def gone_rules(recorded: Iterable[str], configured: list[Any]) -> dict[str, str]:
    """Each rule with a cycle record that is not an enabled rule of ``configured`` (the whole
    file, disabled rules too), with why it is gone."""
    enabled = {r.name for r in configured if r.enabled}
    disabled = {r.name for r in configured if not r.enabled}
    return {name: DISABLED if name in disabled else REMOVED for name in sorted(set(recorded) - enabled)}


def retire(
    stored: AlertState | None,
    seen: AlertState,
    *,
    fired: AlertTransition | None,
    reason: str,
    now: datetime,
    cycle: RuleCycle | None = None,
) -> tuple[AlertState | None, AlertTransition | None]:
    """Close one alert of a rule gone: ``stored`` as just read, ``seen`` as the sweep found it,
    ``fired`` the transition that fired it (None when the outbox no longer has it). Nothing when
    it is no longer open or moved since it was seen (another cycle decided; the next sweep looks
    again), or when a cycle at this time or later evaluated the rule (it is configured again)."""
    if stored is None or stored.state not in OPEN or stored.sequence != seen.sequence:
        return None, None
    if cycle is not None and cycle.claimed_at is not None and cycle.claimed_at >= now:
        return None, None
    if stored.evaluated_at is not None and now <= stored.evaluated_at:
        return None, None
    if stored.state == "pending":
        closed = stored.model_copy(update={"state": "inactive", "pending_since": None, "evaluated_at": now})
        return closed.model_copy(update={"expire_at": expiry(closed, now)}), None
    resolved = stored.model_copy(
        update={"state": "resolved", "resolved_at": now, "evaluated_at": now, "sequence": stored.sequence + 1}
    )
    resolved = resolved.model_copy(update={"expire_at": expiry(resolved, now)})
    return resolved, resolved_transition(resolved, fired, reason, now)


def resolved_transition(
    state: AlertState, fired: AlertTransition | None, reason: str, now: datetime
) -> AlertTransition:
    """The ``resolved`` transition of an alert whose rule is gone: the firing one's metric, labels
    (the rule's own labels too), severity, runbook and annotations, the reason added."""
    annotations = dict(fired.annotations) if fired else {}
    summary = annotations.get("summary") or state.rule
    annotations.update(summary=f"{summary} (resolved: {reason})", resolved_reason=reason)
    return AlertTransition(
        transition_id=f"{state.fingerprint}-{state.sequence}",
        fingerprint=state.fingerprint,
        rule=state.rule,
        kind=state.kind,
        state="resolved",
        previous_state="firing",
        severity=fired.severity if fired else state.severity,
        metric=fired.metric if fired else "",
        labels=fired.labels if fired else state.labels,
        annotations=annotations,
        runbook=fired.runbook if fired else [],
        value=state.value,
        threshold=state.threshold,
        op=fired.op if fired else None,
        starts_at=state.firing_since or now,
        ends_at=now,
        evaluated_at=now,
        dashboard_url=fired.dashboard_url if fired else None,
    )


def retire_gone_rules(
    store: RetiringStore,
    publish: Callable[[AlertTransition], None] | None,
    configured: list[Any],
    result: CycleResult,
    limit: int | None = None,
) -> None:
    """Close up to ``limit`` (``RETIRE_PER_CYCLE``) open alerts of the rules gone from ``configured``
    (every rule of a file loaded whole), at ``result``'s time; transitions and failures go into it."""
    if not configured:
        # A file of no rule at all is likelier a broken deployment than every rule removed.
        log.warning("the rules file has no rule: no alert of a rule gone is closed")
        return
    try:
        gone = gone_rules(store.cycles(), configured)
    except Exception as exc:
        log.exception("listing the rules gone failed")
        result.failures[LISTING] = exc
        return
    budget = RETIRE_PER_CYCLE if limit is None else limit
    names = list(gone)
    for index, (name, reason) in enumerate(gone.items()):
        if budget <= 0:
            left = names[index:]
            log.warning("%d rules gone left to the next cycle", len(left), extra={"rules": left})
            return
        try:
            seen = _retire_rule(store, publish, result, name=name, reason=reason, limit=budget)
        except Exception as exc:
            log.exception("closing the alerts of rule %s failed", name, extra={"rule": name})
            result.failures[name] = exc
            continue
        budget -= seen


def _retire_rule(
    store: RetiringStore,
    publish: Callable[[AlertTransition], None] | None,
    result: CycleResult,
    *,
    name: str,
    reason: str,
    limit: int,
) -> int:
    """Close up to ``limit`` open alerts of rule ``name``; how many it found open."""
    now = result.evaluated_at
    found = store.open_states(name, limit)
    if not found:
        return 0
    fired = store.fired([f"{fp}-{s.sequence}" for fp, s in found.items() if s.state == "firing"])

    def decider(seen: AlertState) -> Compute:
        def compute(
            stored: AlertState | None, cycle: RuleCycle | None
        ) -> tuple[AlertState | None, AlertTransition | None]:
            before = fired.get(f"{seen.fingerprint}-{seen.sequence}")
            return retire(stored, seen, fired=before, reason=reason, now=now, cycle=cycle)

        return compute

    moved = [t for t in store.apply_all(name, [(fp, decider(s)) for fp, s in found.items()]) if t is not None]
    for transition in moved:
        if publish is not None:
            publish(transition)
    result.transitions.extend(moved)
    log.info(
        "rule %s gone (%s): %d open alerts found, %d firing ones resolved",
        name,
        reason,
        len(found),
        len(moved),
        extra={"rule": name, "reason": reason},
    )
    if len(found) >= limit:
        log.warning(
            "rule %s gone: the cycle's bound reached, any more left to the next", name, extra={"rule": name}
        )
    return len(found)
