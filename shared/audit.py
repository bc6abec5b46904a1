"""Audit entries: who changed ION's state through its APIs, kept apart and longer than the rest.

A handler writes one with ``audit(log, action, headers, message, **fields)``: an INFO line with
``"audit": true``, ``audit_action`` (``silence.create``, ``dead_letter.redrive``, ...), ``actor``
and ``actor_via``. Deployed, Terraform's audit sink routes every function line with
``jsonPayload.audit=true`` to the ``ion-ops-audit`` log bucket (90 days) beside the project's Cloud
Audit Logs, and keeps it out of the operations bucket (30 days): terraform/logging.tf.

A change through any ``Api`` route (POST, PUT, PATCH, DELETE answered below 400) whose handler
wrote no entry of its own gets one from ``Api`` itself (``<capability>.<operation>``, with the
method, path and status), unless a job identity (scheduler, Cloud Tasks, push) made it: so a new
route's changes are recorded without its author saying so.

The actor is the caller ``shared.http.Api`` verified before the handler ran (``shared.identity``: the
email of the IAP JWT or of the Google-signed ID token; locally the dev stack's principal header),
never anything the request's body or an unsigned header says. Never log a secret through here (an
issued key's value): its id is enough.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

MARKER = "audit"  # the jsonPayload field the audit sink selects on
CALLER_KEY = "ion.caller"  # where shared.http.Api keeps the verified caller in the WSGI environ
AUDITED_KEY = "ion.audited"  # set once a handler wrote its own entry for the request


def caller(headers: Mapping[str, str]) -> tuple[str, str]:
    """(principal, how it was verified) of the request whose ``headers`` these are: the caller
    ``Api`` verified (Flask's request headers carry their WSGI environ), else verified here."""
    from shared.identity import AuthProblem, identify

    environ = getattr(headers, "environ", None)
    found = environ.get(CALLER_KEY) if isinstance(environ, dict) else None
    if found is None:
        try:
            found = identify(headers)
        except AuthProblem:
            return "unverified", "refused"
    return found.principal, found.via


def actor(headers: Mapping[str, str]) -> str:
    """Who made the request, verified (``anonymous`` locally when nobody is named)."""
    return caller(headers)[0]


def audit(log: logging.Logger, action: str, headers: Mapping[str, str], message: str, **fields: Any) -> None:
    environ = getattr(headers, "environ", None)
    if isinstance(environ, dict):
        environ[AUDITED_KEY] = True
    principal, via = caller(headers)
    log.info(
        message, extra={MARKER: True, "audit_action": action, "actor": principal, "actor_via": via, **fields}
    )
