"""Who made a request, verified: the caller ``shared.roles`` checks a route's role for.

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
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.deployment import deployed
from shared.logging import get_logger

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
_CERTS_TTL_SECONDS = 300.0

log = get_logger("roles")  # the logger these checks have always logged under


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


def normalize_principal(item: str) -> str:
    """A listed or named principal as roles compare it: lower case, without ``user:``/``serviceAccount:``."""
    item = item.strip()
    for prefix in ("user:", "serviceAccount:"):
        if item.startswith(prefix):
            return item[len(prefix) :].lower()
    return item.lower()


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
        return Caller(normalize_principal(principal), "dev-header")
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


def forget_certs() -> None:
    """Forget the cached certs documents (tests change them)."""
    _request.clear()
