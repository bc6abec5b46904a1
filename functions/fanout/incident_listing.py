"""GET /v1/incidents' page: the incidents a query selects, newest first, serialised one by one
until ``limit`` or the byte budget (``shared.paging``) ends the page: an incident with a full
timeline and its alerts is up to ~1 MiB, and the page is read lazily, so a page of large ones
stops reading when it is full rather than holding 500 of them."""

from __future__ import annotations

from functions.fanout.api_models import IncidentsQuery, incident_out
from functions.fanout.incident_store import get_store
from shared.paging import Page, bounded_page


def incident_page(query: IncidentsQuery) -> Page[bytes]:
    """The page ``query`` asks for, each incident as JSON; ``shared.paging.UnknownCursor`` when
    ``after`` names no incident the filters list."""
    found = get_store().list(
        state=query.state, priority=query.priority, since=query.since, limit=query.limit, after=query.after
    )
    serialised = ((i.id, incident_out(i).model_dump_json().encode()) for i in found)
    return bounded_page(serialised, query.limit, len)
