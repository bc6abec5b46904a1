"""The Cloud Tasks API v2 as the stand-in speaks it: the task resource in its JSON form, the API's
error body, and a ``tasks.create`` request checked field by field as the API checks it (the
queue's existence and name clashes are the stand-in's state to check)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,500}$")
# google.cloud.tasks.v2.HttpMethod: the client sends enums as numbers (``enum-encoding=int``).
METHODS = {1: "POST", 2: "GET", 3: "HEAD", 4: "PUT", 5: "DELETE", 6: "PATCH", 7: "OPTIONS"}
VIEWS = {0: "VIEW_UNSPECIFIED", 1: "BASIC", 2: "FULL"}
TASK_FIELDS = {"name", "scheduleTime", "httpRequest", "appEngineHttpRequest", "dispatchDeadline"}
HTTP_FIELDS = {"url", "httpMethod", "headers", "body", "oidcToken", "oauthToken"}
MAX_AHEAD = timedelta(days=30)
MAX_TASK_BYTES = 1024 * 1024
STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "UNIMPLEMENTED", 409: "ALREADY_EXISTS"}


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def body(self) -> dict[str, Any]:
        return {
            "error": {"code": self.code, "message": self.message, "status": STATUS.get(self.code, "UNKNOWN")}
        }


@dataclass
class Task:
    name: str
    schedule_time: datetime
    http: dict[str, Any]
    created: datetime
    dispatch_deadline: str = "600s"
    dispatch_count: int = 0
    done: bool = False

    def as_json(self, full: bool) -> dict[str, Any]:
        http = {k: v for k, v in self.http.items() if full or k not in ("body", "headers")}
        return {
            "name": self.name,
            "scheduleTime": rfc3339(self.schedule_time),
            "createTime": rfc3339(self.created),
            "dispatchDeadline": self.dispatch_deadline,
            "dispatchCount": self.dispatch_count,
            "responseCount": self.dispatch_count,
            "view": "FULL" if full else "BASIC",
            "httpRequest": http,
        }


def checked_task(parent: str, body: Any, now: datetime, next_seq: Callable[[], int]) -> tuple[Task, bool]:
    """The task a ``tasks.create`` body on queue ``parent`` asks for, and whether the answer is
    the FULL view; ``next_seq`` numbers a task the request leaves unnamed."""
    if not isinstance(body, dict) or not isinstance(body.get("task"), dict):
        raise ApiError(400, "task is required")
    _unknown(body, {"task", "responseView"}, "")
    raw = body["task"]
    _unknown(raw, TASK_FIELDS, "task")
    name = raw.get("name") or f"{parent}/tasks/{next_seq()}{int(now.timestamp() * 1e6)}"
    prefix = f"{parent}/tasks/"
    if not name.startswith(prefix) or not TASK_ID.match(name[len(prefix) :]):
        raise ApiError(
            400,
            f'Task name must be formatted: "{prefix}TASK_ID" where TASK_ID has 1-500 letters '
            f"([A-Za-z]), numbers ([0-9]), hyphens (-) or underscores (_); got {name!r}",
        )
    schedule = _parse_time(raw["scheduleTime"], "task.schedule_time") if raw.get("scheduleTime") else now
    if schedule - now > MAX_AHEAD:
        raise ApiError(
            400, f"The task's schedule_time {raw['scheduleTime']} is more than 30 days in the future"
        )
    if "appEngineHttpRequest" in raw or not isinstance(raw.get("httpRequest"), dict):
        raise ApiError(
            400,
            "task.http_request is required: the queue has HTTP targets "
            "(App Engine targets are not served by this stand-in)",
        )
    http = _checked_http(raw["httpRequest"])
    deadline = raw.get("dispatchDeadline", "600s")
    if not re.fullmatch(r"\d+(\.\d+)?s", str(deadline)) or not 15 <= float(str(deadline)[:-1]) <= 1800:
        raise ApiError(400, f"task.dispatch_deadline must be between 15s and 1800s, not {deadline!r}")
    if len(json.dumps(raw)) > MAX_TASK_BYTES:
        raise ApiError(400, "Task size too large: the maximum is 1 MB")
    task = Task(name, schedule, http, now, str(deadline))
    return task, VIEWS.get(body.get("responseView"), body.get("responseView")) == "FULL"


def _unknown(data: dict[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(data) - known)
    if extra:
        at = f" at '{where}'" if where else ""
        raise ApiError(
            400, f'Invalid JSON payload received. Unknown name "{extra[0]}"{at}: Cannot find field.'
        )


def _checked_http(raw: dict[str, Any]) -> dict[str, Any]:
    _unknown(raw, HTTP_FIELDS, "task.http_request")
    url = raw.get("url") or ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2083:
        raise ApiError(
            400,
            "HttpRequest.url must be an absolute http:// or https:// URL of at most 2083 "
            f"characters, not {url!r}",
        )
    method = METHODS.get(raw.get("httpMethod", 1), raw.get("httpMethod"))  # type: ignore[call-overload]
    if method == "HTTP_METHOD_UNSPECIFIED" or raw.get("httpMethod") == 0:
        method = "POST"  # unspecified means POST
    if method not in METHODS.values():
        raise ApiError(
            400,
            "Invalid value at 'task.http_request.http_method' "
            f'(type.googleapis.com/google.cloud.tasks.v2.HttpMethod), "{method}"',
        )
    if raw.get("body"):
        if method not in ("POST", "PUT", "PATCH"):
            raise ApiError(400, "HttpRequest.body can only be set for POST, PUT or PATCH requests")
        try:
            base64.b64decode(raw["body"], validate=True)
        except ValueError:
            raise ApiError(
                400, "Invalid value at 'task.http_request.body' (TYPE_BYTES): not base64"
            ) from None
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ApiError(400, "HttpRequest.headers must map header names to strings")
    if raw.get("oidcToken") is not None and raw.get("oauthToken") is not None:
        raise ApiError(400, "Only one of oidc_token and oauth_token may be set")
    token = raw.get("oidcToken")
    if token is not None:
        _unknown(token, {"serviceAccountEmail", "audience"}, "task.http_request.oidc_token")
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", token.get("serviceAccountEmail") or ""):
            raise ApiError(400, "oidc_token.service_account_email must be the email of a service account")
    return {
        "url": url,
        "httpMethod": method,
        "headers": headers,
        **{k: raw[k] for k in ("body", "oidcToken") if raw.get(k)},
    }


def _parse_time(text: Any, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ApiError(
            400, f"Invalid value at '{where}' (type.googleapis.com/google.protobuf.Timestamp), {text!r}"
        )
    return parsed.astimezone(UTC)


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
