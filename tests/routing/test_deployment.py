"""Fail closed: deployed, routing refuses to start with an API open by mistake, an operator key
weak enough to guess, customer keys it could not check before a lookup, or a request id anyone
could forge, naming the variable; locally the open API stays the default."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from shared.deployment import secret_weakness
from shared.topology import ROOT

SETTINGS = (
    "ION_API_KEYS",
    "ION_REQUEST_ID_SECRET",
    "ION_ALLOW_OPEN_API",
    "K_SERVICE",
    "REDIS_URL",
    "ION_CUSTOMER_KEY_SECRET",
    "ION_CUSTOMER_KEY_LEGACY_UNTIL",
)
REDIS = "rediss://:pw@10.0.0.3:6378/0"
# As the README's Deploy section makes them: openssl rand -hex 24, openssl rand -base64 48.
K1, K2 = (
    "3f9a1c07d2b84e6f5a0c9e1b7d3f2a8c4e6b0d9f1a2c3e4b",
    "9c2e4a6b8d0f1e3c5a7b9d2f4e6a8c0b1d3f5e7a9c2b4d6e",
)
CUSTOMER_KEY_SECRET = "Zq3v8Kp2Lm9Xt4Rw7Ny1Bc6Hd0Fg5Js2Ua8Ve3Wi9Ok4Pl7Qm1Rn6Ts0Yu5Xz2Ab8Cd3"


def start(**env: str) -> subprocess.CompletedProcess[str]:
    """Import main.py as functions-framework does at the deployed ``route`` function's start."""
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return subprocess.run(
        [sys.executable, "-c", "import main"],
        cwd=ROOT,
        env={
            **clean,
            "FUNCTION_TARGET": "route",
            **(
                {"REDIS_URL": REDIS, "ION_CUSTOMER_KEY_SECRET": CUSTOMER_KEY_SECRET}
                if "K_SERVICE" in env
                else {}
            ),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_deployed_with_keys_and_secret_starts() -> None:
    started = start(K_SERVICE="route", ION_API_KEYS=f"{K1},{K2}", ION_REQUEST_ID_SECRET="s3cret")
    assert started.returncode == 0, started.stderr


@pytest.mark.parametrize("keys", ["a,,b", " ", "a,b,", ", a"])
def test_a_blank_key_entry_refuses_to_start(keys: str) -> None:
    started = start(K_SERVICE="route", ION_API_KEYS=keys, ION_REQUEST_ID_SECRET="s3cret")
    assert started.returncode != 0
    assert "ION_API_KEYS has a blank entry" in started.stderr


@pytest.mark.parametrize("secret", ["", "  "])
def test_an_empty_request_id_secret_refuses_to_start(secret: str) -> None:
    started = start(K_SERVICE="route", ION_API_KEYS=K1, ION_REQUEST_ID_SECRET=secret)
    assert started.returncode != 0
    assert "ION_REQUEST_ID_SECRET is empty" in started.stderr
    assert "ION_API_KEYS" not in started.stderr


def test_no_keys_refuses_to_start_unless_the_open_api_is_allowed() -> None:
    refused = start(K_SERVICE="route", ION_REQUEST_ID_SECRET="s3cret")
    assert refused.returncode != 0
    assert "ION_API_KEYS is empty" in refused.stderr
    assert "ION_ALLOW_OPEN_API=true" in refused.stderr
    allowed = start(K_SERVICE="route", ION_REQUEST_ID_SECRET="s3cret", ION_ALLOW_OPEN_API="true")
    assert allowed.returncode == 0, allowed.stderr


def test_every_problem_is_named_at_once() -> None:
    started = start(K_SERVICE="route", ION_API_KEYS="a,,b")
    assert started.returncode != 0
    assert "ION_API_KEYS has a blank entry" in started.stderr
    assert "ION_REQUEST_ID_SECRET is empty" in started.stderr


def test_locally_the_open_api_starts() -> None:
    started = start()
    assert started.returncode == 0, started.stderr


def test_deployed_without_redis_refuses_to_start() -> None:
    started = start(K_SERVICE="route", ION_API_KEYS=K1, ION_REQUEST_ID_SECRET="s3cret", REDIS_URL="")
    assert started.returncode != 0
    assert "REDIS_URL is not set: the per-key rate limit would be counted per instance" in started.stderr


@pytest.mark.parametrize(
    ("keys", "why"),
    [
        ("key-one,key-two", "fewer than 32"),  # the README's old example
        (K1[:31], "31 characters, fewer than 32"),
        ("a" * 40, "one character class only"),
        ("abcdefghijklmnopqrstuvwxyzabcdefghijkl", "one character class only"),
        ("0123456789abcdef" * 2, "bits of entropy, under 80"),  # a repeated pattern counts once
        ("Password1" * 4, "bits of entropy, under 80"),
        ("ab12" * 10, "bits of entropy, under 80"),
        (f"{K1},{'x1' * 20}", "key 2 is too weak"),
    ],
)
def test_a_weak_operator_key_refuses_to_start_saying_what_is_required(keys: str, why: str) -> None:
    started = start(K_SERVICE="route", ION_API_KEYS=keys, ION_REQUEST_ID_SECRET="s3cret")
    assert started.returncode != 0
    assert "ION_API_KEYS key" in started.stderr
    assert why in started.stderr
    assert "at least 32 random characters of at least two kinds" in started.stderr
    for key in keys.split(","):
        assert key not in started.stderr or key == K1  # a key is never quoted


def test_keys_made_as_the_readme_says_always_pass() -> None:
    """openssl rand -hex 24 (the README), -hex 16 (the shortest hex that passes), the rehearsal's
    40 URL-safe characters, openssl rand -base64 48: none refused in 3,000 draws each."""
    makers = {
        "hex 24": lambda: secrets.token_hex(24),
        "hex 16": lambda: secrets.token_hex(16),
        "urlsafe 40": lambda: secrets.token_urlsafe(40)[:40],
        "base64 48": lambda: secrets.token_urlsafe(48),
    }
    refused = {
        name: sum(secret_weakness(make()) is not None for _ in range(3000)) for name, make in makers.items()
    }
    assert refused == dict.fromkeys(makers, 0)


def test_customer_keys_need_their_secret_when_deployed() -> None:
    missing = start(
        K_SERVICE="route", ION_API_KEYS=K1, ION_REQUEST_ID_SECRET="s3cret", ION_CUSTOMER_KEY_SECRET=""
    )
    assert missing.returncode != 0
    assert "ION_CUSTOMER_KEY_SECRET is not set" in missing.stderr
    weak = start(
        K_SERVICE="route", ION_API_KEYS=K1, ION_REQUEST_ID_SECRET="s3cret", ION_CUSTOMER_KEY_SECRET="secret"
    )
    assert weak.returncode != 0
    assert "ION_CUSTOMER_KEY_SECRET secret 1 is too weak" in weak.stderr
    off = start(
        K_SERVICE="route",
        ION_API_KEYS=K1,
        ION_REQUEST_ID_SECRET="s3cret",
        ION_CUSTOMER_KEY_SECRET="",
        ION_CUSTOMER_KEYS="false",
    )
    assert off.returncode == 0, off.stderr  # customer keys off: nothing to sign or check


def test_a_migration_window_for_unsigned_keys_is_at_most_90_days() -> None:
    today = datetime.now(UTC).date()
    short = start(
        K_SERVICE="route",
        ION_API_KEYS=K1,
        ION_REQUEST_ID_SECRET="s3cret",
        ION_CUSTOMER_KEY_LEGACY_UNTIL=(today + timedelta(days=30)).isoformat(),
    )
    assert short.returncode == 0, short.stderr
    long = start(
        K_SERVICE="route",
        ION_API_KEYS=K1,
        ION_REQUEST_ID_SECRET="s3cret",
        ION_CUSTOMER_KEY_LEGACY_UNTIL=(today + timedelta(days=120)).isoformat(),
    )
    assert long.returncode != 0
    assert "ION_CUSTOMER_KEY_LEGACY_UNTIL" in long.stderr
    assert "more than 90 days ahead" in long.stderr
