"""Start-up checks of a deployed function (Cloud Run sets ``K_SERVICE``).

Each capability's ``settings`` module has ``deployment_problems(target)``, the settings its
function ``target`` needs when deployed and lacks, each problem naming its variable, and
``check_deployment(target)``, which refuses to start on any of them. ``main.py`` runs the check of
``FUNCTION_TARGET`` at import, so a function deployed without what it needs fails its start (and
its deployment) instead of answering 500 at first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from pydantic import ValidationError

from shared.links import link_base_problem

T = TypeVar("T")


def deployed() -> bool:
    return bool(os.environ.get("K_SERVICE"))


def load_settings(factory: Callable[[], T]) -> tuple[T | None, list[str]]:
    """The settings, or the problems of the variables that do not validate (each named)."""
    try:
        return factory(), []
    except ValidationError as exc:
        return None, [
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]


def unset(*names: str) -> list[str]:
    """A problem for each of ``names`` that is unset or blank in the environment."""
    return [f"{name} is not set" for name in names if not os.environ.get(name, "").strip()]


def link_problems(*variables: str) -> list[str]:
    """A problem for each link base variable people could not open (see shared.links)."""
    found = (link_base_problem(name, os.environ.get(name)) for name in variables)
    return [problem for problem in found if problem]


def refuse_to_start(capability: str, problems: list[str]) -> None:
    if problems:
        raise SystemExit(f"{capability} cannot start: " + "; ".join(problems))
