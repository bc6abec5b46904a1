"""The log channel: a JSON log line and one JSON file per notification in the outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from functions.fanout.channels.base import Retrier
from functions.fanout.channels.log import LogChannel
from functions.fanout.models import Notification
from tests.fanout.conftest import make_transition


def test_writes_one_file_per_notification_and_logs_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    alert = make_transition(severity="low")
    notification = Notification(
        notification_id="grp-n1",
        kind="notify",
        group_id="grp",
        group_labels={},
        severity="low",
        alerts=[alert],
        created_at=datetime.now(UTC),
    )
    receipt = LogChannel(str(tmp_path), instead_of="slack").send(
        notification, Retrier(max_attempts=1, budget_seconds=1, base_delay=0.1, max_delay=0.1)
    )
    [path] = list(tmp_path.glob("*.json"))
    assert receipt["outbox"] == str(path)
    record = json.loads(path.read_text())
    assert record["instead_of"] == "slack"
    assert record["notification"]["alerts"][0]["fingerprint"] == alert.fingerprint
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["notification_id"] == "grp-n1"
    assert line["severity"] == "WARNING"


def test_an_empty_outbox_setting_only_logs(tmp_path: Path) -> None:
    notification = Notification(
        notification_id="x",
        kind="notify",
        group_id="g",
        group_labels={},
        severity="low",
        alerts=[make_transition(severity="low")],
        created_at=datetime.now(UTC),
    )
    receipt = LogChannel("").send(
        notification, Retrier(max_attempts=1, budget_seconds=1, base_delay=0.1, max_delay=0.1)
    )
    assert receipt == {"logged": True}
