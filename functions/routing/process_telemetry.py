"""The process's telemetry: one ``Telemetry`` per service, shipped by its background thread and
flushed once more when the process ends (``atexit``, or SIGTERM where the main thread meets it
first). Made on first use and cached: nothing here runs per request."""

from __future__ import annotations

import atexit
import os
import signal
import threading
from functools import cache

from functions.routing.telemetry import Telemetry

_names: set[str] = set()


@cache
def get_telemetry(service_name: str) -> Telemetry:
    """The process's aggregator for ``service_name``: flushed by a background thread, and once
    more at exit or SIGTERM."""
    telemetry = Telemetry(service_name)
    atexit.register(telemetry.flush)
    _names.add(service_name)
    telemetry.start_background_flush()
    _flush_on_sigterm()
    return telemetry


def _flush_all() -> None:
    for name in list(_names):
        get_telemetry(name).flush()


def _flush_on_sigterm() -> None:
    """Flush before the previous SIGTERM behaviour. Only the main thread may set a handler; a
    worker that first meets telemetry in a request thread relies on its exit's ``atexit``."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def flush_then_continue(signum: int, frame: object) -> None:
        _flush_all()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, flush_then_continue)
    _sigterm_installed = True


_sigterm_installed = False


def reset_telemetry() -> None:
    """Drop every aggregator without flushing (tests change settings between cases)."""
    for name in list(_names):
        telemetry = get_telemetry(name)
        telemetry.stop_background_flush()
        atexit.unregister(telemetry.flush)
    _names.clear()
    get_telemetry.cache_clear()
