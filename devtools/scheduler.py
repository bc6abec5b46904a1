"""A local Cloud Scheduler: fires topology.yaml's cron schedules at the local functions, with the
headers Cloud Scheduler sends, so `make run` runs the same periodic jobs Terraform deploys."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

from croniter import croniter

from shared.clock import format_rfc3339
from shared.identity import DEV_HEADER
from shared.topology import Schedule

# Who the local scheduler calls as (X-Ion-Dev-Principal); devtools/stack.py lists it in ION_ROLE_SCHEDULER.
SCHEDULER_PRINCIPAL = "scheduler@ion-ops.local"


@dataclass
class Attempt:
    at: datetime
    status: int


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
        self.last_attempts: dict[str, Attempt] = {}
        self.paused: set[str] = set()
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
                DEV_HEADER: SCHEDULER_PRINCIPAL,  # deployed, the job's OIDC token names it
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=170) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            self.log(f"{name}: {exc}")
            self.last_attempts[name] = Attempt(datetime.now(UTC), 0)
            return 0
        self.last_attempts[name] = Attempt(datetime.now(UTC), status)
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
            if name not in self.paused:
                threading.Thread(target=self.fire, args=(name, when), daemon=True).start()
            pending[name] = self.next_run(name, when)

    def stop(self) -> None:
        self._stop.set()


# --- a stand-in of the Cloud Scheduler API (v1 REST) over this scheduler's jobs -----------------

_JOBS_PATH = re.compile(
    r"^/v1/projects/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])/locations/(?P<location>[a-z0-9-]+)/jobs(?:/(?P<job>[A-Za-z0-9_-]{1,500}))?$"
)
_LIST_PARAMS = {"pageSize", "pageToken", "$alt", "alt"}


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _rpc_status(status: int) -> dict[str, object]:
    """google.rpc.Status of an attempt, as Cloud Scheduler maps the target's HTTP answer."""
    if 200 <= status < 300:
        return {}
    if status == 0:
        return {"code": 14, "message": "UNAVAILABLE: the target could not be reached"}
    codes = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 503: 14, 504: 4}
    return {"code": codes.get(status, 2 if status >= 500 else 9), "message": f"HTTP {status}"}


class SchedulerApiStandIn:
    """``GET /v1/projects/P/locations/L/jobs[/NAME]`` as the Cloud Scheduler API answers them,
    from a LocalScheduler's schedules and attempts, for the real ``google-cloud-scheduler``
    client (REST transport). Checks what the real API would: the path's shape, the project and
    location it serves, the method, the known query parameters."""

    def __init__(self, scheduler: LocalScheduler, project: str, location: str, port: int) -> None:
        self.scheduler = scheduler
        self.project = project
        self.location = location
        self.requests: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                return

            def do_GET(self) -> None:
                standin.requests.append(self.path)
                status, body = standin.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _not_allowed(self) -> None:
                data = json.dumps(
                    _error(405, "Method not allowed by this stand-in", "UNIMPLEMENTED")
                ).encode()
                self.send_response(405)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_PATCH = do_DELETE = _not_allowed

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="scheduler-api", daemon=True)

    def start(self) -> SchedulerApiStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, raw_path: str) -> tuple[int, dict[str, object]]:
        parsed = urllib.parse.urlsplit(raw_path)
        match = _JOBS_PATH.match(parsed.path)
        if match is None:
            return 404, _error(404, f"No API at {parsed.path}", "NOT_FOUND")
        unknown = set(urllib.parse.parse_qs(parsed.query)) - _LIST_PARAMS
        if unknown:
            return 400, _error(
                400, f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r}", "INVALID_ARGUMENT"
            )
        if match["project"] != self.project or match["location"] != self.location:
            return 403, _error(
                403,
                f"Permission denied on resource project {match['project']} location {match['location']}",
                "PERMISSION_DENIED",
            )
        parent = f"projects/{self.project}/locations/{self.location}"
        if match["job"] is not None:
            if match["job"] not in self.scheduler.schedules:
                return 404, _error(404, f"Job not found: {parent}/jobs/{match['job']}", "NOT_FOUND")
            return 200, self.job(parent, match["job"])
        return 200, {"jobs": [self.job(parent, name) for name in sorted(self.scheduler.schedules)]}

    def job(self, parent: str, name: str) -> dict[str, object]:
        schedule = self.scheduler.schedules[name]
        body: dict[str, object] = {
            "name": f"{parent}/jobs/{name}",
            "description": schedule.description,
            "schedule": schedule.cron,
            "timeZone": schedule.time_zone,
            "attemptDeadline": schedule.attempt_deadline,
            "state": "PAUSED" if name in self.scheduler.paused else "ENABLED",
            "httpTarget": {
                "uri": self.scheduler.url_of(schedule.function) + schedule.path,
                "httpMethod": "POST",
            },
        }
        attempt = self.scheduler.last_attempts.get(name)
        if attempt is not None:
            body["lastAttemptTime"] = _rfc3339(attempt.at)
            body["status"] = _rpc_status(attempt.status)
        return body


def _error(code: int, message: str, status: str) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "status": status}}
