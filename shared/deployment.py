"""Start-up checks of a deployed function (Cloud Run sets ``K_SERVICE``).

Each capability's ``settings`` module has ``deployment_problems(target)``, the settings its
function ``target`` needs when deployed and lacks, each problem naming its variable, and
``check_deployment(target)``, which refuses to start on any of them. ``main.py`` runs the check of
``FUNCTION_TARGET`` at import, so a function deployed without what it needs fails its start (and
its deployment) instead of answering 500 at first use.
"""

from __future__ import annotations

import math
import os
from collections import Counter
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


# An operator API key or a MAC secret: at least this long, of at least two character classes, and
# of at least this estimated entropy (README: Deploy).
MIN_SECRET_CHARS = 32
MIN_SECRET_BITS = 80


def _period(value: str) -> int:
    """The length of the shortest unit ``value`` repeats (its own length when it repeats none)."""
    for period in range(1, len(value) // 2 + 1):
        if all(value[i] == value[i - period] for i in range(period, len(value))):
            return period
    return len(value)


def entropy_bits(value: str) -> float:
    """An estimate of the entropy of ``value`` in bits: the Shannon entropy of its own characters
    times its length, a repeated unit counted once. Generous to a chosen phrase (it cannot know
    words) but low for short, one-character, few-character or repeated keys."""
    unit = value[: _period(value)]
    if not unit:
        return 0.0
    counts = Counter(unit).values()
    per_char = -sum(c / len(unit) * math.log2(c / len(unit)) for c in counts)
    return per_char * len(unit)


def secret_weakness(value: str) -> str | None:
    """What makes ``value`` too weak for an API key or a MAC secret, or None: fewer than
    ``MIN_SECRET_CHARS`` characters, one character class only (lowercase, uppercase, digits,
    others), or an entropy estimate under ``MIN_SECRET_BITS`` bits. The value is never quoted."""
    if len(value) < MIN_SECRET_CHARS:
        return f"{len(value)} characters, fewer than {MIN_SECRET_CHARS}"
    classes = {
        "lower" if c.islower() else "upper" if c.isupper() else "digit" if c.isdigit() else "other"
        for c in value
    }
    if len(classes) < 2:
        return "one character class only (mix at least two of lowercase, uppercase, digits, others)"
    bits = entropy_bits(value)
    if bits < MIN_SECRET_BITS:
        return (
            f"an estimated {bits:.0f} bits of entropy, under {MIN_SECRET_BITS} "
            "(too few distinct characters, or a repeated pattern)"
        )
    return None


def refuse_to_start(capability: str, problems: list[str]) -> None:
    if problems:
        raise SystemExit(f"{capability} cannot start: " + "; ".join(problems))
