"""Who may call what: each request's caller, verified, and the roles a route needs.

Deployed, Cloud Run's invoker check only says a caller may reach a function, not what it may do
there. So every HTTP function (``shared.http.Api``) and push entry point (``serve_push``) also
asks who the caller is and whether they hold the route's role:

- ``Authorization: Bearer <ID token>``: a Google-signed ID token (scheduler jobs, push
  subscriptions, Cloud Tasks, people and scripts with ``run.invoker``), verified for signature
  (Google's certs), issuer (accounts.google.com), audience (``ION_AUTH_AUDIENCES``: the function's
  own URLs) and expiry;
- ``x-goog-iap-jwt-assertion``: the JWT Identity-Aware Proxy signs for the person it let through
  the load balancer, verified with IAP's keys, issuer and audience (``ION_IAP_AUDIENCE``);
- ``X-Ion-Dev-Principal``: locally only, the identity the dev stack says it calls as (its
  scheduler and Cloud Tasks stand-ins send it); refused (401) when deployed (``K_SERVICE`` set),
  where nothing but a signed token names a caller. Locally, bearer tokens are verified only when
  ``ION_AUTH_AUDIENCES`` is set.

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
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

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

DEV_HEADER = "X-Ion-Dev-Principal"
IAP_JWT_HEADER = "x-goog-iap-jwt-assertion"
AUDIENCES_VARIABLE = "ION_AUTH_AUDIENCES"
IAP_AUDIENCE_VARIABLE = "ION_IAP_AUDIENCE"
CERTS_URL_VARIABLE = "ION_AUTH_CERTS_URL"
IAP_CERTS_URL_VARIABLE = "ION_IAP_CERTS_URL"
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
IAP_CERTS_URL = "https://www.gstatic.com/iap/verify/public_key"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
IAP_ISSUER = "https://cloud.google.com/iap"
ANONYMOUS = "anonymous"

PUSH_PATH = re.compile(r"^/projects/[^/]+/topics/[^/]+$")
# Customers, their keys and their erasure are admin's whatever the method (a new route under
# them is admin's without saying so).
ADMIN_PATH = re.compile(r"^/v1/(customers|erasure|erase)(/|$)")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CERTS_TTL_SECONDS = 300.0

log = get_logger("roles")


class AuthProblem(Exception):
    """The caller could not be established (401) or lacks the role (403)."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


@dataclass(frozen=True)
class Caller:
    """Who made a request: ``principal`` (an email, or ``anonymous``) and how we know (``via``:
    ``id-token``, ``iap``, ``dev-header`` or ``none``)."""

    principal: str
    via: str


def deployed() -> bool:
    return bool(os.environ.get("K_SERVICE"))


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
    return frozenset(_principal(item) for item in value.split(",") if item.strip())


def _principal(item: str) -> str:
    item = item.strip()
    for prefix in ("user:", "serviceAccount:"):
        if item.startswith(prefix):
            return item[len(prefix) :].lower()
    return item.lower()


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


# --- Identity -----------------------------------------------------------------------------------


def identify(headers: Mapping[str, str]) -> Caller:
    """Who made the request: the IAP JWT's email, else the bearer ID token's, else (locally) the
    dev header's principal, else anonymous. A token present but not valid is a 401."""
    iap = headers.get(IAP_JWT_HEADER)
    if iap:
        return Caller(_verify_iap(iap.strip()), "iap")
    authorization = headers.get("Authorization") or ""
    # Locally without audiences (the dev stack's Cloud Tasks stand-in sends unsigned tokens) a
    # bearer token names nobody: the dev header does.
    verifies = deployed() or bool(_csv(AUDIENCES_VARIABLE))
    if authorization[:7].lower() == "bearer " and verifies:
        return Caller(_verify_id_token(authorization[7:].strip()), "id-token")
    dev = headers.get(DEV_HEADER)
    if dev is not None:
        if deployed():
            raise AuthProblem(
                401,
                f"{DEV_HEADER} is refused when deployed: only the local dev stack names its "
                "caller so; send a Google-signed ID token (Authorization: Bearer).",
            )
        principal = dev.strip()
        if not principal or len(principal) > 320:
            raise AuthProblem(401, f"{DEV_HEADER} must name a principal (an email), 1-320 characters.")
        return Caller(_principal(principal), "dev-header")
    return Caller(ANONYMOUS, "none")


def _csv(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _verify_id_token(token: str) -> str:
    audiences = _csv(AUDIENCES_VARIABLE)
    if not audiences:
        raise AuthProblem(
            401,
            f"This function accepts no ID tokens: {AUDIENCES_VARIABLE} (its own URLs) is not set.",
        )
    claims = _verify(token, os.environ.get(CERTS_URL_VARIABLE) or GOOGLE_CERTS_URL, audiences)
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise AuthProblem(
            401, f"ID token issuer {claims.get('iss')!r} is not Google's (accounts.google.com)."
        )
    return _email(claims)


def _verify_iap(token: str) -> str:
    expected = os.environ.get(IAP_AUDIENCE_VARIABLE, "").strip()
    if not expected:
        raise AuthProblem(401, f"This function is not behind IAP: {IAP_AUDIENCE_VARIABLE} is not set.")
    claims = _verify(token, os.environ.get(IAP_CERTS_URL_VARIABLE) or IAP_CERTS_URL, None)
    if claims.get("iss") != IAP_ISSUER:
        raise AuthProblem(401, f"IAP JWT issuer {claims.get('iss')!r} is not {IAP_ISSUER}.")
    audience = str(claims.get("aud") or "")
    # The backend service's id is only known once the function exists (a cycle in Terraform), so
    # the audience may be given as the project's backend services prefix ending in "*".
    matches = audience.startswith(expected[:-1]) if expected.endswith("*") else audience == expected
    if not matches:
        raise AuthProblem(401, f"IAP JWT audience {audience!r} is not this load balancer's ({expected}).")
    return _email(claims)


def _email(claims: Mapping[str, Any]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or not email or claims.get("email_verified") is False:
        raise AuthProblem(401, "The token carries no verified email to hold roles by.")
    return email.lower()


def _verify(token: str, certs_url: str, audiences: list[str] | None) -> dict[str, Any]:
    from google.auth import exceptions
    from google.oauth2 import id_token

    try:
        claims = id_token.verify_token(token, _certs_request(), audience=audiences, certs_url=certs_url)
    except exceptions.TransportError as exc:
        log.warning("could not fetch the token certs from %s: %s", certs_url, type(exc).__name__)
        raise AuthProblem(503, "The token signing keys could not be fetched; retry later.") from None
    except (ValueError, exceptions.GoogleAuthError) as exc:
        raise AuthProblem(401, f"Token refused: {_reason(exc)}.") from None
    return dict(claims)


def _reason(exc: Exception) -> str:
    text = str(exc)
    for word, reason in (
        ("expired", "expired"),
        ("Token used too early", "not valid yet"),
        ("audience", "wrong audience (not this function's URL)"),
        ("signature", "bad signature"),
        ("Certificate for key id", "signed with an unknown key"),
    ):
        if word.lower() in text.lower():
            return reason
    return "not a valid signed JWT"


# --- The certs request, cached --------------------------------------------------------------------


@dataclass(frozen=True)
class _CachedResponse:
    status: int
    headers: Mapping[str, str]
    data: bytes


class _CachingRequest:
    """google-auth's transport request, remembering each certs document a few minutes (Google
    rotates its keys over days): a token check costs no fetch on a warm instance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, _CachedResponse]] = {}
        self._inner: Any = None

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(url)
            if method == "GET" and hit and hit[0] > now:
                return hit[1]
        if self._inner is None:
            from google.auth.transport.requests import Request

            self._inner = Request()
        response = self._inner(url, method=method, timeout=kwargs.pop("timeout", 10), **kwargs)
        cached = _CachedResponse(response.status, dict(response.headers), response.data)
        if method == "GET" and response.status == 200:
            with self._lock:
                self._cache[url] = (now + _CERTS_TTL_SECONDS, cached)
        return cached

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


_request = _CachingRequest()


def _certs_request() -> _CachingRequest:
    return _request


def reset() -> None:
    """Forget cached certs and scheduled paths (tests change them)."""
    _request.clear()
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
