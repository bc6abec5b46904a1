"""Fail closed: deployed, routing refuses to start with an API open by mistake or a request id
anyone could forge, naming the variable; locally the open API stays the default."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.topology import ROOT

SETTINGS = ("ION_API_KEYS", "ION_REQUEST_ID_SECRET", "ION_ALLOW_OPEN_API", "K_SERVICE", "REDIS_URL")
REDIS = "rediss://:pw@10.0.0.3:6378/0"


def start(**env: str) -> subprocess.CompletedProcess[str]:
    """Import main.py as functions-framework does at the deployed ``route`` function's start."""
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return subprocess.run(
        [sys.executable, "-c", "import main"],
        cwd=ROOT,
        env={
            **clean,
            "FUNCTION_TARGET": "route",
            **({"REDIS_URL": REDIS} if "K_SERVICE" in env else {}),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_deployed_with_keys_and_secret_starts() -> None:
    started = start(K_SERVICE="route", ION_API_KEYS="k1,k2", ION_REQUEST_ID_SECRET="s3cret")
    assert started.returncode == 0, started.stderr


@pytest.mark.parametrize("keys", ["a,,b", " ", "a,b,", ", a"])
def test_a_blank_key_entry_refuses_to_start(keys: str) -> None:
    started = start(K_SERVICE="route", ION_API_KEYS=keys, ION_REQUEST_ID_SECRET="s3cret")
    assert started.returncode != 0
    assert "ION_API_KEYS has a blank entry" in started.stderr


@pytest.mark.parametrize("secret", ["", "  "])
def test_an_empty_request_id_secret_refuses_to_start(secret: str) -> None:
    started = start(K_SERVICE="route", ION_API_KEYS="k1", ION_REQUEST_ID_SECRET=secret)
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
    started = start(K_SERVICE="route", ION_API_KEYS="k1", ION_REQUEST_ID_SECRET="s3cret", REDIS_URL="")
    assert started.returncode != 0
    assert "REDIS_URL is not set: the per-key rate limit would be counted per instance" in started.stderr
