"""Firestore failing as an outage would, for the writes to one collection: a wrapper around the API
client inside the process's shared google-cloud-firestore client (``shared.firestore``), through
which every commit goes (a document's set/update/create, a batch, a transaction). Every module's
writes to that collection fail alike, at the moment they are committed; nothing of ours is
replaced."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class FailingCommits:
    """The Firestore API client, except that the next ``times`` commits writing a document of
    ``collection`` raise UNAVAILABLE (after the client's own retries, as the caller sees it)."""

    def __init__(self, api: Any, collection: str, times: int) -> None:
        self._api = api
        self.collection = collection
        self.left = times
        self.failed: list[list[str]] = []  # the documents each failed commit would have written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        from google.api_core.exceptions import ServiceUnavailable

        request = kwargs.get("request") if "request" in kwargs else (args[0] if args else None)
        names = _written(request)
        if self.left > 0 and any(f"/documents/{self.collection}/" in name for name in names):
            self.left -= 1
            self.failed.append(names)
            raise ServiceUnavailable(f"injected: Firestore unavailable writing {self.collection}")
        return self._api.commit(*args, **kwargs)


def _written(request: Any) -> list[str]:
    writes = request.get("writes", []) if isinstance(request, dict) else getattr(request, "writes", [])
    names = []
    for write in writes:
        name = write.update.name or write.delete or write.transform.document
        if name:
            names.append(str(name))
    return names


@contextmanager
def failing_writes(collection: str, times: int = 1) -> Iterator[FailingCommits]:
    """Within the block, the next ``times`` commits writing to ``collection`` fail."""
    from shared.firestore import get_firestore

    client = get_firestore()
    real = client._firestore_api  # created on first use; the client keeps it for its life
    fault = FailingCommits(real, collection, times)
    client._firestore_api_internal = fault
    try:
        yield fault
    finally:
        client._firestore_api_internal = real
