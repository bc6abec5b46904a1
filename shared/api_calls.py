"""Records every Google API method a function calls, for the permission check
(``devtools/permissions.py``): the emulators and stand-ins ignore IAM, so a missing grant is only
visible as the calls a function makes, compared with what Terraform grants it.

Off unless ``ION_RECORD_API_CALLS`` is set when ``shared.api_calls_apps.install_from_env()`` runs
(``main.py`` calls it at import, ``devtools.serve`` before it builds its apps, ``tests/conftest.py``
for the session):

- ``ION_RECORD_API_CALLS=/some/dir``: each process appends to ``/some/dir/calls-<pid>.jsonl``;
- ``ION_RECORD_API_CALLS=/some/file.jsonl``: every process appends to that one file.

Off, nothing is patched and nothing more is imported: the cost is reading one variable.

One JSON object per line (``ApiCall``), each distinct record written once per process, at once (a
process killed later loses nothing). Calls are attributed to a function:

- a process serving one function (deployed, the deployment rehearsal): ``FUNCTION_TARGET`` as it
  was when the recorder was installed;
- apps made by ``functions_framework.create_app(target, ...)`` after install (the tests, and
  ``devtools.serve`` which serves a capability's functions in one process): the app's target,
  set around each request (a contextvar; ``shared/api_calls_apps.py``);
- threads a function starts (``threading.Thread``, ``ThreadPoolExecutor.submit``) inherit it;
  Pub/Sub publishes, sent by the client's own batching threads, go to the functions that called
  ``publish()`` for that topic.

Anything else (a test seeding data) is no function's call and is not recorded. What is recorded:
gRPC calls through an interceptor on every channel ``grpc`` makes (Firestore, Pub/Sub, Cloud
Monitoring, and the other GAPIC clients' default transport), and REST calls through
``google.auth``'s ``AuthorizedSession`` (BigQuery and the GAPIC clients' REST transport, which the
tests point at local stand-ins), normalised to the gRPC method name where one exists. These hooks
are ``shared/api_call_hooks.py``'s, patched in by ``install``.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.api_methods import service_account_resource

ENV_VAR = "ION_RECORD_API_CALLS"

_caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("ion_api_caller", default=None)
_local_only: contextvars.ContextVar[str | None] = contextvars.ContextVar("ion_api_local_only", default=None)


class ApiCall(BaseModel):
    """One distinct call as the check reads it. ``resource`` is what the permission is checked on;
    ``detail`` what else decides it (a Firestore write's kind, a task's OIDC identity...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def key(self) -> tuple[Any, ...]:
        return (
            self.project,
            self.function,
            self.api,
            self.method,
            self.resource,
            self.detail,
            tuple(sorted(self.settings.items())),
            self.local_only,
            self.query,
        )

    function: str
    api: str  # the service host, e.g. firestore.googleapis.com
    method: str  # google.firestore.v1.Firestore/Commit, bigquery.jobs.query
    resource: str  # projects/P/databases/(default), projects/P/topics/T, ...
    detail: str = ""
    # Settings (environment variables) whose value the resource was built from, with the value
    # seen here: the check puts the deployed value in its place (tests use their own names).
    settings: dict[str, str] = Field(default_factory=dict)
    # Set for a call made only where no deployed function runs (e.g. an emulator's fallback).
    local_only: str | None = None
    # The process's own project (GOOGLE_CLOUD_PROJECT): the check reads it as the deployed one.
    project: str | None = None
    # A Firestore query's shape (``shared.firestore_indexes.QueryShape`` as JSON): the index
    # check at the session's end reads it (the emulator needs no index, production does).
    query: str = ""


# --- attribution ---------------------------------------------------------------------------------


@contextlib.contextmanager
def calls_of(function: str | None) -> Iterator[None]:
    """Attribute the calls made inside the block (and in threads it starts) to ``function``."""
    token = _caller.set(function)
    try:
        yield
    finally:
        _caller.reset(token)


@contextlib.contextmanager
def local_only(reason: str) -> Iterator[None]:
    """Calls in the block happen only locally (say why): recorded so, and not checked."""
    token = _local_only.set(reason)
    try:
        yield
    finally:
        _local_only.reset(token)


def current_function() -> str | None:
    if _recorder is None:
        return None
    return _caller.get() or _recorder.default_function


def explicit_caller() -> str | None:
    """The function calls are attributed to here by ``calls_of`` (not the process's default)."""
    return _caller.get()


# --- recording -----------------------------------------------------------------------------------


class Recorder:
    def __init__(self, target: Path, default_function: str | None) -> None:
        self.default_function = default_function
        if target.suffix == ".jsonl":
            target.parent.mkdir(parents=True, exist_ok=True)
            self.path = target
        else:
            target.mkdir(parents=True, exist_ok=True)
            self.path = target / f"calls-{os.getpid()}.jsonl"
        self._seen: set[tuple[Any, ...]] = set()
        self._lock = threading.Lock()
        # Pub/Sub: topic -> functions that called publish() for it since its last Publish RPC.
        self.pending_publishes: dict[str, set[str]] = {}

    def note_publisher(self, topic: str, function: str) -> None:
        """``function`` called publish() for ``topic`` (the client's thread sends it later)."""
        with self._lock:
            self.pending_publishes.setdefault(topic, set()).add(function)

    def take_publishers(self, topic: str) -> set[str]:
        """The functions that published to ``topic`` since its last Publish RPC, forgotten."""
        with self._lock:
            return self.pending_publishes.pop(topic, set())

    def add(
        self, function: str, api: str, method: str, resource: str, detail: str = "", *, query: str = ""
    ) -> None:
        settings = _settings_behind(resource)
        project = os.environ.get("GOOGLE_CLOUD_PROJECT")
        key = (
            project,
            function,
            api,
            method,
            resource,
            detail,
            tuple(sorted(settings.items())),
            _local_only.get(),
            query,
        )
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            call = ApiCall(
                function=function,
                api=api,
                method=method,
                resource=resource,
                detail=detail,
                settings=settings,
                local_only=key[-2],
                project=project,
                query=query,
            )
            line = call.model_dump_json(exclude_defaults=True) + "\n"
            # One O_APPEND write per line: processes sharing one file never interleave a line.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)


_recorder: Recorder | None = None
_install_lock = threading.Lock()

# A resource built from an ION_* setting (a queue, an account, a table, a project) is recorded with
# that setting, and the check puts the deployed value in its place. These name no resource (the
# process's own project is recorded as `project` and related by the check).
_NOT_A_RESOURCE_SETTING = {"GOOGLE_CLOUD_PROJECT", "FUNCTION_TARGET", "K_SERVICE", ENV_VAR}


def setting_forms(value: str) -> list[str]:
    """How a setting's value can appear inside a resource name (shared with the check, which
    pairs a test value's forms with the deployed value's, in this order)."""
    forms = [value]
    parts = value.split(".")
    if len(parts) == 3 and all(parts) and "/" not in value and "@" not in value:  # project.dataset.table
        forms.append(f"projects/{parts[0]}/datasets/{parts[1]}/tables/{parts[2]}")
    if "@" in value:
        forms.append(service_account_resource(value))
    if re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]{4,28}[a-zA-Z0-9]", value):  # a project id (or the check's PROJECT)
        forms.append(f"projects/{value}")
    if re.fullmatch(r"[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}", value):  # a billing account id
        forms.append(f"billingAccounts/{value}")
    if value.startswith("projects/") and value.count("/") > 1:  # a resource name: also its project
        forms.append("/".join(value.split("/")[:2]))
    return forms


def _settings_behind(resource: str) -> dict[str, str]:
    found: dict[str, str] = {}
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    for name, value in os.environ.items():
        if not name.startswith("ION_") or name in _NOT_A_RESOURCE_SETTING or len(value) < 4:
            continue
        own = f"projects/{project}"
        for form in (form for item in value.split(",") for form in setting_forms(item)):
            # The function's own project names a resource itself (a job's project) but is no
            # prefix of one: it would claim every resource of the project for this setting.
            if resource == form or (form != own and resource.startswith(form + "/")):
                found[name] = value
                break
    return found


def record_call(api: str, method: str, resource: str, detail: str = "", query: str = "") -> None:
    if method == "google.longrunning.Operations/GetOperation":
        resource = resource.rsplit("/", 1)[0] + "/*"  # each operation's id is new: its place decides
    recorder = _recorder
    if recorder is None:
        return
    function = _caller.get() or recorder.default_function
    if function is None:
        return
    recorder.add(function, api, method, resource, detail, query=query)


# --- switching on --------------------------------------------------------------------------------


def install(target: str | Path, default_function: str | None = None) -> None:
    """Start recording to ``target`` (a directory, or a ``.jsonl`` file). Idempotent; call it
    before the Google clients make their channels."""
    global _recorder
    with _install_lock:
        if _recorder is not None:
            return
        _recorder = Recorder(Path(target), default_function)
        # Imported only now: off, recording costs no more than reading one variable.
        from shared.api_call_hooks import patch_clients

        patch_clients()


def install_from_env() -> bool:
    """Install when ``ION_RECORD_API_CALLS`` is set; a process serving one function
    (``FUNCTION_TARGET``) attributes every call it makes to it. True when recording. Entry points
    call ``shared.api_calls_apps.install_from_env``, which also attributes functions-framework's
    apps (kept apart: domain code importing this module must not reach the HTTP layer)."""
    target = os.environ.get(ENV_VAR)
    if not target:
        return False
    install(target, default_function=os.environ.get("FUNCTION_TARGET") or None)
    return True


def recording() -> bool:
    return _recorder is not None


def active_recorder() -> Recorder | None:
    """The process's recorder once installed (the hooks record through it)."""
    return _recorder


def recorded_path() -> Path | None:
    return None if _recorder is None else _recorder.path


def read_calls(path: Path) -> list[ApiCall]:
    """Every distinct call recorded under ``path`` (a directory of ``*.jsonl`` or one file)."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path] if path.exists() else []
    calls: dict[tuple[Any, ...], ApiCall] = {}
    for file in files:
        for line in file.read_text().splitlines():
            if line.strip():
                call = ApiCall.model_validate_json(line)
                calls[call.key()] = call
    return [calls[key] for key in sorted(calls, key=lambda k: [str(part) for part in (*k[1:], k[0])])]
