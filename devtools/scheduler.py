"""A local Cloud Scheduler: fires topology.yaml's cron schedules at the local functions, with the
headers Cloud Scheduler sends, so `make run` runs the same periodic jobs Terraform deploys."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from shared.clock import format_rfc3339
from shared.topology import Schedule


class LocalScheduler:
    def __init__(
        self,
        schedules: dict[str, Schedule],
        url_of: Callable[[str], str],
        log: Callable[[str], None],
    ) -> None:
        self.schedules = schedules
        self.url_of = url_of
        self.log = log
        self._stop = threading.Event()

    def next_run(self, name: str, after: datetime) -> datetime:
        schedule = self.schedules[name]
        local = after.astimezone(ZoneInfo(schedule.time_zone))
        return croniter(schedule.cron, local).get_next(datetime).astimezone(UTC)

    def fire(self, name: str, scheduled: datetime) -> int:
        schedule = self.schedules[name]
        request = urllib.request.Request(
            self.url_of(schedule.function) + schedule.path,
            data=json.dumps(schedule.body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Google-Cloud-Scheduler",
                "X-CloudScheduler": "true",
                "X-CloudScheduler-JobName": name,
                "X-CloudScheduler-ScheduleTime": format_rfc3339(scheduled),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=170) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            self.log(f"{name}: {exc}")
            return 0
        self.log(f"{name} -> {schedule.function} {status}")
        return status

    def run(self) -> None:
        now = datetime.now(UTC)
        pending = {name: self.next_run(name, now) for name in self.schedules}
        while not self._stop.is_set():
            name, when = min(pending.items(), key=lambda item: item[1], default=(None, None))
            if name is None or when is None:
                self._stop.wait()
                return
            delay = (when - datetime.now(UTC)).total_seconds()
            if delay > 0 and self._stop.wait(delay):
                return
            threading.Thread(target=self.fire, args=(name, when), daemon=True).start()
            pending[name] = self.next_run(name, when)

    def stop(self) -> None:
        self._stop.set()
