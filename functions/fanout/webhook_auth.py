"""Verifying the requests Slack and PagerDuty send us, before anything is read from them.

Slack (interactivity): ``X-Slack-Signature`` = ``v0=`` + hex HMAC-SHA256 with the app's signing
secret of ``v0:{X-Slack-Request-Timestamp}:{raw body}``; a timestamp more than 5 minutes from now
is refused (a replay of a captured request). PagerDuty (webhooks v3): ``X-PagerDuty-Signature`` =
one or more comma-separated ``v1=`` + hex HMAC-SHA256 of the raw body with the subscription's
secret (several while a secret rotates); any one matching is enough. Pure: no HTTP, no store.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

SLACK_MAX_AGE = timedelta(minutes=5)


class Unverified(Exception):
    """The request is not from who it claims (bad, missing or stale signature): answered 401."""


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify_slack(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: datetime
) -> None:
    if not timestamp or not signature:
        raise Unverified("X-Slack-Request-Timestamp and X-Slack-Signature are required")
    try:
        sent = int(timestamp)
    except ValueError:
        raise Unverified("X-Slack-Request-Timestamp is not a Unix time in seconds") from None
    age = abs(now.timestamp() - sent)
    if age > SLACK_MAX_AGE.total_seconds():
        raise Unverified(f"X-Slack-Request-Timestamp is {int(age)} s from now; at most 300 s is accepted")
    if not hmac.compare_digest(slack_signature(secret, timestamp, body), signature):
        raise Unverified("X-Slack-Signature does not match the body and timestamp")


def pagerduty_signature(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_pagerduty(secret: str, header: str | None, body: bytes) -> None:
    if not header:
        raise Unverified("X-PagerDuty-Signature is required")
    expected = pagerduty_signature(secret, body)
    offered = [part.strip() for part in header.split(",") if part.strip()]
    # Compare with every offered signature (no early exit on the first match to reveal nothing).
    matched = [hmac.compare_digest(expected, candidate) for candidate in offered]
    if not any(matched):
        raise Unverified("no signature in X-PagerDuty-Signature matches the body")
