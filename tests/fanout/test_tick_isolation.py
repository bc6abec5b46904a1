"""The flush tick in a storm: one group that cannot be flushed (a notification past Firestore's
1 MiB document limit, a contended transaction) is logged and counted, and every other group, the
repeats, escalations and PagerDuty syncs still run. Before, its exception ended the whole tick,
every minute, so no other group past due was served by the tick any more."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from google.api_core.exceptions import InvalidArgument

from functions.fanout import ticks
from tests.fanout.conftest import Fanout, make_transition

pytestmark = pytest.mark.emulators


def test_a_group_that_cannot_be_flushed_does_not_stop_the_tick(
    fanout: Fanout, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = fanout.freeze()
    stuck = make_transition(rule="too-big", severity="medium", service="a", at=clock.now())
    fine = make_transition(rule="cpu", severity="medium", service="b", at=clock.now())
    assert fanout.push(stuck) == 200
    assert fanout.push(fine) == 200
    real_flush = ticks.flush
    refused: list[str] = []

    def flush(group_id: str, *args: Any, **kwargs: Any) -> str | None:
        from functions.fanout.routes import get_routing

        if group_id == get_routing().group_id(stuck):
            refused.append(group_id)
            raise InvalidArgument("maximum entity size is 1048576 bytes")
        return real_flush(group_id, *args, **kwargs)

    monkeypatch.setattr(ticks, "flush", flush)
    clock.advance(timedelta(minutes=1))  # past medium's 30 s group_wait: both due
    report = fanout.tick()
    assert refused
    assert report["errors"] == 1
    assert len(report["flushed"]) == 1
    assert any("cpu" in m.all_text() for m in fanout.slack.top_level())
    assert not any("too-big" in m.all_text() for m in fanout.slack.top_level())
    monkeypatch.setattr(ticks, "flush", real_flush)
    clock.advance(timedelta(minutes=1))
    assert fanout.tick()["errors"] == 0  # once it can be flushed, the next tick does
    assert any("too-big" in m.all_text() for m in fanout.slack.top_level())
