"""`make audit` (and tests/test_dependency_audit.py in `make test`): pip-audit over the pinned
requirements (requirements.txt, what is deployed, and requirements-dev.txt, what tests and CI
run), each pin audited as written (``--no-deps``: every line pins one exact version).

The verdict is one of:

- ``clean``: every pinned package was audited and no known vulnerability applies, or each one
  found is in ``dependency-audit-allowlist.yaml`` (id, package, why it does not apply, review
  date) with its review date not yet past;
- ``vulnerable``: a vulnerability not allow-listed (or allow-listed past its review date), or an
  allow-list entry that is malformed or no longer reported (no stale exceptions);
- ``not audited``: the vulnerability service could not be asked about every pin. pip-audit itself
  says "No known vulnerabilities found" and exits 0 when it skipped every package it could not
  look up; here that is never a pass. Each service is tried in turn (PyPI's JSON API, then OSV),
  and the verdict says what each answered.

Exit status: 0 clean, 1 vulnerable, 2 not audited.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from shared.topology import ROOT

REQUIREMENTS = (ROOT / "requirements.txt", ROOT / "requirements-dev.txt")
ALLOWLIST = ROOT / "dependency-audit-allowlist.yaml"
SERVICES = ("pypi", "osv")
TIMEOUT_SECONDS = 300
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(paths: tuple[Path, ...] = REQUIREMENTS) -> dict[str, str]:
    """Package (normalised) -> pinned version, over the files and the files they include."""
    found: dict[str, str] = {}
    for path in paths:
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if line.startswith("-r "):
                found.update(pins((path.parent / line[3:].strip(),)))
            elif match := _PIN.match(line):
                found[normalise(match[1])] = match[3]
    return found


@dataclass(frozen=True)
class Allowed:
    id: str
    package: str
    why: str
    review_by: date


def load_allowlist(path: Path, pinned: dict[str, str], today: date) -> tuple[list[Allowed], list[str]]:
    """The entries, and what is wrong with any of them (a missing field, a package not pinned, a
    review date past)."""
    raw = yaml.safe_load(path.read_text()) if path.exists() else []
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        return [], [f"{path.name}: must be a list of entries (id, package, why, review_by)"]
    entries: list[Allowed] = []
    problems: list[str] = []
    for index, item in enumerate(raw, 1):
        where = f"{path.name} entry {index}"
        if not isinstance(item, dict):
            problems.append(f"{where}: not a mapping")
            continue
        missing = [k for k in ("id", "package", "why", "review_by") if not str(item.get(k) or "").strip()]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        review_by = item["review_by"]
        if not isinstance(review_by, date):
            try:
                review_by = date.fromisoformat(str(review_by))
            except ValueError:
                problems.append(f"{where} ({item['id']}): review_by {review_by!r} is not a date (YYYY-MM-DD)")
                continue
        entry = Allowed(
            str(item["id"]).strip(), normalise(str(item["package"])), str(item["why"]).strip(), review_by
        )
        if entry.package not in pinned:
            problems.append(
                f"{where} ({entry.id}): package {item['package']} is not pinned in the requirements"
            )
        if len(entry.why) < 20:
            problems.append(f"{where} ({entry.id}): say why it does not apply here, in a sentence")
        if review_by < today:
            problems.append(
                f"{where} ({entry.id}, {entry.package}): review date {review_by} has passed; review it"
            )
        entries.append(entry)
    return entries, problems


@dataclass
class Verdict:
    status: str  # "clean", "vulnerable", "not audited"
    lines: list[str] = field(default_factory=list)
    service: str = ""
    audited: int = 0

    @property
    def exit_code(self) -> int:
        return {"clean": 0, "vulnerable": 1}.get(self.status, 2)

    def text(self) -> str:
        head = {
            "clean": f"dependency audit: clean ({self.audited} pinned packages, service {self.service})",
            "vulnerable": (
                f"dependency audit: FAILED ({self.audited} pinned packages, service {self.service})"
            ),
            "not audited": (
                "dependency audit: NOT RUN, no vulnerability service could be asked about every pin"
            ),
        }[self.status]
        return "\n".join([head, *(f"  {line}" for line in self.lines)])


def run_pip_audit(service: str, timeout: float = TIMEOUT_SECONDS) -> tuple[int | None, str, str]:
    """(exit status or None on time-out, stdout, stderr) of pip-audit over the requirements."""
    binary = Path(sys.executable).with_name("pip-audit")
    if not binary.exists():
        return 127, "", f"{binary} is not installed (requirements-dev.txt pins it: make setup)"
    command = [
        str(binary),
        *(arg for path in REQUIREMENTS for arg in ("-r", str(path))),
        "--no-deps",
        "--disable-pip",
        "--vulnerability-service",
        service,
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--timeout",
        "15",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, "", f"pip-audit did not finish within {timeout:g} s"
    return done.returncode, done.stdout, done.stderr


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["no output"])[-1][:300]


def _aliases(vuln: dict[str, Any]) -> str:
    aliases = sorted(set(vuln.get("aliases", [])))
    return f" ({', '.join(aliases)})" if aliases else ""


def judge(
    service: str,
    run: tuple[int | None, str, str],
    *,
    allowed: list[Allowed],
    allowlist_problems: list[str],
    pinned: dict[str, str],
) -> Verdict:
    """The verdict of one pip-audit run, ``run`` = (exit status, stdout, stderr) as
    :func:`run_pip_audit` gives it (see the module's docstring)."""
    status, stdout, stderr = run
    try:
        report: dict[str, Any] = json.loads(stdout)
        dependencies = report["dependencies"]
    except (ValueError, KeyError, TypeError):
        reason = stderr if status is None else _last_error(stderr)
        return Verdict("not audited", [f"{service}: pip-audit gave no report ({reason})"], service)
    skipped = [d for d in dependencies if d.get("skip_reason")]
    if skipped:
        sample = skipped[0]["skip_reason"]
        return Verdict(
            "not audited",
            [
                f"{service}: {len(skipped)} of {len(dependencies)} pinned packages could not be looked up, "
                f"e.g. {sample!r}; pip-audit alone would have said 'No known vulnerabilities found'"
            ],
            service,
        )
    lines = list(allowlist_problems)
    used: set[tuple[str, str]] = set()
    for dependency in dependencies:
        package = normalise(dependency["name"])
        for vuln in dependency.get("vulns", []):
            names = {vuln["id"], *vuln.get("aliases", [])}
            match = next((a for a in allowed if a.package == package and a.id in names), None)
            if match is not None:
                used.add((match.package, match.id))
                continue
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            lines.append(
                f"{dependency['name']} {dependency['version']}: {vuln['id']}"
                f"{_aliases(vuln)}"
                f"; fixed in {fixed}; upgrade the pin, or allow-list it in {ALLOWLIST.name} saying why it "
                "does not apply"
            )
    for entry in allowed:
        if (entry.package, entry.id) not in used:
            lines.append(
                f"{ALLOWLIST.name}: {entry.id} ({entry.package}) is no longer reported for the pinned "
                f"version {pinned.get(entry.package, '?')}; remove the entry"
            )
    verdict = Verdict("vulnerable" if lines else "clean", lines, service, len(dependencies))
    if not lines and used:
        verdict.lines = [f"{len(used)} allow-listed: " + ", ".join(sorted(i for _, i in used))]
    return verdict


def audit(services: tuple[str, ...] = SERVICES, today: date | None = None) -> Verdict:
    """Ask each service in turn; the first that answers for every pin gives the verdict."""
    today = today or datetime.now(UTC).date()
    pinned = pins()
    allowed, problems = load_allowlist(ALLOWLIST, pinned, today)
    reasons: list[str] = []
    for service in services:
        verdict = judge(
            service, run_pip_audit(service), allowed=allowed, allowlist_problems=problems, pinned=pinned
        )
        if verdict.status != "not audited":
            return verdict
        reasons += verdict.lines
    return Verdict("not audited", reasons)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", choices=SERVICES, action="append", help="service(s) to ask, in order")
    args = parser.parse_args(argv)
    verdict = audit(tuple(args.service or SERVICES))
    print(verdict.text(), file=sys.stdout if verdict.exit_code == 0 else sys.stderr)
    return verdict.exit_code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
