"""A page of a listing within a byte budget: at most ``limit`` items and about ``PAGE_BYTES`` of
JSON, the rest a page away.

A Cloud Function answers at most 32 MiB and holds its page in 256-512 MiB of memory, so a page
of large items (an incident of ~1 MiB) ends early, with a cursor, rather than growing with the
items (``shared.http.paging`` answers it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Well under the platform's 32 MiB, and a few of them fit a 256 MiB instance at once.
PAGE_BYTES = 8 * 1024 * 1024


class UnknownCursor(LookupError):
    """A page's ``after`` that names nothing the listing holds (the message says what it is not):
    the caller's 422."""


def after_listed(
    query: Any,
    ref: Any,
    listed: Callable[[dict[str, Any]], bool],
    what: str,
    field_paths: list[str] | None = None,
) -> Any:
    """``query`` resumed after the document ``ref`` (the last of the page before), which must be
    one the listing holds (``listed`` of its fields, ``field_paths`` only when given); else
    ``UnknownCursor``: "after=<id> is no <what>". Firestore's query and document reference as
    they are (this module imports no client)."""
    snapshot = ref.get(field_paths=field_paths) if field_paths else ref.get()
    if not snapshot.exists or not listed(snapshot.to_dict() or {}):
        raise UnknownCursor(f"after={ref.id} is no {what}")
    return query.start_after(snapshot)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: str | None  # the last item's id when more follow, None on the last page


def bounded_page(
    rows: Iterable[tuple[str, T]],
    limit: int,
    size: Callable[[T], int],
    budget: int = PAGE_BYTES,
) -> Page[T]:
    """The first of ``rows`` (id, item; at most ``limit`` of them, read lazily) whose ``size``
    adds up to at most ``budget`` (the first item always, whatever its size). The cursor is the
    last item's id when the budget ended the page (the row that did not fit was read) or the
    page is full: as health's customer pages, a full last page is followed by an empty one
    rather than reading one row more than asked for."""
    items: list[T] = []
    last_id: str | None = None
    used = 0
    for row_id, item in rows:
        cost = size(item)
        if items and used + cost > budget:
            return Page(items, last_id)
        items.append(item)
        last_id = row_id
        used += cost
    return Page(items, last_id if len(items) >= limit else None)
