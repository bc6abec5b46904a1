"""Who may call what: each request's caller, verified, and the roles a route needs.

Deployed, Cloud Run's invoker check only says a caller may reach a function, not what it may do
there. So every HTTP function (``shared.http.Api``) and push entry point (``serve_push``) also
asks who the caller is (``shared.identity``: an ID token, IAP's JWT, or locally the dev
header) and whether they hold the route's role.

The caller's principal (the token's verified email) holds a role when it is listed in the role's
variable (``ROLE_VARIABLES``, rendered by Terraform from ``var.roles``). Human roles nest: an
admin is an operator, an operator a viewer. Job roles (scheduler, tasks, push) are identities of
their own that reach only the routes naming them.

A route's role comes from ``default_roles`` unless its ``Api.route(role=...)`` says otherwise:
a push path ``/projects/*/topics/*`` needs the push identity; a path under ``/v1/customers``,
``/v1/erasure`` or ``/v1/erase``, admin; else GET/HEAD need viewer, POST/PUT/PATCH/DELETE
operator, and a POST path a Cloud Scheduler job of the capability calls, the scheduler (or an
operator, to run it by hand).

Locally (no ``K_SERVICE``), a role whose variable is unset is held by every caller (logged once
as the local fallback it is); deployed, an unset role variable stops the function at start
(``deployment_problems``) and, were it reached anyway, is held by nobody.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from shared.deployment import deployed
from shared.identity import (
    ANONYMOUS,
    AUDIENCES_VARIABLE,
    IAP_AUDIENCE_VARIABLE,
    AuthProblem,
    Caller,
    forget_certs,
    identify,
    normalize_principal,
)
from shared.logging import get_logger

VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
SCHEDULER = "scheduler"
TASKS = "tasks"
PUSH = "push"
PUBLIC = "public"  # no role: the route checks its callers itself (routing's API keys)

HUMAN_ROLES = (VIEWER, OPERATOR, ADMIN)
JOB_ROLES = (SCHEDULER, TASKS, PUSH)
ROLES = (*HUMAN_ROLES, *JOB_ROLES)

# The environment variable listing each role's principals (comma-separated emails, optionally
# prefixed user: or serviceAccount:, or domain:<DNS name> for everyone of a verified domain).
ROLE_VARIABLES = {
    VIEWER: "ION_ROLE_VIEWERS",
    OPERATOR: "ION_ROLE_OPERATORS",
    ADMIN: "ION_ROLE_ADMINS",
    SCHEDULER: "ION_ROLE_SCHEDULER",
    TASKS: "ION_ROLE_TASKS",
    PUSH: "ION_ROLE_PUSH",
}
# What holding a role grants.
_GRANTS = {
    ADMIN: {ADMIN, OPERATOR, VIEWER},
    OPERATOR: {OPERATOR, VIEWER},
    VIEWER: {VIEWER},
    SCHEDULER: {SCHEDULER},
    TASKS: {TASKS},
    PUSH: {PUSH},
}

PUSH_PATH = re.compile(r"^/projects/[^/]+/topics/[^/]+$")
# Customers, their keys and their erasure are admin's whatever the method (a new route under
# them is admin's without saying so).
ADMIN_PATH = re.compile(r"^/v1/(customers|erasure|erase)(/|$)")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

log = get_logger("roles")


def normalize_roles(role: str | Iterable[str]) -> tuple[str, ...]:
    roles = (role,) if isinstance(role, str) else tuple(role)
    for name in roles:
        if name not in ROLES and name != PUBLIC:
            raise ValueError(f"unknown role {name!r}; roles are {', '.join((*ROLES, PUBLIC))}")
    if PUBLIC in roles and len(roles) > 1:
        raise ValueError("a public route needs no other role")
    return roles


def default_roles(path: str, methods: Iterable[str], *, scheduled: bool = False) -> tuple[str, ...]:
    """The role a route needs unless it says otherwise (see the module's docstring)."""
    if PUSH_PATH.match(path):
        return (PUSH,)
    if ADMIN_PATH.match(path):
        return (ADMIN,)
    if _WRITES & {m.upper() for m in methods}:
        return (SCHEDULER, OPERATOR) if scheduled else (OPERATOR,)
    return (VIEWER,)


@lru_cache(maxsize=1)
def scheduled_paths() -> dict[str, frozenset[str]]:
    """Capability => the paths its Cloud Scheduler jobs POST to (topology.yaml)."""
    from shared.topology import topology

    found: dict[str, set[str]] = {}
    spec = topology()
    for schedule in spec.schedules.values():
        capability = spec.functions[schedule.function].capability
        found.setdefault(capability, set()).add(schedule.path)
    return {name: frozenset(paths) for name, paths in found.items()}


# --- Membership -----------------------------------------------------------------------------------


def _members(role: str) -> frozenset[str] | None:
    """The principals listed for ``role``, or None when its variable is unset."""
    value = os.environ.get(ROLE_VARIABLES[role])
    if value is None:
        return None
    return frozenset(normalize_principal(item) for item in value.split(",") if item.strip())


_fallback_logged: set[str] = set()


def holds(principal: str, role: str) -> bool:
    """Whether ``principal`` is listed for ``role`` (locally, an unset role is everyone's)."""
    members = _members(role)
    if members is None:
        if deployed():
            return False
        if role not in _fallback_logged:
            _fallback_logged.add(role)
            log.warning(
                "local fallback: %s is unset, so every caller holds role %s",
                ROLE_VARIABLES[role],
                role,
                extra={"role": role},
            )
        return True
    principal = principal.lower()
    if principal in members:
        return True
    domain = principal.rpartition("@")[2]
    return bool(domain) and principal != ANONYMOUS and f"domain:{domain}" in members


def roles_of(principal: str) -> set[str]:
    """Every role ``principal`` holds, with what each grants."""
    held: set[str] = set()
    for role in ROLES:
        if holds(principal, role):
            held |= _GRANTS[role]
    return held


def is_job_identity(principal: str) -> bool:
    """Whether ``principal`` is listed as one of the job identities (an unset list names none)."""
    principal = principal.lower()
    return any(principal in (_members(role) or ()) for role in JOB_ROLES)


def describe(roles: tuple[str, ...]) -> str:
    return " or ".join(roles)


def authorize(headers: Mapping[str, str], roles: tuple[str, ...]) -> Caller:
    """The verified caller of a request, if it holds one of ``roles``; else ``AuthProblem``:
    401 when no caller could be established (deployed) or a token fails verification, 403 naming
    the role it needs when the caller lacks it."""
    if roles == (PUBLIC,):
        # Not even looked at: a public route's clients may send any Authorization header.
        return Caller(ANONYMOUS, "none")
    caller = identify(headers)
    if deployed() and caller.via == "none":
        raise AuthProblem(
            401,
            f"No verified caller: send a Google-signed ID token (Authorization: Bearer) for this "
            f"function's URL; this route needs role {describe(roles)}.",
            required_roles=list(roles),
        )
    if not roles_of(caller.principal) & set(roles):
        raise AuthProblem(
            403,
            f"{caller.principal} lacks role {describe(roles)}, which this route needs.",
            required_roles=list(roles),
            principal=caller.principal,
        )
    return caller


def reset() -> None:
    """Forget cached certs and scheduled paths (tests change them)."""
    forget_certs()
    scheduled_paths.cache_clear()
    _fallback_logged.clear()


# --- Deployment -----------------------------------------------------------------------------------


def required_variables(target: str) -> list[str]:
    """The variables a deployed ``target`` needs to verify callers and map them to roles (what
    terraform/modules/settings renders for it): none for the public function (API keys), the push
    identity for a push entry point, every role for an HTTP function and, behind the load
    balancer, IAP's audience. (An HTTP function serves no push path: its push role stays unset.)"""
    from shared.topology import topology

    function = topology().functions.get(target)
    if function is None or function.public:
        return []
    if function.trigger == "pubsub":
        return [ROLE_VARIABLES[PUSH], AUDIENCES_VARIABLE]
    needed = [name for role, name in ROLE_VARIABLES.items() if role != PUSH] + [AUDIENCES_VARIABLE]
    if function.public_paths:
        needed.append(IAP_AUDIENCE_VARIABLE)
    return needed


def deployment_problems(target: str) -> list[str]:
    """What a deployed ``target`` lacks of ``required_variables``, each named. A role variable
    may be empty (nobody holds the role), not unset; the audiences may not be empty."""
    problems = []
    for name in required_variables(target):
        if name in ROLE_VARIABLES.values():
            if name not in os.environ:
                problems.append(f"{name} is not set (the role's principals; empty: nobody)")
        elif not os.environ.get(name, "").strip():
            problems.append(f"{name} is not set")
    return problems
