"""Walking a list endpoint page by page, as a client does: by the envelope's ``next`` (the cursor
given back as ``after``) or by an RFC 8288 ``Link: <url>; rel="next"`` header on a bare array."""

from __future__ import annotations

import re
from typing import Any

NEXT_LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')
MAX_PAGES = 100


def pages_by_next(client: Any, path: str, query: str, items: str) -> list[list[Any]]:
    """Each page's ``items`` from ``path?query``, following the envelope's ``next``."""
    found: list[list[Any]] = []
    url = f"{path}?{query}"
    while True:
        answer = client.get(url)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        found.append(body[items])
        if body.get("next") is None:
            return found
        url = f"{path}?{query}&after={body['next']}"
        assert len(found) < MAX_PAGES, "the pages never end"


def pages_by_link(client: Any, url: str) -> list[Any]:
    """Each page's answer from ``url``, following ``Link: rel="next"``."""
    found: list[Any] = []
    while True:
        answer = client.get(url)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        found.append(answer)
        link = answer.headers.get("Link")
        if link is None:
            return found
        match = NEXT_LINK.match(link)
        assert match, link
        url = match["url"]
        assert len(found) < MAX_PAGES, "the pages never end"
