"""Customer keys (``ion_<key_id>_<secret>``, issued by the health capability; format, hash and
collection in ``shared.customer_keys``), accepted beside ``ION_API_KEYS``, also when those are
unset: looked up by key id in an in-process TTL cache (L1), then Redis (L2), then Firestore, and
checked by SHA-256 in constant time. Unknown and revoked keys are cached too, so a flood of bad
keys costs one Firestore read per key id and TTL. A revoked key is refused within
``ION_CUSTOMER_KEY_CACHE_SECONDS`` (30 s; the health capability deletes the Redis entry on
revocation, so only L1 may still hold it; 60 s at worst if an instance re-filled Redis from a read
that raced the revocation). Each customer key has its own rate-limit bucket.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import customer_keys as ck
from shared.redis import get_redis

if TYPE_CHECKING:
    import redis


class CustomerKeySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    enabled: bool = Field(default=True, validation_alias="ION_CUSTOMER_KEYS")
    cache_seconds: float = Field(
        default=30.0, gt=0, le=300, validation_alias="ION_CUSTOMER_KEY_CACHE_SECONDS"
    )
    cache_items: int = Field(default=20_000, ge=1, validation_alias="ION_CUSTOMER_KEY_CACHE_ITEMS")


class KeyStoreUnavailable(Exception):
    """Neither cache knew the key and Firestore did not answer."""


class CustomerKeys:
    """Customer key id -> (customer id or "" when unknown or revoked, key hash), cached."""

    def __init__(
        self,
        settings: CustomerKeySettings,
        *,
        redis_client: Callable[[], redis.Redis | None] = get_redis,
        fetch: Callable[[str], tuple[str, str]] | None = None,
    ) -> None:
        self._ttl = settings.cache_seconds
        self._max_items = settings.cache_items
        # key id -> (customer or "", key hash, monotonic expiry); a plain dict: one lookup and
        # one comparison on the hot path (insertion order makes the oldest entry the first).
        self._l1: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()
        self._redis_client = redis_client
        self._fetch = fetch or _fetch_from_firestore

    def resolve(self, presented: str) -> str | None:
        """The customer id of a valid, unrevoked customer key; None otherwise."""
        key_id = ck.key_id_of(presented)
        if key_id is None:
            return None
        cached = self._l1.get(key_id)
        if cached is not None and cached[2] > time.monotonic():
            customer, key_hash = cached[0], cached[1]
        else:
            entry = self._from_l2(key_id)
            if entry is None:
                entry = self._fetch(key_id)
                self._to_l2(key_id, entry)
            customer, key_hash = entry
            with self._lock:
                self._l1.pop(key_id, None)
                if len(self._l1) >= self._max_items:
                    del self._l1[next(iter(self._l1))]
                self._l1[key_id] = (customer, key_hash, time.monotonic() + self._ttl)
        return customer if customer and ck.matches(presented, key_hash) else None

    def _from_l2(self, key_id: str) -> tuple[str, str] | None:
        client = self._redis_client()
        if client is None:
            return None
        try:
            raw = client.get(ck.cache_key(key_id))
        except Exception:  # noqa: BLE001 - a cache: fall through to Firestore
            return None
        if raw is None:
            return None
        value = orjson.loads(raw)
        return str(value["c"]), str(value["h"])

    def _to_l2(self, key_id: str, entry: tuple[str, str]) -> None:
        client = self._redis_client()
        if client is None:
            return
        try:
            client.set(
                ck.cache_key(key_id), orjson.dumps({"c": entry[0], "h": entry[1]}), ex=math.ceil(self._ttl)
            )
        except Exception:  # noqa: BLE001 - a cache: the next lookup reads Firestore again
            return


def _fetch_from_firestore(key_id: str) -> tuple[str, str]:
    from google.api_core.exceptions import GoogleAPIError
    from google.api_core.retry import Retry
    from google.auth.exceptions import GoogleAuthError

    from shared.firestore import get_firestore
    from shared.transient import is_transient

    try:
        snapshot = (
            get_firestore()
            .collection(ck.KEYS_COLLECTION)
            .document(key_id)
            .get(retry=Retry(initial=0.05, maximum=0.5, timeout=2.0), timeout=2.0)
        )
    except (GoogleAPIError, GoogleAuthError) as exc:
        if not is_transient(exc):
            raise  # refused for good (a permission, a bad request): a logged 500, not "retry later"
        raise KeyStoreUnavailable(repr(exc)) from exc
    if not snapshot.exists:
        return "", ""
    record = ck.CustomerKeyRecord.model_validate(snapshot.to_dict())
    return ("" if record.revoked_at else record.customer_id), record.key_hash
