"""Precise group timers: each due time of a group is a Cloud Tasks task (the real
google-cloud-tasks client against the Cloud Tasks stand-in) calling ``/v1/flush/group``, so no
group waits for the minute tick. With a frozen clock the queue is paused and the tests dispatch
each task themselves; the last test runs the served fan-out with a live queue and no tick."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from devtools.cloudtasks_standin import CloudTasksStandIn, CloudTasksState
from functions.fanout.routes import load_routing
from functions.fanout.settings import DEFAULT_ROUTING_FILE
from functions.fanout.timers import task_id
from shared.topology import ROOT
from tests.conftest import PROJECT
from tests.fanout.conftest import PUSH_PATH, Fanout, make_transition, reset_fanout_caches
from tests.pubsub_helpers import push_envelope

pytestmark = pytest.mark.emulators

QUEUE = f"projects/{PROJECT}/locations/us-central1/queues/fanout-timers"
TASKS_ACCOUNT = "ion-ops-fanout-tasks@ion-ops-test.iam.gserviceaccount.com"
ROUTING = load_routing(DEFAULT_ROUTING_FILE)


def timer_env(standin: CloudTasksStandIn, flush_url: str) -> dict[str, str]:
    return {
        "ION_FANOUT_TASKS_QUEUE": QUEUE,
        "ION_FANOUT_FLUSH_URL": flush_url,
        "ION_FANOUT_TASKS_SERVICE_ACCOUNT": TASKS_ACCOUNT,
        "ION_FANOUT_TASKS_ENDPOINT": standin.url,
    }


@pytest.fixture
def queue(fanout: Fanout) -> Iterator[CloudTasksState]:
    """A paused queue: tasks are created and checked, and dispatched only by ``fire``."""
    state = CloudTasksState(PROJECT, "us-central1", {"fanout-timers"}, paused=True)
    standin = CloudTasksStandIn(state).start()
    os.environ.update(timer_env(standin, "http://fanout.local/v1/flush/group"))
    reset_fanout_caches()
    yield state
    standin.close()
    reset_fanout_caches()


def tasks(state: CloudTasksState) -> list[dict[str, Any]]:
    return sorted(state.summary()["tasks"], key=lambda t: t["scheduleTime"])


def due(task: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(task["scheduleTime"].replace("Z", "+00:00"))


def fire(fanout: Fanout, task: dict[str, Any]) -> Any:
    """Dispatch a task as Cloud Tasks does: its method, URL path, headers and body."""
    http = task["httpRequest"]
    headers = dict(http["headers"]) | {
        "User-Agent": "Google-Cloud-Tasks",
        "X-CloudTasks-QueueName": "fanout-timers",
        "X-CloudTasks-TaskName": task["name"].rsplit("/", 1)[1],
    }
    return fanout.http().open(
        urlsplit(http["url"]).path,
        method=http["httpMethod"],
        headers=headers,
        data=base64.b64decode(http["body"]),
    )


def group_of(transition: Any) -> str:
    return ROUTING.group_id(transition)


def test_a_medium_group_is_flushed_by_its_timer_at_group_wait_without_the_tick(
    fanout: Fanout, queue: CloudTasksState
) -> None:
    clock = fanout.freeze(datetime.now(UTC).replace(microsecond=0))
    alert = make_transition(rule="error-rate", severity="medium", at=clock.now())
    assert fanout.push(alert) == 200
    [task] = tasks(queue)
    group = group_of(alert)
    wait_ends = clock.now() + timedelta(seconds=30)
    assert task["name"] == f"{QUEUE}/tasks/{task_id(group, wait_ends)}"
    assert due(task) == wait_ends
    http = task["httpRequest"]
    assert http["url"] == "http://fanout.local/v1/flush/group"
    assert http["httpMethod"] == "POST"
    assert http["oidcToken"] == {"serviceAccountEmail": TASKS_ACCOUNT, "audience": "http://fanout.local"}
    assert json.loads(base64.b64decode(http["body"])) == {
        "group_id": group,
        "due_at": wait_ends.isoformat().replace("+00:00", "Z"),
    }
    assert fanout.slack.messages == []
    clock.advance(timedelta(seconds=30))
    answer = fire(fanout, task)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert len(answer.get_json()["notifications"]) == 1
    [message] = fanout.slack.top_level()
    assert "error-rate" in message.all_text()


def test_a_redelivered_transition_arms_the_same_timer_once(fanout: Fanout, queue: CloudTasksState) -> None:
    clock = fanout.freeze(datetime.now(UTC).replace(microsecond=0))
    alert = make_transition(rule="error-rate", severity="medium", at=clock.now())
    assert fanout.push(alert, message_id="m-1") == 200
    assert fanout.push(alert, message_id="m-2") == 200  # Pub/Sub redelivers
    assert len(queue.creates) == 2  # asked twice, ...
    assert len(tasks(queue)) == 1  # ... one timer: the second was ALREADY_EXISTS, taken as done


def test_the_flush_endpoint_is_safe_to_call_early_and_twice(fanout: Fanout, queue: CloudTasksState) -> None:
    clock = fanout.freeze(datetime.now(UTC).replace(microsecond=0))
    assert fanout.push(make_transition(severity="medium", at=clock.now())) == 200
    [task] = tasks(queue)
    early = fire(fanout, task)
    assert early.status_code == 409
    assert early.headers["Retry-After"] == "30"
    assert "Not due yet" in early.get_json()["detail"]
    assert fanout.slack.messages == []
    clock.advance(timedelta(seconds=30))
    assert fire(fanout, task).status_code == 200
    again = fire(fanout, task)
    assert again.status_code == 200
    assert again.get_json()["notifications"] == []
    assert len(fanout.slack.messages) == 1


@pytest.mark.usefixtures("without_escalation")
def test_group_interval_and_repeat_are_served_by_timers(fanout: Fanout, queue: CloudTasksState) -> None:
    clock = fanout.freeze(datetime.now(UTC).replace(microsecond=0))
    start = clock.now()
    first = make_transition(rule="error-rate", severity="high", endpoint="/v2/route", at=start)
    assert fanout.push(first) == 200
    assert len(fanout.slack.top_level()) == 1  # group_wait 0: at once, from the Pub/Sub handler
    [repeat] = tasks(queue)
    assert due(repeat) == start + timedelta(hours=4)  # high's repeat_interval
    clock.advance(timedelta(seconds=5))
    follower = make_transition(rule="error-rate", severity="high", endpoint="/v2/bulk", at=clock.now())
    assert fanout.push(follower) == 200
    interval, repeat = tasks(queue)
    assert due(interval) == start + timedelta(minutes=5)  # group_interval after the first flush
    clock.set(due(interval))
    assert fire(fanout, interval).status_code == 200
    assert len(fanout.slack.top_level()) == 2
    # That flush moved the repeat: a new timer 4 h after it; the old one finds nothing due.
    later = max(tasks(queue), key=due)
    assert due(later) == due(interval) + timedelta(hours=4)
    clock.set(due(repeat))
    assert fire(fanout, repeat).get_json()["notifications"] == []
    clock.set(due(later))
    answer = fire(fanout, later)
    assert answer.get_json()["notifications"] == [f"{group_of(first)}-r3"]
    assert any(m.reply_broadcast for m in fanout.slack.messages)  # the repeat, in the thread


def test_a_timer_that_cannot_be_armed_is_left_to_the_tick(fanout: Fanout, queue: CloudTasksState) -> None:
    os.environ["ION_FANOUT_TASKS_QUEUE"] = f"projects/{PROJECT}/locations/us-central1/queues/missing"
    reset_fanout_caches()
    clock = fanout.freeze(datetime.now(UTC).replace(microsecond=0))
    assert fanout.push(make_transition(severity="medium", at=clock.now())) == 200  # never lost
    assert tasks(queue) == []
    assert len(queue.creates) == 1  # asked, refused (NOT_FOUND), logged
    clock.advance(timedelta(seconds=30))
    assert len(fanout.tick()["flushed"]) == 1
    assert len(fanout.slack.messages) == 1


def test_a_live_queue_delivers_medium_within_its_group_wait_with_no_tick(
    fanout: Fanout, emulators: Any, tmp_path: Any
) -> None:
    """The served fan-out (functions-framework), a live queue, medium's group_wait at 2 s, and no
    flush tick at all: the timer's task is the only way the group can be flushed."""
    import urllib.request

    from devtools.processes import ManagedProcess, free_port, python, wait_until_http
    from tests.conftest import LOG_DIR

    routing = tmp_path / "routing.yaml"
    routing.write_text(DEFAULT_ROUTING_FILE.read_text().replace("group_wait: 30s", "group_wait: 2s", 1))
    state = CloudTasksState(PROJECT, "us-central1", {"fanout-timers"})
    standin = CloudTasksStandIn(state).start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"PYTHONUNBUFFERED": "1", "ION_FANOUT_ROUTING_FILE": str(routing)}
    served = ManagedProcess(
        f"fanout-timers-{port}",
        [python(), "-m", "devtools.serve", "fanout", "--port", str(port)],
        env=env | timer_env(standin, f"{url}/v1/flush/group"),
        log_dir=LOG_DIR,
        cwd=ROOT,
    )
    try:
        wait_until_http(f"{url}/", served, 60)
        alert = make_transition(rule="error-rate", severity="medium")
        envelope = json.dumps(push_envelope(alert.model_dump(mode="json"))).encode()
        request = urllib.request.Request(
            url + PUSH_PATH, data=envelope, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        deadline = time.monotonic() + 60  # a bound on waiting, not a timing assertion
        while not (fanout.slack.messages and state.attempts) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(fanout.slack.messages) == 1
        assert [a.status for a in state.attempts] == [200]  # dispatched once, at its time, answered
    finally:
        served.stop()
        standin.close()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"group_id": "medium-../../x", "due_at": "2026-01-01T00:00:00Z"}, "group_id"),
        ({"group_id": "medium-" + "a" * 24, "due_at": "2026-01-01T00:00:00"}, "due_at"),  # no time zone
        ({"group_id": "medium-" + "a" * 24, "due_at": "2026-01-01T00:00:00Z", "extra": 1}, "extra"),
    ],
)
def test_a_bad_timer_body_is_a_422_naming_the_field(fanout: Fanout, body: dict, field: str) -> None:  # type: ignore[type-arg]
    answer = fanout.http().post("/v1/flush/group", json=body)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert field in json.dumps(answer.get_json()["errors"])
    assert fanout.slack.messages == []
