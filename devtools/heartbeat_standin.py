"""A local stand-in of an external dead man's switch (healthchecks.io, Cronitor, a PagerDuty
heartbeat): it records every ping so a test, or a person during ``make run``, can check that each
evaluation cycle pinged once.

Any ``GET``, ``HEAD`` or ``POST`` is a ping, recorded with its path, method, body (first 1 KB) and
time, and answered 200 (``status`` to answer something else, ``delay_seconds`` to answer late).
``GET /_pings`` lists the pings so far (``{"pings": [...]}``) and is not one.

    python -m devtools.heartbeat_standin --port 8693
    ION_ALERTS_HEARTBEAT_URL=http://127.0.0.1:8693/ping/local  # for the alerts capability
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import UTC, datetime
from typing import Any

from devtools.standin_http import JsonHandler, serve, serve_until_interrupted

LIST_PATH = "/_pings"


class HeartbeatHandler(JsonHandler):
    def do_GET(self) -> None:
        if self.path == LIST_PATH:
            with self.server.lock:
                self.send_json(200, {"pings": list(self.server.pings)})
            return
        self._ping()

    def do_HEAD(self) -> None:
        self._ping()

    def do_POST(self) -> None:
        self._ping()

    def _ping(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.pings.append(
                {
                    "path": self.path,
                    "method": self.command,
                    "body": body[:1024].decode("utf-8", "replace"),
                    "user_agent": self.headers.get("User-Agent", ""),
                    "at": datetime.now(UTC).isoformat(),
                }
            )
        if self.server.delay_seconds:
            time.sleep(self.server.delay_seconds)
        try:
            if self.command == "HEAD":
                self.send_response(self.server.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_json(self.server.status, {"ok": 200 <= self.server.status < 300})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the pinger gave up waiting (its timeout): the ping is recorded all the same


def start(port: int, *, status: int = 200, delay_seconds: float = 0.0) -> Any:
    """The stand-in on a daemon thread (tests): ``.pings`` holds what it received."""
    return serve(
        HeartbeatHandler, port, pings=[], lock=threading.Lock(), status=status, delay_seconds=delay_seconds
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8693)
    parser.add_argument("--status", type=int, default=200, help="status every ping is answered with")
    args = parser.parse_args(argv)
    return serve_until_interrupted(
        HeartbeatHandler,
        args.port,
        f"heartbeat stand-in on 127.0.0.1:{args.port}: pings listed at {LIST_PATH}",
        pings=[],
        lock=threading.Lock(),
        status=args.status,
        delay_seconds=0.0,
    )


if __name__ == "__main__":
    raise SystemExit(main())
