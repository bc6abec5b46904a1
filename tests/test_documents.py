"""Documents that stay true: every file, Make target, setting and route a README names exists.

A README that names a file that was renamed, a `make` target nobody defines, a setting the code
never reads or a route no function serves is a wrong instruction to the person reading it; this
test fails on each, naming the README and what it named."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest

from shared.topology import ROOT

READMES = sorted([ROOT / "README.md", *ROOT.glob("functions/*/README.md")])
CODE_DIRS = ("functions", "shared", "devtools", "terraform", "bench", "tests")
# A backticked path: a/b.ext or a/b/ (directories), relative to the repository or the README.
EXTENSIONS = r"(?:py|yaml|yml|tf|tfvars|j2|txt|json|md|toml|cfg|sh)"
PATH = re.compile(
    r"`((?:functions|shared|devtools|terraform|tests|bench|\.ci)/[A-Za-z0-9_./-]*"
    rf"|(?:[A-Za-z0-9_-]+/)*[A-Za-z0-9_-]+\.{EXTENSIONS})`"
)
MAKE = re.compile(r"`make ([a-z][a-z-]*)")
SETTING = re.compile(r"`((?:ION|SMTP|SLACK|PAGERDUTY|ALERT|REDIS)_[A-Z0-9_]+)`")
ROUTE = re.compile(r"`(?:GET|POST|PUT|PATCH|DELETE) (/[^`?\s\[]*)")
# Names that are examples or placeholders, not files of this repository.
NOT_FILES = {
    "ion.auto.tfvars",  # the operator's copy of terraform/examples/production.tfvars
    "score.py",  # the NAB corpus's own scorer, shipped with the corpus beside the repository
    "outbox/",
    "outbox/reports/",
    ".run/",
    ".venv/",
    ".venv-checkov/",
}


@lru_cache(maxsize=1)
def code_text() -> str:
    parts = [(ROOT / name).read_text() for name in ("main.py", "topology.yaml", "Makefile")]
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*"):
            if path.name == "test_documents.py" or ".terraform" in path.parts:
                continue
            if path.suffix in (".py", ".tf", ".yaml", ".j2"):
                parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)


@lru_cache(maxsize=1)
def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


@lru_cache(maxsize=1)
def served_routes() -> list[re.Pattern[str]]:
    """Every route rule the functions declare, as a pattern over concrete or templated paths."""
    rules = set()
    for main in ROOT.glob("functions/*/main.py"):
        rules |= set(re.findall(r"\.route\(\s*\"(/[^\"]*)\"", main.read_text()))
    rules |= {"/health", "/openapi.json", "/projects/P/topics/T"}
    patterns = []
    for rule in rules:
        # werkzeug's <name> and <path:name> match a README's {id}, <id> or a concrete value.
        regex = re.sub(
            r"<(?:[a-z]+:)?[a-z_]+>", r"[^/]+", re.escape(rule).replace(r"\<", "<").replace(r"\>", ">")
        )
        patterns.append(re.compile(f"^{regex}/?$"))
    return patterns


@lru_cache(maxsize=1)
def file_names() -> set[str]:
    """Every file name in the repository, for a README naming a file without its folder."""
    skip = {".git", ".venv", ".venv-checkov", ".run", "__pycache__", ".terraform"}
    return {p.name for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)}


def _exists(readme: Path, name: str) -> bool:
    name = name.rstrip("/")
    if name in {n.rstrip("/") for n in NOT_FILES}:
        return True
    if "/" not in name and name in file_names():
        return True
    return any((base / name).exists() for base in (ROOT, readme.parent))


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_a_readme_names_exists(readme: Path) -> None:
    text = readme.read_text()
    missing = sorted(
        {
            name
            for name in PATH.findall(text)
            if "<" not in name
            and "*" not in name
            and not name.startswith(("http", "../"))
            and not _exists(readme, name)
        }
    )
    assert missing == []


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_a_readme_names_exists(readme: Path) -> None:
    assert sorted(set(MAKE.findall(readme.read_text())) - make_targets()) == []


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_setting_a_readme_names_is_read_by_the_code(readme: Path) -> None:
    code = code_text()
    assert sorted({name for name in SETTING.findall(readme.read_text()) if name not in code}) == []


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_route_a_readme_names_is_served(readme: Path) -> None:
    routes = served_routes()
    unserved = set()
    for path in ROUTE.findall(readme.read_text()):
        concrete = re.sub(r"\{[^}]+\}|<[^>]+>", "x", path.rstrip(".,;:)"))
        if not any(pattern.match(concrete) for pattern in routes):
            unserved.add(path)
    assert sorted(unserved) == []


def test_the_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "See `functions/routing/probes.py`, run `make deploy`, set `ION_NO_SUCH_THING`, call `POST /v9/nothing`."
    )
    text = readme.read_text()
    assert [n for n in PATH.findall(text) if not _exists(readme, n)] == ["functions/routing/probes.py"]
    assert set(MAKE.findall(text)) - make_targets() == {"deploy"}
    assert [n for n in SETTING.findall(text) if n not in code_text()] == ["ION_NO_SUCH_THING"]
    assert not any(p.match("/v9/nothing") for p in served_routes())
