"""The rollback guard reads alert states by rule name: a name no alert rule has would never fire,
and the guard would hold nothing back, silently. Scaling may not import the alert rules (the import
contracts keep capabilities apart), so the check lives here, across both."""

from __future__ import annotations

from functions.alerts.rules import load_rules
from functions.scaling.settings import DEFAULT_GUARD_RULES, ScalingSettings


def test_every_default_guard_rule_is_an_alert_rule_with_a_region_or_none() -> None:
    rules = {rule.name: rule for rule in load_rules()}
    names = ScalingSettings().guard_rule_names
    assert names == [name.strip() for name in DEFAULT_GUARD_RULES.split(",")]
    missing = [name for name in names if name not in rules]
    assert missing == [], f"guard rules no alert rule defines: {missing}"
    # A guard holds a region back: its rule must be per region, or for no region in particular.
    for name in names:
        group_by = rules[name].group_by
        assert group_by in ([], ["region"]) or "region" in group_by, (name, group_by)
