"""Customer API keys: the small contract between the health capability (which issues, stores and
revokes them) and routing (which accepts them). Neither imports the other; both import this.

A key reads ``ion_<key_id>_<secret>``: ``key_id`` is 12 hex characters (the Firestore document id
in ``customer_keys``, safe to log), ``secret`` 43 URL-safe characters (256 random bits). Only the
SHA-256 of the whole key is stored: with 256 bits of entropy a fast hash is as good as a slow one
(no dictionary to try), and routing can check it in a microsecond.

    customer_keys/{key_id}   customer_id, key_hash (hex), created_at, revoked_at (or null)

After a revocation the health capability deletes the key's Redis cache entry
(:func:`cache_key`), so routing instances stop accepting it within their in-process TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

from pydantic import BaseModel, ConfigDict

CUSTOMERS_COLLECTION = "customers"
KEYS_COLLECTION = "customer_keys"
KEY_PREFIX = "ion_"
KEY_ID_HEX = 12
_KEY_PATTERN = re.compile(r"^ion_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# Customer ids become metric label values and document ids: short, plain, bounded.
CUSTOMER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
# Redis key under which routing caches a key's record (deleted on revocation).
CACHE_PREFIX = "ion:customer-key:"


class CustomerKeyRecord(BaseModel):
    """``customer_keys/{key_id}`` as stored."""

    model_config = ConfigDict(extra="ignore")

    key_id: str
    customer_id: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, api_key)``; the key is shown once and never stored."""
    key_id = secrets.token_hex(KEY_ID_HEX // 2)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_id_of(presented: str) -> str | None:
    """The key id of a well-formed customer key, else None (operator keys, garbage)."""
    match = _KEY_PATTERN.match(presented)
    return match.group(1) if match else None


def matches(presented: str, key_hash: str) -> bool:
    """Whether ``presented`` hashes to ``key_hash`` (constant-time comparison)."""
    return hmac.compare_digest(hash_key(presented), key_hash)


def cache_key(key_id: str) -> str:
    return f"{CACHE_PREFIX}{key_id}"


# Routing's per-customer metrics, read by the health capability (metric names and their labels).
# Counter: requests by ``customer``, ``feature`` (route_key, route_message, recommend, bulk,
# feedback, other) and ``outcome`` (ok, client_error, rate_limited, server_error).
CUSTOMER_REQUESTS_METRIC = "ion.routing.customer.requests"
# Counter: feedback answers by ``customer`` and ``answer`` (helpful, not_helpful, rating_1..5,
# nps_0..10): one feedback request adds one to each answer it carries.
CUSTOMER_FEEDBACK_METRIC = "ion.routing.customer.feedback"
