"""Deployed, the health function refuses to start without the secret customer keys are signed
with (routing refuses keys signed with the local default), or with a weak one, naming it."""

from __future__ import annotations

import pytest

from functions.health.settings import deployment_problems

STRONG = "Zq3v8Kp2Lm9Xt4Rw7Ny1Bc6Hd0Fg5Js2Ua8Ve3Wi9Ok4Pl7Qm1Rn6Ts0Yu5Xz2Ab8Cd3"


@pytest.fixture(autouse=True)
def _deployed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K_SERVICE", "score-health")
    monkeypatch.setenv("REDIS_URL", "rediss://:pw@10.0.0.3:6378/0")
    monkeypatch.setenv("ION_HEALTH_PUBLIC_URL", "https://ops.example.com")


def test_with_a_strong_secret_there_is_no_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ION_CUSTOMER_KEY_SECRET", STRONG)
    assert deployment_problems("score_health") == []


@pytest.mark.parametrize("value", ["", "  "])
def test_without_the_secret_it_refuses_naming_it(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ION_CUSTOMER_KEY_SECRET", value)
    (problem,) = deployment_problems("score_health")
    assert problem.startswith("ION_CUSTOMER_KEY_SECRET is not set")
    assert "customer-key-secret" in problem


def test_a_weak_secret_is_refused_without_quoting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ION_CUSTOMER_KEY_SECRET", "hunter2hunter2")
    (problem,) = deployment_problems("score_health")
    assert problem.startswith("ION_CUSTOMER_KEY_SECRET is too weak: 14 characters, fewer than 32")
    assert "hunter2" not in problem


def test_rotation_signs_with_the_first_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.health.settings import HealthSettings

    monkeypatch.setenv("ION_CUSTOMER_KEY_SECRET", f"{STRONG}, old-{STRONG}")
    assert deployment_problems("score_health") == []
    assert HealthSettings().signing_secret() == STRONG.encode()


@pytest.mark.parametrize("value", ["", "http://127.0.0.1:8087", "https://score-health-abc.a.run.app"])
def test_notices_need_a_link_people_can_open(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ION_CUSTOMER_KEY_SECRET", STRONG)
    monkeypatch.setenv("ION_HEALTH_PUBLIC_URL", value)
    (problem,) = deployment_problems("score_health")
    assert problem.startswith("ION_HEALTH_PUBLIC_URL")
