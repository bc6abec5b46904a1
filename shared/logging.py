"""Structured JSON logs in Cloud Logging's format, one object per line on stdout.

Cloud Logging lifts ``severity``, ``message``, ``time``, ``logging.googleapis.com/trace``,
``logging.googleapis.com/spanId`` and ``logging.googleapis.com/sourceLocation`` out of the JSON
payload; every other field stays searchable as ``jsonPayload.<field>``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

_trace: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar(
    "ion_trace", default=None
)

_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}
# Attributes every LogRecord has; anything else was passed through ``extra=`` and is logged.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each of ``secrets`` in it replaced by ``REDACTED``: for what a vendor answered
    (an error body may quote the token or key it was sent) before it reaches a log line, a
    dead-letter reason or a stored record. Redact before cutting the text short, so no half
    of a secret is left behind the cut."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def parse_trace_header(traceparent: str | None, cloud_trace: str | None) -> tuple[str, str | None] | None:
    """Trace and span id from a W3C ``traceparent`` or ``X-Cloud-Trace-Context`` header."""
    if traceparent:
        parts = traceparent.split("-")
        if len(parts) >= 3 and len(parts[1]) == 32:
            return parts[1], parts[2]
    if cloud_trace:
        trace_id, _, rest = cloud_trace.partition("/")
        if trace_id:
            span = rest.split(";", 1)[0] or None
            return trace_id, span
    return None


def set_trace(trace: tuple[str, str | None] | None) -> contextvars.Token[tuple[str, str | None] | None]:
    return _trace.set(trace)


def reset_trace(token: contextvars.Token[tuple[str, str | None] | None]) -> None:
    _trace.reset(token)


class CloudLoggingFormatter(logging.Formatter):
    def __init__(self, project: str) -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": record.lineno,
                "function": record.funcName,
            },
        }
        trace = _trace.get()
        if trace:
            entry["logging.googleapis.com/trace"] = f"projects/{self.project}/traces/{trace[0]}"
            if trace[1]:
                entry["logging.googleapis.com/spanId"] = trace[1]
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is now (test capture and workers may swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:  # type: ignore[no-untyped-def]
        pass


_configured = False


def get_logger(name: str) -> logging.Logger:
    """A logger under ``ion`` that writes Cloud Logging JSON; configured once per process."""
    global _configured
    if not _configured:
        from shared.settings import get_settings

        settings = get_settings()
        handler = _StdoutHandler()
        handler.setFormatter(CloudLoggingFormatter(settings.project))
        root = logging.getLogger("ion")
        root.handlers[:] = [handler]
        root.setLevel(settings.log_level.upper())
        root.propagate = False
        _configured = True
    return logging.getLogger(f"ion.{name}")
