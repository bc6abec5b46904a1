"""Customer API keys: the small contract between the health capability (which issues, stores and
revokes them) and routing (which accepts them). Neither imports the other; both import this.

A key reads ``ion_<key_id>_<tag>_<secret>``: ``key_id`` is 12 hex characters (the Firestore
document id in ``customer_keys``, safe to log), ``tag`` 22 URL-safe characters, the first 128 bits
of HMAC-SHA256 of the key id under the server secret ``ION_CUSTOMER_KEY_SECRET`` (Secret Manager
``customer-key-secret``, read by both), and ``secret`` 43 URL-safe characters (256 random bits).
Routing checks the tag before any lookup, so a key it did not issue costs an HMAC, never a
Firestore read or a cache entry. Only the SHA-256 of the whole key is stored: with 256 bits of
entropy a fast hash is as good as a slow one (no dictionary to try), and routing can check it in a
microsecond.

``ION_CUSTOMER_KEY_SECRET`` may list several secrets, comma-separated: the first signs new keys,
every one verifies, so the secret can be rotated without refusing the keys already out.

Keys issued before signing (``ion_<key_id>_<secret>``, no tag: *legacy*) are refused without a
lookup, unless routing's ``ION_CUSTOMER_KEY_LEGACY_UNTIL`` opens a migration window (at most 90
days ahead; see functions/routing/README.md); their holders get a new key from
``POST /v1/customers/{id}/keys`` and the old one is revoked.

    customer_keys/{key_id}   customer_id, key_hash (hex), created_at, revoked_at (or null), signed

After a revocation the health capability deletes the key's Redis cache entry
(:func:`cache_key`), so routing instances stop accepting it within their in-process TTL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

CUSTOMERS_COLLECTION = "customers"
KEYS_COLLECTION = "customer_keys"
KEY_PREFIX = "ion_"
KEY_ID_HEX = 12
TAG_CHARS = 22  # 16 bytes of HMAC-SHA256, base64url without padding
_SIGNED_PATTERN = re.compile(r"^ion_([0-9a-f]{12})_([A-Za-z0-9_-]{22})_[A-Za-z0-9_-]{43}$")
_LEGACY_PATTERN = re.compile(r"^ion_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
# The server secret both capabilities read (Secret Manager `customer-key-secret`).
SECRET_VARIABLE = "ION_CUSTOMER_KEY_SECRET"
_TAG_CONTEXT = b"ion-customer-key:v1:"
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
    # False for a key issued before keys were signed (the field is missing on those records).
    signed: bool = False


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A well-formed customer key as presented: its key id, and its tag ("" for a legacy key)."""

    key_id: str
    tag: str

    @property
    def legacy(self) -> bool:
        return not self.tag


def signing_secrets(raw: str, project: str) -> list[bytes]:
    """The secrets of ``ION_CUSTOMER_KEY_SECRET`` (comma-separated; the first signs). Unset, a
    secret derived from the project, for a local run only: deployed, both functions refuse to
    start without the variable."""
    listed = [part.strip() for part in raw.split(",") if part.strip()]
    return [s.encode() for s in listed] or [f"ion-customer-keys-local:{project}".encode()]


def key_tag(secret: bytes, key_id: str) -> str:
    """The tag of ``key_id`` under ``secret``: 128 bits of HMAC-SHA256, base64url."""
    mac = hmac.new(secret, _TAG_CONTEXT + key_id.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def new_key(secret: bytes) -> tuple[str, str]:
    """A fresh ``(key_id, api_key)`` signed under ``secret``; the key is shown once and never
    stored."""
    key_id = secrets.token_hex(KEY_ID_HEX // 2)
    return key_id, f"{KEY_PREFIX}{key_id}_{key_tag(secret, key_id)}_{secrets.token_urlsafe(32)}"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def parse_key(presented: str) -> PresentedKey | None:
    """A well-formed customer key, signed or legacy, else None (operator keys, garbage)."""
    match = _SIGNED_PATTERN.match(presented)
    if match:
        return PresentedKey(match.group(1), match.group(2))
    match = _LEGACY_PATTERN.match(presented)
    return PresentedKey(match.group(1), "") if match else None


def signed_by(key: PresentedKey, keys: Sequence[bytes]) -> bool:
    """Whether ``key`` carries the tag of its key id under one of ``keys`` (constant time per
    secret; a legacy key carries none)."""
    if key.legacy:
        return False
    found = False
    for secret in keys:  # every secret compared, whatever matched before
        found |= hmac.compare_digest(key.tag, key_tag(secret, key.key_id))
    return found


def key_id_of(presented: str) -> str | None:
    """The key id of a well-formed customer key (signed or legacy), else None."""
    key = parse_key(presented)
    return key.key_id if key else None


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
