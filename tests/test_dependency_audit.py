"""The pinned requirements are audited for known vulnerabilities (pip-audit), failing on any not
allow-listed with a reason and a review date; a vulnerability service that cannot be asked is
said, never taken for a clean audit."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from devtools import audit_dependencies as audit

TODAY = date(2026, 12, 6)
PINNED = {"jinja2": "3.1.6", "requests": "2.34.2"}


def report(*dependencies: dict[str, Any]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def dep(name: str, version: str, *vulns: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "version": version, "vulns": list(vulns)}


VULN = {
    "id": "GHSA-aaaa-bbbb-cccc",
    "aliases": ["CVE-2026-1234"],
    "fix_versions": ["3.1.7"],
    "description": "x",
}


def allowed(**fields: Any) -> audit.Allowed:
    values = {
        "id": "CVE-2026-1234",
        "package": "jinja2",
        "why": "The sandbox is never used: templates are ours, never a user's.",
        "review_by": date(2027, 1, 31),
        **fields,
    }
    return audit.Allowed(**values)


def judge(run: tuple[int | None, str, str], entries: list[audit.Allowed] = (), problems: list[str] = ()):  # type: ignore[assignment,no-untyped-def]
    return audit.judge("pypi", run, allowed=list(entries), allowlist_problems=list(problems), pinned=PINNED)


def test_no_vulnerability_is_clean() -> None:
    verdict = judge((0, report(dep("Jinja2", "3.1.6"), dep("requests", "2.34.2")), ""))
    assert (verdict.status, verdict.exit_code, verdict.audited) == ("clean", 0, 2)


def test_a_vulnerability_not_allow_listed_fails_naming_it() -> None:
    verdict = judge((1, report(dep("Jinja2", "3.1.6", VULN), dep("requests", "2.34.2")), ""))
    assert (verdict.status, verdict.exit_code) == ("vulnerable", 1)
    (line,) = verdict.lines
    assert "Jinja2 3.1.6: GHSA-aaaa-bbbb-cccc (CVE-2026-1234); fixed in 3.1.7" in line


def test_an_allow_listed_vulnerability_passes_by_id_or_alias() -> None:
    for entry in (allowed(), allowed(id="GHSA-aaaa-bbbb-cccc")):
        verdict = judge((1, report(dep("Jinja2", "3.1.6", VULN)), ""), [entry])
        assert verdict.status == "clean", verdict.text()
    other_package = allowed(package="requests")
    assert judge((1, report(dep("Jinja2", "3.1.6", VULN)), ""), [other_package]).status == "vulnerable"


def test_a_stale_allow_list_entry_fails() -> None:
    verdict = judge((0, report(dep("Jinja2", "3.1.6")), ""), [allowed()])
    assert verdict.status == "vulnerable"
    assert "no longer reported" in verdict.lines[0]


def test_allow_list_entries_need_every_field_a_pinned_package_and_a_future_review(tmp_path: Path) -> None:
    path = tmp_path / "allow.yaml"
    path.write_text(
        "- {id: CVE-1, package: jinja2, why: 'Templates are ours, never a user input.', review_by: 2026-12-05}\n"
        "- {id: CVE-2, package: left-pad, why: 'Not a Python package of ours at all.', review_by: 2027-01-01}\n"
        "- {id: CVE-3, package: requests, review_by: 2027-01-01}\n"
        "- {id: CVE-4, package: requests, why: n/a, review_by: 2027-01-01}\n"
        "- {id: CVE-5, package: requests, why: 'Only ever called with our own URLs.', review_by: soon}\n"
    )
    entries, problems = audit.load_allowlist(path, PINNED, TODAY)
    assert len(entries) == 3
    assert any("CVE-1" in p and "review date 2026-12-05 has passed" in p for p in problems)
    assert any("CVE-2" in p and "left-pad is not pinned" in p for p in problems)
    assert any("entry 3: missing why" in p for p in problems)
    assert any("CVE-4" in p and "say why" in p for p in problems)
    assert any("CVE-5" in p and "not a date" in p for p in problems)
    assert judge((0, report(dep("Jinja2", "3.1.6")), ""), [], problems).status == "vulnerable"


def test_packages_the_service_could_not_look_up_are_not_a_pass() -> None:
    """pip-audit itself prints 'No known vulnerabilities found' and exits 0 here."""
    skipped = {"name": "requests", "skip_reason": "Dependency not found on PyPI and could not be audited"}
    verdict = judge((0, report(dep("Jinja2", "3.1.6"), skipped), "No known vulnerabilities found"))
    assert (verdict.status, verdict.exit_code) == ("not audited", 2)
    assert "1 of 2 pinned packages could not be looked up" in verdict.lines[0]


@pytest.mark.parametrize(
    "run",
    [
        (1, "", "requests.exceptions.ConnectionError: Failed to resolve the service's host"),
        (None, "", "pip-audit did not finish within 300 s"),
        (127, "", "pip-audit is not installed"),
    ],
)
def test_a_service_that_cannot_be_reached_is_not_a_pass(run: tuple[int | None, str, str]) -> None:
    verdict = judge(run)
    assert (verdict.status, verdict.exit_code) == ("not audited", 2)
    assert run[2][:20] in verdict.lines[0]
    assert verdict.text().startswith("dependency audit: NOT RUN")


def test_every_pin_is_read_from_both_requirement_files() -> None:
    pinned = audit.pins()
    assert pinned["functions-framework"]  # requirements.txt
    assert pinned["pip-audit"]  # requirements-dev.txt
    assert pinned["pytest"]


def test_the_checked_in_allow_list_is_well_formed() -> None:
    _, problems = audit.load_allowlist(audit.ALLOWLIST, audit.pins(), date.today())
    assert problems == []


def test_the_pinned_requirements_have_no_known_vulnerability() -> None:
    """The audit itself. Where neither vulnerability service can be reached (as on the development
    machines: see README, Dependencies) it is reported as skipped with what each service answered,
    and fails instead where ION_DEPENDENCY_AUDIT=required (Cloud Build)."""
    verdict = audit.audit()
    if verdict.status == "not audited":
        message = verdict.text()  # "dependency audit: NOT RUN, ..." and what each service answered
        if os.environ.get("ION_DEPENDENCY_AUDIT") == "required":
            pytest.fail(message)
        pytest.skip(message)
    assert verdict.status == "clean", verdict.text()
