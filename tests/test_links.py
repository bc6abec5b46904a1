"""A deployed link base must be an https address people can open, never loopback or a
function's own internal URL."""

from __future__ import annotations

import pytest

from shared.links import link_base_problem


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "http://ops.example.com",
        "https://127.0.0.1:8088",
        "https://localhost/dashboards",
        "https://[::1]:8084",
        "https://mail-reports-abc123-uc.a.run.app",
        "https://us-central1-proj.cloudfunctions.net/mail_reports",
        "ops.example.com",
    ],
)
def test_unusable_link_bases_are_refused_naming_the_variable(url: str | None) -> None:
    problem = link_base_problem("ION_REPORTS_PUBLIC_URL", url)
    assert problem is not None
    assert problem.startswith("ION_REPORTS_PUBLIC_URL")


@pytest.mark.parametrize("url", ["https://ops.example.com", "https://ops.example.com/dashboards/overview"])
def test_a_public_https_base_is_accepted(url: str) -> None:
    assert link_base_problem("ION_DASHBOARD_URL", url) is None
