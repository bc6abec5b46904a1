"""The log channel: one JSON log line per notification and, unless ``ION_FANOUT_OUTBOX`` is empty,
one JSON file per notification in the outbox folder (default ``./outbox``). It takes the place of
any channel whose credentials are unset, recording which channel it stands in for (for Slack,
with the Block Kit blocks the message would have had: ``slack_blocks``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from functions.fanout.channels.base import Retrier
from functions.fanout.models import Notification
from shared.logging import get_logger

log = get_logger("fanout.log")


class LogChannel:
    def __init__(self, outbox_dir: str, *, instead_of: str | None = None) -> None:
        self.name = instead_of or "log"
        self.instead_of = instead_of
        self.outbox = Path(outbox_dir) if outbox_dir else None

    def send(self, notification: Notification, retrier: Retrier) -> dict[str, Any]:
        record = {
            "channel": "log",
            "instead_of": self.instead_of,
            "title": notification.title(),
            "notification": notification.model_dump(mode="json"),
        }
        if self.instead_of == "slack" and notification.alerts:
            # What the Slack message would carry (its incident buttons too), to inspect locally.
            from functions.fanout.channels.slack_blocks import render_blocks
            from functions.fanout.settings import get_fanout_settings

            record["slack_blocks"] = render_blocks(
                notification, notification.alerts, get_fanout_settings(), mention=notification.mention
            )
        log.warning(
            "alert notification: %s",
            notification.title(),
            extra={
                "notification_id": notification.notification_id,
                "instead_of": self.instead_of,
                "alert_severity": notification.severity,
                "fingerprints": [a.fingerprint for a in notification.alerts],
            },
        )
        if self.outbox is None:
            return {"logged": True}
        path = write_outbox(self.outbox, f"{notification.notification_id}-{self.name}", record)
        return {"logged": True, "outbox": str(path)}


def write_outbox(folder: Path, name: str, record: dict[str, Any]) -> Path:
    """Write atomically (temporary file, then rename): a reader never sees half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    path = folder / f"{safe}.json"
    tmp = folder / f".{safe}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    tmp.replace(path)
    return path
