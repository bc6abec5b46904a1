"""The Cloud Tasks stand-in refuses what the API refuses, through the real google-cloud-tasks
client (REST), and dispatches a task at its schedule time with Cloud Tasks' headers."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.api_core import exceptions

from devtools.cloudtasks_standin import CloudTasksStandIn, CloudTasksState, RetryConfig

PROJECT, LOCATION = "ion-ops-test", "us-central1"
QUEUE = f"projects/{PROJECT}/locations/{LOCATION}/queues/fanout-timers"


@pytest.fixture
def standin() -> Iterator[CloudTasksStandIn]:
    state = CloudTasksState(PROJECT, LOCATION, {"fanout-timers"}, RetryConfig(3, 0.05, 0.1))
    server = CloudTasksStandIn(state).start()
    yield server
    server.close()


def client(standin: CloudTasksStandIn) -> Any:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import tasks_v2

    return tasks_v2.CloudTasksClient(
        transport="rest",
        client_options=ClientOptions(api_endpoint=standin.url),
        credentials=AnonymousCredentials(),
    )


def task(url: str, *, name: str = "abc-1", at: datetime | None = None, **http: Any) -> dict[str, Any]:
    from google.protobuf import timestamp_pb2

    schedule = timestamp_pb2.Timestamp()
    schedule.FromDatetime(at or datetime.now(UTC))
    return {
        "name": f"{QUEUE}/tasks/{name}",
        "schedule_time": schedule,
        "http_request": {"url": url, "http_method": "POST", "body": b'{"x": 1}', **http},
    }


class Target:
    """An HTTP target recording what it receives; answers ``statuses`` in turn, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        target = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                target.received.append({"at": time.time(), "headers": self.headers, "body": body})
                self.send_response(target.statuses.pop(0) if target.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/flush/group"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"parent": QUEUE.replace("fanout-timers", "missing")}, exceptions.NotFound, "Queue does not exist"),
        ({"name": "has/slash"}, exceptions.BadRequest, "Task name must be formatted"),
        ({"name": "x" * 501}, exceptions.BadRequest, "Task name must be formatted"),
        ({"at": datetime.now(UTC) + timedelta(days=31)}, exceptions.BadRequest, "more than 30 days"),
        ({"url": "ftp://example.com/x"}, exceptions.BadRequest, "absolute http:// or https:// URL"),
        ({"http_method": "GET"}, exceptions.BadRequest, "only be set for POST, PUT or PATCH"),
        ({"oidc_token": {"audience": "https://a"}}, exceptions.BadRequest, "service_account_email"),
    ],
)
def test_create_refuses_what_the_api_refuses(
    standin: CloudTasksStandIn, change: dict, error: type, message: str
) -> None:  # type: ignore[type-arg]
    parent = change.pop("parent", QUEUE)
    name = change.pop("name", "abc-1")
    at = change.pop("at", None)
    url = change.pop("url", "https://fanout.example/v1/flush/group")
    with pytest.raises(error, match=message):
        client(standin).create_task(parent=parent, task=task(url, name=name, at=at, **change))
    assert standin.state.tasks == {}


def test_unknown_fields_are_refused_as_the_json_api_does(standin: CloudTasksStandIn) -> None:
    body = json.dumps({"task": {"httpRequest": {"url": "https://a.example/x"}, "eta": "soon"}}).encode()
    request = urllib.request.Request(f"{standin.url}/v2/{QUEUE}/tasks", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"]["message"].startswith(
        'Invalid JSON payload received. Unknown name "eta"'
    )


def test_a_name_used_once_is_already_exists(standin: CloudTasksStandIn) -> None:
    tasks = client(standin)
    tasks.create_task(
        parent=QUEUE, task=task("https://a.example/x", at=datetime.now(UTC) + timedelta(hours=1))
    )
    with pytest.raises(exceptions.Conflict) as caught:
        tasks.create_task(
            parent=QUEUE, task=task("https://a.example/x", at=datetime.now(UTC) + timedelta(hours=1))
        )
    assert caught.value.response.json()["error"]["status"] == "ALREADY_EXISTS"


def test_a_task_is_dispatched_at_its_time_with_cloud_tasks_headers_and_retried(
    standin: CloudTasksStandIn,
) -> None:
    target = Target(statuses=[503])
    try:
        at = datetime.now(UTC) + timedelta(seconds=0.5)
        oidc = {
            "service_account_email": "tasks@ion-ops-test.iam.gserviceaccount.com",
            "audience": "https://fn",
        }
        client(standin).create_task(
            parent=QUEUE,
            task=task(
                target.url,
                name="g-medium-1",
                at=at,
                headers={"Content-Type": "application/json"},
                oidc_token=oidc,
            ),
        )
        first, second = target.wait(2)
        assert first["at"] >= at.timestamp()  # never before its schedule time
        headers = first["headers"]
        assert headers["User-Agent"] == "Google-Cloud-Tasks"
        assert headers["X-CloudTasks-QueueName"] == "fanout-timers"
        assert headers["X-CloudTasks-TaskName"] == "g-medium-1"
        assert headers["Content-Type"] == "application/json"
        assert headers["Authorization"].startswith("Bearer ")
        assert first["body"] == b'{"x": 1}'
        assert second["headers"]["X-CloudTasks-TaskRetryCount"] == "1"  # the 503 was retried
        # The stand-in records an attempt once the target's answer is back: after the target saw it.
        deadline = time.monotonic() + 30
        while len(standin.state.attempts) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [a.status for a in standin.state.attempts] == [503, 200]
    finally:
        target.close()
