"""Firestore operations counted at the client (tests and benches): every document written by a
successful commit and every document read (point reads and query results), by collection.

    with FirestoreOps() as ops:
        ...
    ops.writes["alert_states"], ops.reads["alert_states"], ops.commits

Counting sits under our own code, on the generated API client every read and write goes through,
so what is counted is what Firestore bills, whatever store or helper issued it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Self


def _collection(name: str) -> str:
    """``projects/p/databases/d/documents/a/x/b/y`` → ``b`` (the document's own collection)."""
    parts = name.split("/documents/", 1)[-1].split("/")
    return parts[-2] if len(parts) >= 2 else parts[0]


class FirestoreOps:
    def __init__(self) -> None:
        self.writes: Counter[str] = Counter()
        self.reads: Counter[str] = Counter()
        self.commits = 0
        self.queries = 0
        self._lock = threading.Lock()
        self._saved: dict[str, Any] = {}

    def reset(self) -> None:
        with self._lock:
            self.writes.clear()
            self.reads.clear()
            self.commits = self.queries = 0

    def __enter__(self) -> Self:
        from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

        ops = self
        real = {
            name: getattr(FirestoreClient, name) for name in ("commit", "batch_get_documents", "run_query")
        }
        self._saved = real

        def commit(client: Any, request: Any = None, **kwargs: Any) -> Any:
            response = real["commit"](client, request=request, **kwargs)
            writes = request["writes"] if isinstance(request, dict) else request.writes
            with ops._lock:
                ops.commits += 1
                for write in writes:
                    pb = getattr(write, "_pb", write)
                    name = pb.update.name if pb.HasField("update") else pb.delete
                    ops.writes[_collection(name)] += 1
            return response

        def counted(responses: Iterable[Any], field: str) -> Iterator[Any]:
            for response in responses:
                pb = getattr(response, "_pb", response)
                if pb.HasField(field):
                    with ops._lock:
                        ops.reads[_collection(getattr(pb, field).name)] += 1
                yield response

        def batch_get_documents(client: Any, request: Any = None, **kwargs: Any) -> Any:
            return counted(real["batch_get_documents"](client, request=request, **kwargs), "found")

        def run_query(client: Any, request: Any = None, **kwargs: Any) -> Any:
            with ops._lock:
                ops.queries += 1
            return counted(real["run_query"](client, request=request, **kwargs), "document")

        FirestoreClient.commit = commit  # type: ignore[method-assign]
        FirestoreClient.batch_get_documents = batch_get_documents  # type: ignore[method-assign]
        FirestoreClient.run_query = run_query  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

        for name, method in self._saved.items():
            setattr(FirestoreClient, name, method)
