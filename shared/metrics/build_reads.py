"""Rollup documents read once per build: a dashboard or report asks many queries of one metric
over one window (percentiles, counts, per region, the trend), and each used to stream the same
hour rollups again. Inside ``rollup_reads()`` the query code keeps each range of rollups it
streamed, and every later query of the same metric, resolution and range folds the kept
documents instead of reading them again; two queries asking at once read once (the second waits
for the first). Outside it, queries stream as before.

Scope it to one build: the documents are held until the block ends (a 7-day window of a busy
metric is a few MB)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

RangeKey = tuple[str, str, Any, Any]  # metric, resolution, range start, range end


class BuildReads:
    """The rollup ranges streamed during one build, with sketches or as summaries only."""

    def __init__(self) -> None:
        self._docs: dict[tuple[RangeKey, bool], list[dict[str, Any]]] = {}
        self._locks: dict[tuple[RangeKey, bool], threading.Lock] = {}
        self._guard = threading.Lock()
        self.streamed = 0  # ranges read from Firestore
        self.reused = 0  # ranges answered from what was read
        # Decoded sketches by their stored bytes: percentile queries of one range decode each
        # once (decoding was a fifth of a cold build). Folding merges them into sketches of its
        # own, never into these.
        self._sketches: dict[bytes, Any] = {}
        # A range's documents reduced once per recording rule (the minutes of the hours not
        # folded yet, merged as the rule would record them): later queries the rule answers fold
        # a few series per hour instead of every stored series of every minute.
        self._reduced: dict[tuple[RangeKey, str, bool], list[dict[str, Any]]] = {}
        self._reduce_locks: dict[Any, threading.Lock] = {}
        self._once: dict[Any, Any] = {}

    def sketch(self, data: bytes, decode: Callable[[bytes], Any]) -> Any:
        found = self._sketches.get(data)
        if found is None:
            found = self._sketches[data] = decode(data)
        return found

    def documents(
        self, key: RangeKey, *, sketches: bool, load: Callable[[bool], list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """The range's documents; ``load(sketches)`` streams them once. Documents read with
        sketches also answer a query that needs only the summaries."""
        with self._guard:
            if not sketches and (key, True) in self._docs:
                self.reused += 1
                return self._docs[(key, True)]
            lock = self._locks.setdefault((key, sketches), threading.Lock())
        with lock:
            found = self._docs.get((key, sketches))
            if found is not None:
                with self._guard:
                    self.reused += 1
                return found
            docs = load(sketches)
            with self._guard:
                self._docs[(key, sketches)] = docs
                self.streamed += 1
            return docs

    def once(self, key: Any, load: Callable[[], Any]) -> Any:
        """``load()`` answered once per build (a metric's fold state, read by every query of it)."""
        with self._guard:
            lock = self._reduce_locks.setdefault(("once", key), threading.Lock())
        with lock:
            if key not in self._once:
                self._once[key] = load()
            return self._once[key]

    def reduced(
        self,
        key: RangeKey,
        rule: str,
        *,
        sketches: bool,
        reduce: Callable[[bool], list[dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        """The range reduced by ``rule``; ``reduce(sketches)`` computes it once per build (one
        reduced with sketches also answers a query that needs only the summaries)."""
        with self._guard:
            if not sketches and (key, rule, True) in self._reduced:
                return self._reduced[(key, rule, True)]
            lock = self._reduce_locks.setdefault((key, rule, sketches), threading.Lock())
        with lock:
            found = self._reduced.get((key, rule, sketches))
            if found is None:
                found = reduce(sketches)
                with self._guard:
                    self._reduced[(key, rule, sketches)] = found
            return found


_current: ContextVar[BuildReads | None] = ContextVar("ion_build_reads", default=None)


def current_build_reads() -> BuildReads | None:
    return _current.get()


@contextmanager
def rollup_reads() -> Iterator[BuildReads]:
    """Share rollup reads between the queries of this block (and of threads started with a copy
    of its context: ``contextvars.copy_context().run``)."""
    reads = BuildReads()
    token = _current.set(reads)
    try:
        yield reads
    finally:
        _current.reset(token)
