"""Child processes in their own process groups, logged with a prefix, stopped without leftovers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO


class ManagedProcess:
    """A child in its own session (so the emulators' java grandchildren stop with it)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        echo: TextIO | None = None,
        cwd: Path | None = None,
        clear_env: bool = False,
    ) -> None:
        """``clear_env``: the child gets ``env`` alone, not this process's environment too."""
        self.name = name
        self.argv = list(argv)
        log_file = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            log_file = open(log_dir / f"{name}.log", "a", buffering=1)  # noqa: SIM115
        self.popen = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env or {}) if clear_env else {**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        self.tail: list[str] = []
        self._pump = threading.Thread(
            target=self._copy_output, args=(log_file, echo), name=f"log-{name}", daemon=True
        )
        self._pump.start()

    def _copy_output(self, log_file: TextIO | None, echo: TextIO | None) -> None:
        assert self.popen.stdout is not None
        prefix = f"[{self.name}] "
        for line in self.popen.stdout:
            self.tail = [*self.tail[-49:], line]
            if log_file is not None:
                log_file.write(line)
            if echo is not None:
                echo.write(prefix + line)
                echo.flush()
        if log_file is not None:
            log_file.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM to the whole group, then SIGKILL after ``timeout``."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # The group may outlive its leader (gcloud's wrapper exits, java stays): end it too.
        _signal_group(self.popen.pid, signal.SIGKILL)
        self._pump.join(2)

    def describe_failure(self) -> str:
        command = " ".join(self.argv)
        return f"{self.name} ({command}) exited with {self.popen.poll()}:\n" + "".join(self.tail[-20:])


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: each socket stays bound until all are chosen (one
    ``free_port`` after another may hand out the same port twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until_http(url: str, process: ManagedProcess | None, timeout: float) -> None:
    """Wait until ``url`` answers any HTTP status; fail fast if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(process.describe_failure())
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def wait_until_port(port: int, process: ManagedProcess | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(process.describe_failure())
        if port_open(port):
            return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not open within {timeout:.0f}s")


def python() -> str:
    return sys.executable
