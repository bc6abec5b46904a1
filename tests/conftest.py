"""Session fixtures: the Firestore and Pub/Sub emulators and Redis on free ports, started only
when a test asks for them and stopped at the end; per-test isolation of settings, clients and
clock; Firestore reset between tests through the emulator's DELETE endpoint."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Before anything reads settings: a project of the tests' own, never a real one.
os.environ["GOOGLE_CLOUD_PROJECT"] = "ion-ops-test"
for _var in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "REDIS_URL", "ION_API_KEYS"):
    os.environ.pop(_var, None)

from shared import api_calls, api_calls_apps  # noqa: E402

# Every Google API call a function makes in this session is recorded (shared/api_calls.py) and
# checked against the Terraform grants at the end of the session (pytest_sessionfinish below).
# Set before anything imports a Google client, so every channel is intercepted; subprocesses
# (devtools.serve, make run) inherit the variable and record into the same folder.
API_CALLS_ROOT = Path(__file__).resolve().parent.parent / ".run" / "api-calls"
# One folder per session (its pid), so two sessions of one work tree never mix or clear each
# other's calls; folders of sessions no longer running are removed.
API_CALLS_DIR = API_CALLS_ROOT / f"session-{os.getpid()}"


def _session_running(folder: Path) -> bool:
    try:
        os.kill(int(folder.name.removeprefix("session-")), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


if not os.environ.get(api_calls.ENV_VAR):
    API_CALLS_ROOT.mkdir(parents=True, exist_ok=True)
    for _old in API_CALLS_ROOT.iterdir():
        if _old.is_dir() and not _session_running(_old):
            shutil.rmtree(_old, ignore_errors=True)
        elif _old.is_file():
            _old.unlink()
    API_CALLS_DIR.mkdir()
    os.environ[api_calls.ENV_VAR] = str(API_CALLS_DIR)
api_calls_apps.install_from_env()

from devtools.emulators import reset_firestore, start_firestore_and_pubsub, start_redis  # noqa: E402
from devtools.processes import ManagedProcess, free_port, python, wait_until_http  # noqa: E402
from shared import clock, firestore, pubsub  # noqa: E402
from shared import redis as shared_redis  # noqa: E402
from shared.settings import get_settings  # noqa: E402
from shared.topology import ROOT, load_topology  # noqa: E402

PROJECT = "ion-ops-test"
LOG_DIR = ROOT / ".run" / "test-logs"


def _reset_caches() -> None:
    get_settings.cache_clear()
    # Each capability's settings too (``get_<capability>_settings``, cached per process): a test
    # that set a variable (say ION_METRICS_UPDATES_TOPIC="") left its settings to whichever test
    # ran next in the same worker, and that one's outcome hung on the order files were dealt.
    for name, module in list(sys.modules.items()):
        if name.startswith("functions.") and name.endswith(".settings"):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", "") == name:
                    value.cache_clear()
    firestore.reset_clients()
    pubsub.reset_clients()
    shared_redis.reset_clients()


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    """Each test starts from the environment as the session left it and the real clock."""
    saved_env = dict(os.environ)
    _reset_caches()
    saved_clock = clock.get_clock()
    yield
    clock.set_clock(saved_clock)
    os.environ.clear()
    os.environ.update(saved_env)
    _reset_caches()


@dataclass(frozen=True)
class Emulators:
    firestore_host: str
    pubsub_host: str
    project: str = PROJECT


@pytest.fixture(scope="session")
def emulators() -> Iterator[Emulators]:
    fs_port, ps_port = free_port(), free_port()
    started = start_firestore_and_pubsub(fs_port, ps_port, PROJECT, log_dir=LOG_DIR)
    try:
        os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{fs_port}"
        os.environ["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{ps_port}"
        yield Emulators(f"127.0.0.1:{fs_port}", f"127.0.0.1:{ps_port}")
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def fs(emulators: Emulators):  # type: ignore[no-untyped-def]
    """A Firestore client on an emptied emulator database. After the test, every collection that
    holds a document with ``expire_at`` must have a TTL policy in topology.yaml, or that field
    would never delete anything."""
    # Set again: the session's emulators may have been started inside an earlier test (through
    # ``request.getfixturevalue``), whose environment ``_isolated`` put back as it was.
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulators.firestore_host
    os.environ["PUBSUB_EMULATOR_HOST"] = emulators.pubsub_host
    reset_firestore(emulators.firestore_host, emulators.project)
    _reset_caches()
    client = firestore.get_firestore()
    yield client
    ttl_collections = {policy.collection for policy in load_topology().ttl_policies}
    without_policy = sorted(set(_collections_with_field(client, "expire_at")) - ttl_collections)
    assert not without_policy, (
        f"documents with expire_at but no TTL policy in topology.yaml: {without_policy}"
    )


def _collections_with_field(client, field: str, parent=None, depth: int = 0) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Collection ids (at any depth) holding a document with ``field``; a bounded sample per
    collection is enough, since a collection's documents share their writer."""
    collections = client.collections() if parent is None else parent.collections()
    for collection in collections:
        sample = list(itertools.islice(collection.list_documents(page_size=20), 20))
        if any(field in (snap.to_dict() or {}) for snap in client.get_all(sample)):
            yield collection.id
        if depth < 2:
            for ref in sample[:5]:
                yield from _collections_with_field(client, field, ref, depth + 1)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    port = free_port()
    proc = start_redis(port, log_dir=LOG_DIR)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """REDIS_URL set for this test, on an emptied Redis."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    os.environ["REDIS_URL"] = redis_server
    _reset_caches()
    return redis_server


@dataclass
class LiveCapability:
    url: str
    process: ManagedProcess


@pytest.fixture
def serve_capability(emulators: Emulators) -> Iterator[Callable[..., LiveCapability]]:
    """Serve a capability under functions-framework over real HTTP, with this test's environment."""
    running: list[ManagedProcess] = []

    def serve(capability: str, env: dict[str, str] | None = None) -> LiveCapability:
        port = free_port()
        proc = ManagedProcess(
            f"{capability}-{port}",
            [python(), "-m", "devtools.serve", capability, "--port", str(port)],
            env={"PYTHONUNBUFFERED": "1", **(env or {})},
            log_dir=LOG_DIR,
            cwd=ROOT,
        )
        running.append(proc)
        wait_until_http(f"http://127.0.0.1:{port}/", proc, 60)
        return LiveCapability(f"http://127.0.0.1:{port}", proc)

    yield serve
    for proc in running:
        proc.stop()


def fixture_source(name: str) -> str:
    return str(Path(__file__).parent / "fixtures" / name)


sys.path.insert(0, str(ROOT))


# --- the session's Google API calls against the Terraform grants (devtools/permissions.py) -----


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every call a function made in this session must be allowed by its grants: a gap fails the
    run however the tests went. Order-free: it reads the union of the calls recorded, whichever
    tests ran. A need not yet in terraform/iam/needs.yaml is noted, not failed. Every Firestore
    query a function ran must be served by an index production has (single-field or declared in
    topology.yaml's composite_indexes). Under pytest-xdist the controller checks, once every
    worker has finished and recorded into the same folder."""
    if hasattr(session.config, "workerinput"):
        return
    folder = Path(os.environ.get(api_calls.ENV_VAR, API_CALLS_DIR))
    if not api_calls.recording() or not folder.is_dir():
        return
    from devtools import permissions
    from shared.firestore_indexes import recorded_problems

    failures, notes = permissions.check_session(folder, PROJECT)
    calls = api_calls.read_calls(folder)
    # Queries production would refuse for want of an index (the emulator serves any).
    index_failures = recorded_problems(calls, load_topology())
    session.config._ion_permission_report = (calls, failures, notes, index_failures)  # type: ignore[attr-defined]
    if (failures or index_failures) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    report = getattr(config, "_ion_permission_report", None)
    if report is None:
        return
    calls, failures, notes, index_failures = report
    methods = {call.method for call in calls}
    terminalreporter.write_sep("-", "permission check (devtools/permissions.py)")
    terminalreporter.write_line(
        f"{len(calls)} distinct Google API calls of {len({c.function for c in calls})} functions, "
        f"{len(methods)} methods, recorded under {os.environ.get(api_calls.ENV_VAR)}"
    )
    for note in notes:
        terminalreporter.write_line(f"permission check note: {note}", yellow=True)
    for failure in failures:
        terminalreporter.write_line(f"PERMISSION CHECK FAILED: {failure}", red=True)
    queries = {call.query for call in calls if call.query}
    terminalreporter.write_line(
        f"{len(queries)} distinct Firestore query shapes checked against their indexes"
    )
    for failure in index_failures:
        terminalreporter.write_line(f"FIRESTORE INDEX CHECK FAILED: {failure}", red=True)


@pytest.fixture
def query_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Documents returned by queries, counted at the client (gets by id are not counted): a list
    endpoint that reads its page only, not every document kept."""
    from google.cloud.firestore_v1.query import Query

    counted = [0]
    real_stream = Query.stream

    def stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for snap in real_stream(self, *args, **kwargs):
            counted[0] += 1
            yield snap

    monkeypatch.setattr(Query, "stream", stream)
    return counted
