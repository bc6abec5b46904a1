"""Audit entries: who changed ION's state through its APIs, kept apart and longer than the rest.

A handler writes one with ``audit(log, action, headers, message, **fields)``: an INFO line with
``"audit": true``, ``audit_action`` (``silence.create``, ``dead_letter.redrive``, ...) and
``actor``. Deployed, Terraform's audit sink routes every function line with
``jsonPayload.audit=true`` to the ``ion-ops-audit`` log bucket (90 days) beside the project's Cloud
Audit Logs, and keeps it out of the operations bucket (30 days): terraform/logging.tf.

The actor is the person Identity-Aware Proxy signed in (its ``X-Goog-Authenticated-User-Email``
header, which IAP sets on every request it lets through the load balancer); a call that did not
come through IAP (another function, a script with ``run.invoker``) is ``internal``. Never log a
secret through here (an issued key's value): its id is enough.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

IAP_USER_HEADER = "X-Goog-Authenticated-User-Email"
MARKER = "audit"  # the jsonPayload field the audit sink selects on


def actor(headers: Mapping[str, str]) -> str:
    """Who made the request, as IAP says (``accounts.google.com:ada@example.com`` → the email)."""
    value = (headers.get(IAP_USER_HEADER) or "").strip()
    if not value:
        return "internal"
    return value.split(":", 1)[1] if ":" in value else value[:320]


def audit(log: logging.Logger, action: str, headers: Mapping[str, str], message: str, **fields: Any) -> None:
    log.info(message, extra={MARKER: True, "audit_action": action, "actor": actor(headers), **fields})
