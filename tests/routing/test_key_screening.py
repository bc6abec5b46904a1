"""Customer keys are checked before any lookup (issue 24, item 3): a key whose tag is not the HMAC
of its key id under ION_CUSTOMER_KEY_SECRET is refused with 401 without a Firestore read or a
cache entry; keys issued before signing are refused the same way outside a documented migration
window; repeated refusals from one client address or for one key id are answered 429."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.health import registry
from functions.health.models import CustomerIn
from shared import clock
from shared import customer_keys as ck
from shared.settings import get_settings

ROUTE = {"resonance_key": "calm-flowing-seek-advice"}


@pytest.fixture(autouse=True)
def _quiet_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ION_METRICS_FLUSH_SECONDS", "3600")
    monkeypatch.setenv("ION_CACHE_WARM_ITEMS", "0")


class FirestoreReads:
    """Documents read through the Firestore client, counted at its gRPC batch-get (what a
    DocumentReference.get and get_all send) and its queries."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

        self.documents = 0
        self.queries = 0
        real_get, real_query = FirestoreClient.batch_get_documents, FirestoreClient.run_query
        counter = self

        def batch_get(client: Any, request: Any = None, **kwargs: Any) -> Any:
            docs = request["documents"] if isinstance(request, dict) else request.documents
            counter.documents += len(docs)
            return real_get(client, request=request, **kwargs)

        def run_query(client: Any, request: Any = None, **kwargs: Any) -> Any:
            counter.queries += 1
            return real_query(client, request=request, **kwargs)

        monkeypatch.setattr(FirestoreClient, "batch_get_documents", batch_get)
        monkeypatch.setattr(FirestoreClient, "run_query", run_query)

    @property
    def total(self) -> int:
        return self.documents + self.queries


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> FirestoreReads:
    return FirestoreReads(monkeypatch)


def local_secret() -> bytes:
    return ck.signing_secrets(os.environ.get(ck.SECRET_VARIABLE, ""), get_settings().project)[0]


def forged_key(key_id: str | None = None) -> str:
    """A well-formed customer key whose tag is random: what anyone can make without the secret."""
    key_id = key_id or secrets.token_hex(6)
    return f"ion_{key_id}_{secrets.token_urlsafe(16)[:22]}_{secrets.token_urlsafe(32)}"


def unknown_signed_key(key_id: str = "0123456789ab") -> str:
    """Signed with the right secret, but never issued (no record)."""
    return f"ion_{key_id}_{ck.key_tag(local_secret(), key_id)}_{'A' * 43}"


def legacy_key(customer_id: str = "acme") -> str:
    """A key as issued before signing (``ion_<key_id>_<secret>``), stored as it was then."""
    from shared.firestore import get_firestore

    key_id = secrets.token_hex(6)
    api_key = f"ion_{key_id}_{secrets.token_urlsafe(32)}"
    get_firestore().collection(ck.KEYS_COLLECTION).document(key_id).create(
        {
            "key_id": key_id,
            "customer_id": customer_id,
            "key_hash": ck.hash_key(api_key),
            "created_at": datetime.now(UTC),
            "revoked_at": None,
        }
    )
    return api_key


def _issue(customer_id: str = "acme") -> str:
    from functions.health.settings import get_health_settings

    get_health_settings.cache_clear()  # signed with this test's ION_CUSTOMER_KEY_SECRET
    registry.create_customer(CustomerIn(id=customer_id, name=customer_id))
    return registry.issue_key(customer_id).api_key


def _post(client: Any, key: str | None, ip: str = "198.51.100.7", **headers: str) -> Any:
    sent = {"X-Forwarded-For": ip, **headers, **({"X-API-Key": key} if key else {})}
    return client.post("/v2/route", json=ROUTE, headers=sent)


# The key format --------------------------------------------------------------------------------


def test_issued_keys_carry_the_tag_of_their_key_id() -> None:
    secret = b"s" * 8 + secrets.token_bytes(32)
    key_id, api_key = ck.new_key(secret)
    parsed = ck.parse_key(api_key)
    assert parsed is not None
    assert parsed.key_id == key_id
    assert not parsed.legacy
    assert ck.signed_by(parsed, [secret])
    assert ck.signed_by(parsed, [b"an older secret", secret])  # rotation: any listed secret verifies
    assert not ck.signed_by(parsed, [b"another secret"])
    assert ck.key_id_of(api_key) == key_id == api_key[4:16]
    other = ck.parse_key(f"ion_{'f' * 12}_{parsed.tag}_{'B' * 43}")  # a tag moved to another id
    assert other is not None
    assert not ck.signed_by(other, [secret])
    legacy = ck.parse_key(f"ion_{key_id}_{'C' * 43}")
    assert legacy is not None
    assert legacy.legacy
    assert not ck.signed_by(legacy, [secret])
    assert ck.parse_key("operator-key") is None


# Checked before any lookup ---------------------------------------------------------------------


@pytest.mark.emulators
def test_a_forged_key_is_refused_without_a_firestore_read_or_a_cache_entry(
    fs: Any, redis_url: str, make_client: Any, reads: FirestoreReads
) -> None:
    import redis

    from functions.routing.service import get_service

    real = _issue()
    client = make_client(ION_AUTH_FAILURE_LIMIT="1000")
    guard = get_service().guard
    assert guard.customer_keys is not None
    reads.documents = reads.queries = 0
    forged = (
        [forged_key() for _ in range(50)]  # random key ids, random tags
        + [forged_key(real[4:16]) for _ in range(10)]  # a real key id, a random tag
        + [f"ion_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}" for _ in range(25)]  # unsigned shape
    )
    answers = [_post(client, key) for key in forged]
    assert {a.status_code for a in answers} == {401}
    assert answers[0].get_json()["detail"] == "This customer API key is not valid."
    assert reads.total == 0  # Firestore reads per forged key: 0
    assert guard.customer_keys.cached_items() == 0  # L1
    assert redis.Redis.from_url(redis_url).keys(ck.CACHE_PREFIX + "*") == []  # L2
    # The counter counts: the real key is looked up once, then served from the cache.
    assert _post(client, real).status_code == 200
    assert _post(client, real).status_code == 200
    assert reads.documents == 1
    assert guard.customer_keys.cached_items() == 1


@pytest.mark.emulators
def test_a_key_signed_with_the_secret_but_never_issued_is_looked_up_once_per_ttl(
    fs: Any, make_client: Any, reads: FirestoreReads
) -> None:
    """Only what carries our tag reaches the store: at most one entry per key id we signed."""
    client = make_client()
    reads.documents = 0
    for _ in range(5):
        assert _post(client, unknown_signed_key()).status_code == 401
    assert reads.documents == 1


@pytest.mark.emulators
def test_a_key_signed_with_another_secret_is_forged_here(fs: Any, make_client: Any) -> None:
    """Rotation: with ``new,old`` listed both verify, with ``new`` alone an old-secret key is not ours."""
    old, new = "o" + secrets.token_urlsafe(40), "n" + secrets.token_urlsafe(40)
    os.environ[ck.SECRET_VARIABLE] = old
    key = _issue()
    client = make_client(**{ck.SECRET_VARIABLE: f"{new},{old}"})
    assert _post(client, key).status_code == 200
    client = make_client(**{ck.SECRET_VARIABLE: new})
    refused = _post(client, key)
    assert refused.status_code == 401
    assert refused.get_json()["detail"] == "This customer API key is not valid."


# Keys issued before signing --------------------------------------------------------------------


@pytest.mark.emulators
def test_keys_issued_before_signing_are_refused_without_a_lookup_outside_the_window(
    fs: Any, make_client: Any, reads: FirestoreReads
) -> None:
    registry.create_customer(CustomerIn(id="acme", name="acme"))
    old = legacy_key()
    client = make_client()
    reads.documents = 0
    refused = _post(client, old)
    assert refused.status_code == 401
    assert "issued before keys were signed" in refused.get_json()["detail"]
    assert "new key" in refused.get_json()["detail"]
    assert reads.documents == 0


@pytest.mark.emulators
def test_inside_the_migration_window_keys_issued_before_signing_still_work_until_it_ends(
    fs: Any, make_client: Any
) -> None:
    registry.create_customer(CustomerIn(id="acme", name="acme"))
    old = legacy_key()
    frozen = clock.FrozenClock(datetime.now(UTC))
    clock.set_clock(frozen)
    until = (frozen.now() + timedelta(days=30)).date().isoformat()  # a date: its midnight UTC
    client = make_client(ION_CUSTOMER_KEY_LEGACY_UNTIL=until)
    assert _post(client, old).status_code == 200
    assert _post(client, old[:-4] + "AAAA").status_code == 401  # still checked against its hash
    frozen.advance(timedelta(days=31))
    refused = _post(client, old)
    assert refused.status_code == 401
    assert "issued before keys were signed" in refused.get_json()["detail"]


@pytest.mark.emulators
def test_in_the_window_a_refused_client_gets_no_lookup_for_unsigned_keys(
    fs: Any, make_client: Any, reads: FirestoreReads
) -> None:
    """Unsigned keys are the one shape an attacker can still make look-up-worthy: from a client
    this instance has already refused, they are 429 without a read."""
    registry.create_customer(CustomerIn(id="acme", name="acme"))
    old = legacy_key()
    until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    client = make_client(ION_CUSTOMER_KEY_LEGACY_UNTIL=until, ION_AUTH_FAILURE_LIMIT="2")
    reads.documents = 0
    sprayed = [f"ion_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}" for _ in range(10)]
    assert [_post(client, key).status_code for key in sprayed] == [401, 401] + [429] * 8
    assert reads.documents == 3  # the third finds the bucket empty after its lookup; then none
    assert _post(client, old).status_code == 429  # held back with the client, not looked up
    assert reads.documents == 3
    assert _post(client, old, ip="198.51.100.20").status_code == 200  # from anywhere else it works


@pytest.mark.emulators
def test_the_admin_api_shows_which_keys_predate_signing_so_they_can_be_reissued(fs: Any) -> None:
    import functions_framework

    from shared.topology import ROOT

    registry.create_customer(CustomerIn(id="acme", name="acme"))
    old = legacy_key()
    health = functions_framework.create_app("score_health", str(ROOT / "main.py"), "http").test_client()
    fresh = health.post("/v1/customers/acme/keys").get_json()
    listed = {k["key_id"]: k["signed"] for k in health.get("/v1/customers/acme/keys").get_json()["keys"]}
    assert listed == {old[4:16]: False, fresh["key_id"]: True}
    assert health.delete(f"/v1/customers/acme/keys/{old[4:16]}").status_code == 200


# Repeated refusals -----------------------------------------------------------------------------


def test_repeated_refusals_from_one_address_are_429_with_retry_after(make_client: Any) -> None:
    client = make_client(
        ION_API_KEYS="operator-" + secrets.token_hex(16),
        ION_AUTH_FAILURE_LIMIT="3",
        ION_AUTH_FAILURE_WINDOW_SECONDS="60",
    )
    operator = os.environ["ION_API_KEYS"]
    statuses = [_post(client, f"guess-{i}").status_code for i in range(3)]
    assert statuses == [401, 401, 401]
    limited = _post(client, "guess-4")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 20
    assert limited.get_json()["retry_after"] == int(limited.headers["Retry-After"])
    assert "3 refused requests per 60 s" in limited.get_json()["detail"]
    assert _post(client, None).status_code == 429  # a missing key is a refusal too
    assert _post(client, "guess-5", ip="198.51.100.8").status_code == 401  # another address
    assert _post(client, operator).status_code == 200  # a valid key is never held back


def test_the_client_is_the_last_forwarded_hop_so_a_written_first_hop_does_not_dodge(
    make_client: Any,
) -> None:
    client = make_client(ION_API_KEYS="operator-" + secrets.token_hex(16), ION_AUTH_FAILURE_LIMIT="2")
    spoofed = [_post(client, "guess", ip=f"10.0.0.{i}, 198.51.100.9").status_code for i in range(3)]
    assert spoofed == [401, 401, 429]
    client = make_client(ION_CLIENT_IP_HOP="0")  # the first entry, when a front end replaces it
    assert _post(client, "guess", ip="203.0.113.5, 198.51.100.10").status_code == 401
    assert _post(client, "guess", ip="203.0.113.5, 198.51.100.11").status_code == 401
    assert _post(client, "guess", ip="203.0.113.5, 198.51.100.12").status_code == 429


@pytest.mark.emulators
def test_refusals_for_one_key_id_from_many_addresses_are_limited(fs: Any, make_client: Any) -> None:
    """Counted by key id prefix (4 hex characters): bounded however many ids a client invents."""
    real = _issue()
    client = make_client(ION_AUTH_FAILURE_LIMIT="3")
    key_id = real[4:16]
    statuses = [_post(client, forged_key(key_id), ip=f"198.51.100.{i}").status_code for i in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert _post(client, forged_key(), ip="198.51.100.99").status_code == 401  # another key id
    assert _post(client, real, ip="198.51.100.1").status_code == 200  # the holder is not locked out


@pytest.mark.redis
def test_the_failure_limit_holds_across_instances_in_redis(make_client: Any, redis_url: str) -> None:
    import redis

    env = {"ION_API_KEYS": "operator-" + secrets.token_hex(16), "ION_AUTH_FAILURE_LIMIT": "2"}
    first = make_client(**env)
    assert [_post(first, "guess").status_code for _ in range(2)] == [401, 401]
    second = make_client(**env)  # another instance: its own process state, the same Redis
    assert _post(second, "guess").status_code == 429
    names = {n.decode() for n in redis.Redis.from_url(redis_url).keys("ion:routing:authfail:*")}
    assert names == {"ion:routing:authfail:ip:198.51.100.7"}


def test_without_redis_the_failure_limit_is_per_instance(make_client: Any) -> None:
    env = {"ION_API_KEYS": "operator-" + secrets.token_hex(16), "ION_AUTH_FAILURE_LIMIT": "2"}
    first = make_client(**env)
    assert [_post(first, "guess").status_code for _ in range(3)] == [401, 401, 429]
    second = make_client(**env)
    assert _post(second, "guess").status_code == 401


def test_a_refused_client_costs_no_redis_round_trip_while_it_waits() -> None:
    from functions.routing.auth_failures import FailureLimiter

    calls = []

    class Script:
        def __call__(self, keys: list[str], args: list[Any]) -> list[str]:
            calls.append(keys)
            return ["0" if len(calls) < 2 else "30"] * len(keys)

    class FakeRedis:
        def register_script(self, _source: str) -> Script:
            return Script()

    limiter = FailureLimiter(limit=1, window_seconds=30, redis_client=FakeRedis)  # type: ignore[arg-type,return-value]
    assert limiter.charge(["ip:a", "key:k"]) == 0
    assert limiter.charge(["ip:a", "key:k"]) == pytest.approx(30, abs=1)
    for _ in range(100):
        assert limiter.charge(["ip:a"]) > 0
    assert len(calls) == 2
    assert limiter.charge(["ip:b"]) > 0
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("forwarded", "remote", "hop", "client"),
    [
        ("203.0.113.5", "169.254.1.1", -1, "203.0.113.5"),
        ("10.1.1.1, 203.0.113.5", None, -1, "203.0.113.5"),
        ("10.1.1.1, 203.0.113.5", None, 0, "10.1.1.1"),
        ("203.0.113.5", None, -2, "203.0.113.5"),  # fewer hops than asked: the nearest there is
        ("203.0.113.5", None, 3, "203.0.113.5"),
        (None, "198.51.100.3", -1, "198.51.100.3"),
        ("2001:db8:1:2:3:4:5:6", None, -1, "2001:db8:1:2::/64"),
        ("not-an-address", None, -1, "unknown"),
        ("", "", -1, "unknown"),
    ],
)
def test_client_address(forwarded: str | None, remote: str | None, hop: int, client: str) -> None:
    from functions.routing.auth_failures import client_address

    assert client_address(forwarded, remote, hop) == client
