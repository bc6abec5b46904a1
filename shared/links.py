"""Link bases: the URL a person opens from a notification, a report or a dashboard.

Deployed, every link must reach people through the team's public entry (the HTTPS load balancer
with IAP in front of the functions people use). A loopback address or a function's own URL
(``*.run.app``, ``*.cloudfunctions.net``: internal ingress, IAM only) would give every reader a
dead link, so a deployed function whose link base is one of those refuses to start.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = ("localhost", "0.0.0.0", "::1")
# Hosts of a function's own URL: internal ingress and IAM, never opened by a person.
FUNCTION_URL_SUFFIXES = (".run.app", ".cloudfunctions.net")


def link_base_problem(variable: str, url: str | None) -> str | None:
    """Why ``url`` cannot be a deployed link base, naming ``variable``; None when it can."""
    if not url:
        return f"{variable} is not set: links would have no address people can open"
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host:
        return f"{variable} is {url}: a link base must be an https:// address"
    if host in LOOPBACK_HOSTS or host.startswith("127."):
        return f"{variable} is {url}: links would point at a loopback address"
    if host.endswith(FUNCTION_URL_SUFFIXES):
        return (
            f"{variable} is {url}: a function's own URL is internal (ingress and IAM); "
            "use the public base URL of the load balancer (README: Deploy)"
        )
    return None
