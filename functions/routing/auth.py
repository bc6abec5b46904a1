"""API keys and a per-key rate limit.

With ``ION_API_KEYS`` unset the API is open. Set (comma-separated), a request needs a valid
``X-API-Key``: compared with every configured key in constant time (``hmac.compare_digest``, no
early exit), so timing tells nothing about which key or how much of it matched.

Each key has its own rate-limit bucket (``ratelimit.py``: a token bucket kept in Redis and spent from
leases). Redis keys name a hash of the API key, never the key itself.

Customer keys (issued by the health capability) are screened (their HMAC tag, no I/O) and then
resolved by ``customer_keys.py``, and have their own rate-limit bucket each.

A request refused for its key counts against the failure limits of its client address and its key
id prefix (``auth_failures.py``): past either, 429 with ``Retry-After`` instead of 401. Valid keys
never count.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from functions.routing.auth_failures import FailureLimiter, retry_after, subjects
from functions.routing.customer_keys import CustomerKeys, CustomerKeySettings, KeyRefused
from functions.routing.ratelimit import TokenBuckets
from shared import customer_keys as ck
from shared.logging import get_logger
from shared.redis import get_redis

if TYPE_CHECKING:
    import redis

    from functions.routing.metrics import RoutingMetrics

log = get_logger("routing.auth")


_CHALLENGE = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}


class AccessDenied(Exception):
    """No valid API key: the answer is 401 with ``headers``."""

    def __init__(self, detail: str, headers: dict[str, str]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class RateLimited(Exception):
    """The key's bucket is empty: the answer is 429 with ``headers``, retry in ``retry_after`` s."""

    def __init__(self, detail: str, headers: dict[str, str], retry_after: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        self.retry_after = retry_after
        self.customer: str | None = None


class TooManyItems(Exception):
    """A bulk request of more items than the key's burst: no wait would admit it (413, not 429,
    so a client retrying on 429 does not retry it for ever)."""

    def __init__(self, detail: str, burst: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.burst = burst


class ApiKeyGuard:
    def __init__(
        self,
        keys: list[str],
        *,
        rate: float,
        burst: int,
        metrics: RoutingMetrics,
        redis_client: Callable[[], redis.Redis | None] = get_redis,
        customer_keys: CustomerKeys | None = None,
        lease_tokens: int = 0,
        lease_seconds: float = 1.0,
        failures: FailureLimiter | None = None,
    ) -> None:
        self._keys = [key.encode() for key in keys]
        # Each operator key's bucket id, worked out once (not a SHA-256 per request).
        self._bucket_ids = {key: hashlib.sha256(key).hexdigest()[:24] for key in self._keys}
        self._rate = rate
        self._burst = burst
        self._burst_text = str(burst)
        self._metrics = metrics
        self.limiter = TokenBuckets(
            rate=rate,
            burst=burst,
            redis_client=redis_client,
            lease_tokens=lease_tokens,
            lease_seconds=lease_seconds,
        )
        self.failures = failures
        settings = CustomerKeySettings()
        self.customer_keys = customer_keys or (
            CustomerKeys(settings, redis_client=redis_client) if settings.enabled else None
        )

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, presented: str | None) -> str:
        """The bucket id of a valid key; raises ``AccessDenied`` otherwise."""
        candidate = (presented or "").encode()
        valid = False
        for key in self._keys:  # every key compared, whatever matched before
            valid |= hmac.compare_digest(candidate, key)
        if not valid:
            raise AccessDenied(
                "A valid API key is required in the X-API-Key header."
                if presented
                else "Missing X-API-Key header.",
                headers=_CHALLENGE,
            )
        return self._bucket_ids[candidate]

    def check(self, presented: str | None) -> dict[str, str]:
        """Headers to add to the answer for the operator ``X-API-Key`` presented; raises
        ``AccessDenied`` or ``RateLimited``."""
        return self._limit(self.authenticate(presented))

    def applies(self, presented: str | None) -> bool:
        """Whether a request must pass :meth:`admit`: operator keys are configured, or it presents
        a customer key (an open API still attributes and limits customer traffic)."""
        if self._keys:
            return True
        return bool(presented and self.customer_keys is not None and presented.startswith(ck.KEY_PREFIX))

    def admit(
        self, presented: str | None, client: str | Callable[[], str] = "unknown"
    ) -> tuple[dict[str, str], str | None]:
        """(headers, customer id or None) for an operator or customer key from ``client`` (its
        address, see ``auth_failures.client_address``, or a function giving it: only a refused or
        legacy key needs it, so an accepted one does not pay for parsing it); raises
        ``AccessDenied``, ``RateLimited`` (its ``customer`` set for a customer key; also when
        ``client`` or the key id prefix has had too many refusals) or ``KeyStoreUnavailable``."""
        try:
            if self.customer_keys is None or not (presented and presented.startswith(ck.KEY_PREFIX)):
                return self._limit(self.authenticate(presented)), None  # an operator key
            return self._admit_customer(presented, client)
        except AccessDenied as denied:
            raise self._refused(denied, presented, client) from None

    def _admit_customer(
        self, presented: str, client: str | Callable[[], str]
    ) -> tuple[dict[str, str], str | None]:
        assert self.customer_keys is not None
        try:
            key = self.customer_keys.screen(presented)
        except KeyRefused as refused:
            raise AccessDenied(
                "This customer API key was issued before keys were signed and is no longer accepted; "
                "ask for a new key."
                if refused.reason == "legacy"
                else "This customer API key is not valid.",
                headers=_CHALLENGE,
            ) from None
        if key is None:  # not customer-shaped after all: an operator key starting with ion_
            return self.check(presented), None
        if key.legacy and self.failures is not None:
            # Inside the migration window a legacy key costs a lookup: none for a client already
            # refused for too many failures (this instance's memory; no I/O).
            wait = self.failures.blocked(subjects(_address(client), key.key_id))
            if wait > 0:
                raise self._too_many_failures(wait)
        customer = self.customer_keys.lookup(key, presented)
        if customer is None:
            raise AccessDenied("This customer API key is unknown or revoked.", headers=_CHALLENGE)
        try:
            return self._limit("customer:" + key.key_id), customer  # bucket_of, parsed already
        except RateLimited as limited:
            limited.customer = customer
            raise

    def _refused(
        self, denied: AccessDenied, presented: str | None, client: str | Callable[[], str]
    ) -> Exception:
        """What to raise for a refused key: ``denied`` (401), or ``RateLimited`` (429) once the
        client address or the key id prefix has had too many refusals."""
        if self.failures is None:
            self._metrics.rejected.add(1, (("reason", "api_key"),))
            return denied
        wait = self.failures.charge(
            subjects(_address(client), ck.key_id_of(presented) if presented else None)
        )
        if wait <= 0:
            self._metrics.rejected.add(1, (("reason", "api_key"),))
            return denied
        return self._too_many_failures(wait)

    def _too_many_failures(self, wait: float) -> RateLimited:
        assert self.failures is not None
        self._metrics.rejected.add(1, (("reason", "rate_limit"),))
        retry = retry_after(wait)
        return RateLimited(
            f"Too many requests refused for their API key from this client or with this key id prefix "
            f"(at most {self.failures.describe()}); retry in {retry} s with a valid X-API-Key.",
            headers={"Retry-After": str(retry)},
            retry_after=retry,
        )

    def bucket_of(self, presented: str | None) -> str:
        """The rate-limit bucket of a key that :meth:`admit` accepted: a customer-shaped key's by
        its key id, any other key's (an operator key, also one starting ``ion_``) by its hash, as
        admit charged it (by the prefix alone, an operator key's bulk items went to another bucket)."""
        key_id = ck.key_id_of(presented) if presented and self.customer_keys is not None else None
        if key_id is not None:
            return "customer:" + key_id
        return hashlib.sha256((presented or "").encode()).hexdigest()[:24]

    def charge_items(self, presented: str | None, items: int) -> dict[str, str]:
        """A request of ``items`` items costs one token per item: take the ``items`` - 1 not
        taken when :meth:`admit` accepted the key; raises ``RateLimited``, or ``TooManyItems``
        when no wait would admit them."""
        if items > self._burst:
            self._metrics.rejected.add(1, (("reason", "too_many_items"),))
            raise TooManyItems(
                f"This request of {items} items costs {items} rate-limit tokens, more than the burst "
                f"of {self._burst}, so no wait would admit it; send at most {self._burst} items per "
                "request.",
                self._burst,
            )
        return self._limit(self.bucket_of(presented), items - 1) if items > 1 else {}

    def _limit(self, bucket: str, cost: int = 1) -> dict[str, str]:
        verdict = self.limiter.take(bucket, cost)
        headers = {"RateLimit-Limit": self._burst_text, "RateLimit-Remaining": str(int(verdict.remaining))}
        if not verdict.allowed:
            self._metrics.rejected.add(1, (("reason", "rate_limit"),))
            retry = max(1, math.ceil(verdict.retry_after))
            raise RateLimited(
                f"Rate limit of {self._rate:g} tokens/s (burst {self._burst}; one token per request, "
                f"one per item of a bulk request) exceeded for this key; "
                f"retry in {retry} s.",
                headers={**headers, "Retry-After": str(retry)},
                retry_after=retry,
            )
        return headers


def _address(client: str | Callable[[], str]) -> str:
    return client if isinstance(client, str) else client()
