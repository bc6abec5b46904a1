"""A local stand-in of the Cloud Tasks API v2 (REST) for `make run`, the tests and the benches:
the real ``google-cloud-tasks`` client talks to it over its REST transport
(``client_options={"api_endpoint": "http://127.0.0.1:PORT"}``, anonymous credentials), and it
dispatches each task's HTTP request at its ``scheduleTime``, as Cloud Tasks does.

    python -m devtools.cloudtasks_standin --port 8692 --project ion-ops-local \
        --location us-central1 --queue fanout-timers

Served: ``POST /v2/projects/P/locations/L/queues/Q/tasks`` (``tasks.create``),
``GET /v2/.../tasks/T`` (``tasks.get``) and ``GET /v2/projects/P/locations/L/queues/Q``
(``queues.get``: ``state`` is ``PAUSED`` while the stand-in is paused; fan-out's ``/health``
probe). Checked as the API checks them (the request checks are
``cloudtasks_api.py``): the queue exists, the body has only known fields, the task name is
``<queue>/tasks/<id>`` with an id of 1-500 letters, digits, ``-`` or ``_``, a name already used
(pending or dispatched) is ``409 ALREADY_EXISTS``,
``scheduleTime`` is RFC 3339 and at most 30 days ahead, ``httpRequest.url`` is an absolute
http(s) URL, ``httpMethod`` is known, a body only goes with POST, PUT or PATCH, ``oidcToken`` needs
a service account email and excludes ``oauthToken``, ``dispatchDeadline`` is 15 s to 30 min.
Dispatch: at ``scheduleTime`` (never before), with the headers Cloud Tasks adds
(``X-CloudTasks-QueueName``, ``-TaskName``, ``-TaskRetryCount``, ``-TaskExecutionCount``,
``-TaskETA``, ``User-Agent: Google-Cloud-Tasks``) and, for ``oidcToken``, a bearer token shaped as
Google's (claims ``aud``, ``email``, ``iss``; unsigned: nothing local verifies it). A non-2xx
answer is retried with the queue's backoff up to its ``max_attempts``. A paused queue holds its
tasks (tests dispatch them themselves). ``GET /_standin/tasks`` lists tasks and attempts.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import heapq
import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from devtools.cloudtasks_api import ApiError, Task, checked_task, rfc3339
from devtools.standin_http import JsonHandler
from shared.identity import DEV_HEADER

QUEUE_PATH = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/queues/[^/]+)/tasks$")
QUEUE_NAME = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/queues/[^/]+)$")
TASK_PATH = re.compile(r"^/v2/(projects/[^/]+/locations/[^/]+/queues/[^/]+/tasks/[^/]+)$")


@dataclass
class RetryConfig:
    max_attempts: int = 5
    min_backoff: float = 1.0
    max_backoff: float = 10.0


@dataclass
class Attempt:
    task: str
    at: datetime
    status: int  # 0: the target could not be reached


@dataclass
class CloudTasksState:
    project: str
    location: str
    queues: set[str]
    retry: RetryConfig = field(default_factory=RetryConfig)
    paused: bool = False
    tasks: dict[str, Task] = field(default_factory=dict)
    creates: list[dict[str, Any]] = field(default_factory=list)  # every create request, answered or not
    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    _heap: list[tuple[float, int, str]] = field(default_factory=list)
    _seq: itertools.count = field(default_factory=itertools.count)  # type: ignore[type-arg]

    def queue_path(self, queue: str) -> str:
        return f"projects/{self.project}/locations/{self.location}/queues/{queue}"

    def create(self, parent: str, body: Any) -> dict[str, Any]:
        with self.lock:
            self.creates.append({"parent": parent, "body": body})
        if parent not in {self.queue_path(q) for q in self.queues}:
            raise ApiError(
                404,
                "Queue does not exist. If you just created the queue, wait at least a minute for "
                "the queue to initialize.",
            )
        now = datetime.now(UTC)
        task, full = checked_task(parent, body, now, lambda: next(self._seq))
        with self.lock:
            if task.name in self.tasks:
                raise ApiError(409, "Requested entity already exists")
            self.tasks[task.name] = task
            heapq.heappush(self._heap, (task.schedule_time.timestamp(), next(self._seq), task.name))
            self.lock.notify_all()
        return task.as_json(full=full)

    def get_queue(self, name: str) -> dict[str, Any]:
        with self.lock:
            if name not in {self.queue_path(q) for q in self.queues}:
                raise ApiError(404, f"Queue {name} was not found")
            return {
                "name": name,
                "state": "PAUSED" if self.paused else "RUNNING",
                "retryConfig": {
                    "maxAttempts": self.retry.max_attempts,
                    "minBackoff": f"{self.retry.min_backoff:g}s",
                    "maxBackoff": f"{self.retry.max_backoff:g}s",
                },
            }

    def get(self, name: str) -> dict[str, Any]:
        with self.lock:
            task = self.tasks.get(name)
            if task is None or task.done:
                raise ApiError(
                    404,
                    f"The task no longer exists, though a task with this name existed recently: {name}"
                    if task
                    else f"Task {name} was not found",
                )
            return task.as_json(full=False)

    # --- dispatch ---------------------------------------------------------------------------------

    def run_dispatcher(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self.lock:
                wait = 1.0
                if self._heap and not self.paused:
                    wait = self._heap[0][0] - time.time()
                    if wait <= 0:
                        _, _, name = heapq.heappop(self._heap)
                        threading.Thread(target=self.dispatch, args=(self.tasks[name],), daemon=True).start()
                        continue
                self.lock.wait(min(max(wait, 0.001), 1.0))

    def dispatch(self, task: Task) -> int:
        """Send the task's request once; on failure, schedule the next attempt (queue backoff)."""
        http = task.http
        headers = {
            k: v
            for k, v in (http.get("headers") or {}).items()
            if k.lower() not in ("host", "content-length", "user-agent")
        }
        body = base64.b64decode(http["body"]) if http.get("body") else None
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/octet-stream"
        queue_id, task_id = task.name.split("/")[5], task.name.rsplit("/", 1)[1]
        headers |= {
            "User-Agent": "Google-Cloud-Tasks",
            "X-CloudTasks-QueueName": queue_id,
            "X-CloudTasks-TaskName": task_id,
            "X-CloudTasks-TaskRetryCount": str(task.dispatch_count),
            "X-CloudTasks-TaskExecutionCount": str(task.dispatch_count),
            "X-CloudTasks-TaskETA": f"{task.schedule_time.timestamp():.6f}",
        }
        if http.get("oidcToken"):
            headers["Authorization"] = "Bearer " + _unsigned_id_token(http["oidcToken"], http["url"])
            headers[DEV_HEADER] = http["oidcToken"]["serviceAccountEmail"]  # who the unsigned token names
        request = urllib.request.Request(http["url"], data=body, method=http["httpMethod"], headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=float(task.dispatch_deadline[:-1])) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = 0
        with self.lock:
            task.dispatch_count += 1
            self.attempts.append(Attempt(task.name, datetime.now(UTC), status))
            if 200 <= status < 300 or task.dispatch_count >= self.retry.max_attempts:
                task.done = True  # the name stays taken, as the API keeps it for a while
            else:
                backoff = min(self.retry.max_backoff, self.retry.min_backoff * 2 ** (task.dispatch_count - 1))
                heapq.heappush(self._heap, (time.time() + backoff, next(self._seq), task.name))
                self.lock.notify_all()
        print(
            f"task {task_id} -> {http['url']} {status or 'unreachable'} (attempt {task.dispatch_count})",
            flush=True,
        )
        return status

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "tasks": [t.as_json(full=True) | {"done": t.done} for t in self.tasks.values()],
                "attempts": [
                    {"task": a.task, "at": rfc3339(a.at), "status": a.status} for a in self.attempts
                ],
            }


def _unsigned_id_token(oidc: dict[str, Any], url: str) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "aud": oidc.get("audience") or url,
        "email": oidc["serviceAccountEmail"],
        "email_verified": True,
        "iss": "https://accounts.google.com",
        "iat": now,
        "exp": now + 3600,
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def make_handler(state: CloudTasksState) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        protocol_version = "HTTP/1.1"

        def _route(self, method: str) -> None:
            path = urlsplit(self.path).path
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                if path == "/_standin/tasks" and method == "GET":
                    self.send_json(200, state.summary())
                elif path in ("/", "/health") and method == "GET":
                    self.send_json(200, {"status": "ok", "queues": sorted(state.queues)})
                elif (queue := QUEUE_PATH.match(path)) and method == "POST":
                    try:
                        body = json.loads(raw or b"{}")
                    except json.JSONDecodeError:
                        raise ApiError(400, "Invalid JSON payload received.") from None
                    self.send_json(200, state.create(queue.group(1), body))
                elif (task := TASK_PATH.match(path)) and method == "GET":
                    self.send_json(200, state.get(task.group(1)))
                elif (queue := QUEUE_NAME.match(path)) and method == "GET":
                    self.send_json(200, state.get_queue(queue.group(1)))
                else:
                    raise ApiError(
                        404 if method == "GET" else 405, f"{method} {path} is not served by the stand-in"
                    )
            except ApiError as exc:
                self.send_json(exc.code, exc.body())

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler


class CloudTasksStandIn:
    """The stand-in in this process (tests, benches): ``url`` is the client's ``api_endpoint``."""

    def __init__(self, state: CloudTasksState, port: int = 0) -> None:
        self.state = state
        self.server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(state))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self.server.serve_forever, name="cloudtasks-api", daemon=True),
            threading.Thread(
                target=state.run_dispatcher, args=(self._stop,), name="cloudtasks-dispatch", daemon=True
            ),
        ]

    def start(self) -> CloudTasksStandIn:
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        with self.state.lock:
            self.state.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()


FANOUT_QUEUE = "fanout-timers"


def start_fanout_queue(
    port: int, project: str, location: str, fanout_url: str, *, log_dir: Any, echo: Any = None
) -> tuple[Any, dict[str, str]]:
    """For `make run`: this stand-in as a child process with fan-out's timer queue, and the
    environment pointing fan-out at it (its timers call the local ``/v1/flush/group``)."""
    from devtools.processes import ManagedProcess, python, wait_until_http
    from shared.topology import ROOT

    proc = ManagedProcess(
        "cloudtasks-standin",
        [python(), "-m", "devtools.cloudtasks_standin", "--port", str(port), "--project", project,
         "--location", location, "--queue", FANOUT_QUEUE],
        log_dir=log_dir,
        echo=echo,
        cwd=ROOT,
        env={"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    wait_until_http(f"http://127.0.0.1:{port}/health", proc, 30)
    env = {
        "ION_FANOUT_TASKS_QUEUE": f"projects/{project}/locations/{location}/queues/{FANOUT_QUEUE}",
        "ION_FANOUT_TASKS_ENDPOINT": f"http://127.0.0.1:{port}",
        "ION_FANOUT_FLUSH_URL": f"{fanout_url}/v1/flush/group",
    }
    return proc, env


def main() -> None:
    parser = argparse.ArgumentParser(description="Cloud Tasks API v2 stand-in")
    parser.add_argument("--port", type=int, default=8692)
    parser.add_argument("--project", default="ion-ops-local")
    parser.add_argument("--location", default="us-central1")
    parser.add_argument("--queue", action="append", default=[], help="queue id (repeatable)")
    parser.add_argument("--max-attempts", type=int, default=5)
    parser.add_argument("--min-backoff", type=float, default=1.0)
    parser.add_argument("--max-backoff", type=float, default=10.0)
    args = parser.parse_args()
    state = CloudTasksState(
        args.project,
        args.location,
        set(args.queue),
        RetryConfig(args.max_attempts, args.min_backoff, args.max_backoff),
    )
    standin = CloudTasksStandIn(state, args.port).start()
    print(
        f"cloud tasks stand-in on {standin.url} for queues "
        + ", ".join(sorted(state.queue_path(q) for q in state.queues)),
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


if __name__ == "__main__":
    main()
