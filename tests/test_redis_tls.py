"""A deployed REDIS_URL is rediss:// (Memorystore with in-transit encryption): the client verifies
the server's chain against REDIS_CA_CERT, the instance's own CA."""

from __future__ import annotations

import os

from shared import redis as shared_redis
from shared.settings import get_settings

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _client_kwargs(url: str, ca: str | None) -> tuple[str, dict[str, object]]:
    os.environ["REDIS_URL"] = url
    if ca is None:
        os.environ.pop("REDIS_CA_CERT", None)
    else:
        os.environ["REDIS_CA_CERT"] = ca
    get_settings.cache_clear()
    shared_redis.reset_clients()
    client = shared_redis.get_redis()
    assert client is not None
    pool = client.connection_pool
    return pool.connection_class.__name__, pool.connection_kwargs


def test_a_rediss_url_verifies_the_server_against_the_instance_ca() -> None:
    kind, kwargs = _client_kwargs(
        "rediss://:s3cret@10.0.0.3:6378/0?ssl_cert_reqs=required&ssl_check_hostname=false", PEM
    )
    assert kind == "SSLConnection"
    assert kwargs["ssl_ca_data"] == PEM
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["password"] == "s3cret"


def test_a_plain_local_url_takes_no_tls_settings() -> None:
    kind, kwargs = _client_kwargs("redis://127.0.0.1:6379/0", PEM)
    assert kind == "Connection"
    assert "ssl_ca_data" not in kwargs
