"""The external dead man's switch: every evaluation cycle pings a URL outside ION.

The jobs' own dead man's switch (``jobs.py``) runs inside the evaluation cycle, so it cannot see
the cycle itself stop: a crash-looping evaluator, a paused ``evaluate-alerts`` job or a Firestore
outage page nobody through ION. So each completed cycle pings ``ION_ALERTS_HEARTBEAT_URL`` (a
healthchecks.io, Cronitor or PagerDuty heartbeat style URL), and that service pages when the
pings stop. Cloud Monitoring's "no evaluation for 3 minutes" policy (terraform/monitoring.tf)
watches the same thing from inside Google Cloud.

A ping never fails or delays the cycle beyond its timeout: it runs on a thread that the cycle
waits for at most ``timeout`` seconds (name resolution included, which urllib's own timeout does
not bound), and a failure is logged, never raised. The URL is a capability (whoever has it can keep
the switch quiet), so only its scheme and host are ever logged or shown.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from shared.clock import utcnow
from shared.logging import get_logger, redact

log = get_logger("alerts.heartbeat")
USER_AGENT = "ion-ops-evaluate-alerts"


@dataclass(frozen=True)
class Ping:
    at: datetime
    ok: bool
    detail: str  # "HTTP 200", "timed out after 5 s", "URLError: ..."
    seconds: float


def shown(url: str) -> str:
    """What may be logged of a heartbeat URL: its scheme and host, never its path (the secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/..."


class HeartbeatPinger:
    """Pings one URL per call; remembers the last ping for ``/health``."""

    def __init__(self, url: str | None, method: Literal["GET", "POST"] = "GET", timeout: float = 5.0) -> None:
        self.url = url or None
        self.method = method
        self.timeout = timeout
        self.last: Ping | None = None
        self.pings = 0
        self.failures = 0

    def status(self) -> dict[str, object]:
        if self.url is None:
            return {"configured": False, "detail": "ION_ALERTS_HEARTBEAT_URL unset (local run): no ping"}
        last = self.last
        return {
            "configured": True,
            "target": shown(self.url),
            "pings": self.pings,
            "failures": self.failures,
            "last": None
            if last is None
            else {"at": last.at.isoformat(), "ok": last.ok, "detail": last.detail, "seconds": last.seconds},
        }

    def ping(self, body: bytes = b"") -> Ping | None:
        """Ping once, waiting at most ``timeout`` seconds; None when no URL is configured."""
        if self.url is None:
            return None
        outcome: list[tuple[bool, str]] = []
        started = time.monotonic()
        worker = threading.Thread(target=self._send, args=(body, outcome), daemon=True, name="heartbeat")
        worker.start()
        worker.join(self.timeout)
        ok, detail = outcome[0] if outcome else (False, f"timed out after {self.timeout:g} s")
        ping = Ping(utcnow(), ok, detail, round(time.monotonic() - started, 3))
        self.last = ping
        self.pings += 1
        if ok:
            log.info("heartbeat sent to %s: %s", shown(self.url), detail, extra={"heartbeat_ok": True})
        else:
            self.failures += 1
            # A warning, not an error: the cycle did its work; the external switch will page
            # if pings keep failing, which is what it is for.
            log.warning("heartbeat to %s failed: %s", shown(self.url), detail, extra={"heartbeat_ok": False})
        return ping

    def _send(self, body: bytes, outcome: list[tuple[bool, str]]) -> None:
        assert self.url is not None
        try:
            # Built inside the try: a URL urllib refuses (no scheme) fails the ping, not the thread.
            request = urllib.request.Request(
                self.url,
                data=body if self.method == "POST" else None,
                method=self.method,
                headers={"User-Agent": USER_AGENT, "Content-Type": "text/plain; charset=utf-8"},
            )
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read(1024)
                outcome.append((200 <= answer.status < 300, f"HTTP {answer.status}"))
        except urllib.error.HTTPError as exc:
            outcome.append((False, f"HTTP {exc.code}"))
        except (TimeoutError, urllib.error.URLError) as exc:
            late = isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)
            if late:
                outcome.append((False, f"timed out after {self.timeout:g} s"))
            else:
                outcome.append((False, self._failure(exc)))
        except Exception as exc:  # noqa: BLE001 - any failure is logged, never raised
            outcome.append((False, self._failure(exc)))

    def _failure(self, exc: Exception) -> str:
        """The error, logged and shown: urllib quotes the URL or its path (the secret) in some."""
        assert self.url is not None
        try:
            parts = urlsplit(self.url)
            secrets = [self.url, parts.path if len(parts.path) > 1 else None, parts.query]
        except ValueError:  # not even a URL to split: the whole of it is the secret
            secrets = [self.url]
        return f"{type(exc).__name__}: {redact(str(exc), secrets)[:200]}"
