"""Start the Firestore and Pub/Sub emulators (from the gcloud CLI) and Redis, on given ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from devtools.processes import ManagedProcess, wait_until_http, wait_until_port

GCLOUD_HINT = (
    "The gcloud CLI is needed for the Firestore and Pub/Sub emulators. Install the Google Cloud "
    "CLI (https://cloud.google.com/sdk/docs/install) with its components "
    "cloud-firestore-emulator and pubsub-emulator, and a Java runtime (JRE 11 or newer)."
)
REDIS_HINT = "redis-server is needed: `sudo apt-get install -y redis-server` (make does this for you)."


class MissingTool(RuntimeError):
    pass


def require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise MissingTool(f"{tool} not found. {hint}")
    return path


def start_firestore(
    port: int, *, log_dir: Path | None = None, echo: TextIO | None = None, timeout: float = 90
) -> ManagedProcess:
    gcloud = require("gcloud", GCLOUD_HINT)
    proc = ManagedProcess(
        "firestore",
        [gcloud, "emulators", "firestore", "start", f"--host-port=127.0.0.1:{port}", "--quiet"],
        log_dir=log_dir,
        echo=echo,
    )
    wait_until_http(f"http://127.0.0.1:{port}/", proc, timeout)
    return proc


@contextlib.contextmanager
def firestore_for_bench(log_dir: Path) -> Iterator[str]:
    """The emulator at ``FIRESTORE_EMULATOR_HOST`` when one is set (a bench re-run over data it
    keeps), else a fresh one on a free port for the ``with`` block. Yields the host."""
    from devtools.processes import free_port

    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "ion-ops-bench")
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        yield os.environ["FIRESTORE_EMULATOR_HOST"]
        return
    port = free_port()
    emulator = start_firestore(port, log_dir=log_dir)
    os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{port}"
    try:
        yield os.environ["FIRESTORE_EMULATOR_HOST"]
    finally:
        del os.environ["FIRESTORE_EMULATOR_HOST"]
        emulator.stop()


def start_pubsub(
    port: int,
    project: str,
    *,
    log_dir: Path | None = None,
    echo: TextIO | None = None,
    timeout: float = 90,
    name: str = "pubsub",
) -> ManagedProcess:
    gcloud = require("gcloud", GCLOUD_HINT)
    proc = ManagedProcess(
        name,
        [
            gcloud,
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port=127.0.0.1:{port}",
            f"--project={project}",
            "--quiet",
        ],
        log_dir=log_dir,
        echo=echo,
    )
    wait_until_http(f"http://127.0.0.1:{port}/", proc, timeout)
    return proc


def start_firestore_and_pubsub(
    fs_port: int, ps_port: int, project: str, *, log_dir: Path
) -> tuple[ManagedProcess, ManagedProcess]:
    """Both emulators started side by side (each JVM takes seconds to come up); if either fails,
    the other is stopped and the failure raised."""
    import threading

    started: dict[str, ManagedProcess] = {}
    errors: list[BaseException] = []

    def start(name: str, launch: Callable[[], ManagedProcess]) -> None:
        try:
            started[name] = launch()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [
        threading.Thread(target=start, args=("fs", lambda: start_firestore(fs_port, log_dir=log_dir))),
        threading.Thread(target=start, args=("ps", lambda: start_pubsub(ps_port, project, log_dir=log_dir))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for proc in started.values():
            proc.stop()
        raise errors[0]
    return started["fs"], started["ps"]


def start_redis(
    port: int, *, log_dir: Path | None = None, echo: TextIO | None = None, timeout: float = 20
) -> ManagedProcess:
    server = require("redis-server", REDIS_HINT)
    proc = ManagedProcess(
        "redis",
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        log_dir=log_dir,
        echo=echo,
    )
    wait_until_port(port, proc, timeout)
    return proc


def reset_firestore(host: str, project: str) -> None:
    """Delete every document in the emulator's default database and the route database."""
    from shared.settings import get_settings

    for database in ("(default)", get_settings().route_database):
        request = urllib.request.Request(
            f"http://{host}/emulator/v1/projects/{project}/databases/{database}/documents", method="DELETE"
        )
        # Generous: the first call to a freshly started emulator on a loaded machine can take a while.
        urllib.request.urlopen(request, timeout=60).close()
