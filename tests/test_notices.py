"""Notices are alert transitions of kind `notice` whose ids depend only on the event announced."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.messages import AlertTransition
from shared.notices import NOTICE_KIND, notice_transition

AT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _notice(notice_id: str = "scaling/us-central1/2026-11-30T08:00Z", **labels: str) -> AlertTransition:
    return notice_transition(
        notice_id=notice_id,
        source="scaling",
        name="scale-change",
        severity="low",
        summary="min 2 -> 4",
        at=AT,
        labels=labels or {"region": "us-central1"},
    )


def test_same_event_same_transition_id_and_fingerprint() -> None:
    assert _notice().transition_id == _notice().transition_id
    assert _notice().fingerprint == _notice().fingerprint


def test_another_event_of_the_same_alert_keeps_the_fingerprint_but_not_the_id() -> None:
    first, second = _notice(), _notice("scaling/us-central1/2026-11-30T09:00Z")
    assert first.fingerprint == second.fingerprint
    assert first.transition_id != second.transition_id


def test_shape_is_a_one_shot_firing_transition_with_source_labels() -> None:
    notice = _notice(region="europe-west1")
    assert notice.kind == NOTICE_KIND
    assert notice.state == "firing"
    assert notice.ends_at == notice.starts_at == AT
    assert notice.labels == {"source": "scaling", "notice": "scale-change", "region": "europe-west1"}
    assert notice.rule == "scaling-scale-change"
    assert notice.annotations["summary"] == "min 2 -> 4"
    assert AlertTransition.model_validate_json(notice.model_dump_json()) == notice


def test_empty_notice_id_is_refused() -> None:
    with pytest.raises(ValueError, match="notice_id"):
        _notice("")
