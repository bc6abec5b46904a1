"""Customer keys (``ion_<key_id>_<tag>_<secret>``, issued by the health capability; format, tag,
hash and collection in ``shared.customer_keys``), accepted beside ``ION_API_KEYS``, also when
those are unset.

First, with no I/O, :meth:`CustomerKeys.screen`: the tag must be the HMAC of the key id under
``ION_CUSTOMER_KEY_SECRET``, so a key this service did not issue is refused for the price of an
HMAC: no Firestore read, no cache entry, whatever key id it names. A key issued before signing
(legacy, no tag) is refused the same way, unless ``ION_CUSTOMER_KEY_LEGACY_UNTIL`` opens a
migration window, during which it is looked up as before.

Then a key that passed is looked up by key id in an in-process TTL cache (L1), then Redis (L2),
then Firestore, and checked by SHA-256 in constant time. Unknown and revoked key ids are cached
too; with signed keys only issued key ids get this far, so the caches hold at most one entry per
issued key. A revoked key is refused within ``ION_CUSTOMER_KEY_CACHE_SECONDS`` (30 s; the health
capability deletes the Redis entry on revocation, so only L1 may still hold it; 60 s at worst if
an instance re-filled Redis from a read that raced the revocation). Each customer key has its own
rate-limit bucket.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import customer_keys as ck
from shared.clock import utcnow
from shared.logging import get_logger
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
    # The MAC key of customer keys (Secret Manager `customer-key-secret`); comma-separated to
    # rotate: the first signs (health), every one verifies (here).
    secret: str = Field(default="", validation_alias=ck.SECRET_VARIABLE)
    # Until this instant (a date is its midnight UTC), keys issued before signing are still
    # looked up; unset or past: refused without a lookup.
    legacy_until: datetime | None = Field(default=None, validation_alias="ION_CUSTOMER_KEY_LEGACY_UNTIL")

    def signing_secrets(self) -> list[bytes]:
        from shared.settings import get_settings

        return ck.signing_secrets(self.secret, get_settings().project)

    def legacy_window_end(self) -> datetime | None:
        if self.legacy_until is None:
            return None
        end = self.legacy_until
        return end if end.tzinfo else end.replace(tzinfo=UTC)

    def deployment_problems(self) -> list[str]:
        """What deployed routing must not start with: no secret (keys could not be checked, or
        anyone could sign them with the local default), a weak one, or a migration window for
        unsigned keys longer than ``LEGACY_WINDOW_MAX``."""
        from shared.deployment import secret_weakness

        if not self.enabled:
            return []
        problems: list[str] = []
        secrets = [part.strip() for part in self.secret.split(",") if part.strip()]
        if not secrets:
            problems.append(
                f"{ck.SECRET_VARIABLE} is not set: customer keys could not be told from forgeries "
                "before a lookup (Secret Manager customer-key-secret, the same value as score_health)"
            )
        for index, secret in enumerate(secrets, 1):
            weakness = secret_weakness(secret)
            if weakness:
                problems.append(
                    f"{ck.SECRET_VARIABLE} secret {index} is too weak: {weakness}; use at least "
                    "32 random characters (openssl rand -base64 48)"
                )
        end = self.legacy_window_end()
        if end is not None and end - utcnow() > LEGACY_WINDOW_MAX:
            problems.append(
                f"ION_CUSTOMER_KEY_LEGACY_UNTIL {end.date()} is more than {LEGACY_WINDOW_MAX.days} days "
                "ahead: unsigned customer keys get a migration window, not a permanent pass; "
                "re-issue them (POST /v1/customers/{id}/keys) and revoke the old ones"
            )
        return problems


log = get_logger("routing.customer_keys")

# The longest migration window a deployment may open for keys issued before signing.
LEGACY_WINDOW_MAX = timedelta(days=90)


class KeyStoreUnavailable(Exception):
    """Neither cache knew the key and Firestore did not answer."""


class KeyRefused(Exception):
    """A customer-shaped key refused before any lookup: ``reason`` is ``forged`` (its tag is not
    ours) or ``legacy`` (issued before signing, outside the migration window)."""

    def __init__(self, reason: Literal["forged", "legacy"], key_id: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key_id = key_id


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
        self._secrets = settings.signing_secrets()
        self._legacy_until = settings.legacy_window_end()

    def legacy_window_open(self) -> bool:
        return self._legacy_until is not None and utcnow() < self._legacy_until

    def screen(self, presented: str) -> ck.PresentedKey | None:
        """The presented key if it may be looked up, None if it is not customer-shaped at all;
        raises :class:`KeyRefused` for a forged tag or a legacy key outside the migration
        window. No I/O, nothing cached."""
        key = ck.parse_key(presented)
        if key is None:
            return None
        if key.legacy:
            if not self.legacy_window_open():
                raise KeyRefused("legacy", key.key_id)
        elif not ck.signed_by(key, self._secrets):
            raise KeyRefused("forged", key.key_id)
        return key

    def resolve(self, presented: str) -> str | None:
        """The customer id of a valid, unrevoked customer key; None otherwise (unknown, revoked,
        malformed); raises :class:`KeyRefused` before any lookup (see :meth:`screen`)."""
        key = self.screen(presented)
        if key is None:
            return None
        return self.lookup(key, presented)

    def lookup(self, key: ck.PresentedKey, presented: str) -> str | None:
        """The customer of a screened key: L1, L2, then Firestore."""
        key_id = key.key_id
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
            if key.legacy and customer:  # once per key and cache fill: who still has to move
                log.warning(
                    "customer key issued before signing accepted in the migration window",
                    extra={"key_id": key_id, "customer_id": customer, "until": str(self._legacy_until)},
                )
        return customer if customer and ck.matches(presented, key_hash) else None

    def cached_items(self) -> int:
        """Key ids held in L1 (fresh or not)."""
        return len(self._l1)

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
