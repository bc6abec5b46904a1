"""The caller of a request verified and its roles checked, before any handler runs."""

from __future__ import annotations

import flask

from shared.http.problems import Problem, log


def authorize_request(request: flask.Request, roles: tuple[str, ...]) -> None:
    """Verify the caller and check it holds one of ``roles``: a 401/403 ``Problem`` if not."""
    from shared.audit import CALLER_KEY
    from shared.identity import AuthProblem
    from shared.roles import authorize

    try:
        request.environ[CALLER_KEY] = authorize(request.headers, roles)
    except AuthProblem as refused:
        log.warning(
            "refused %s %s: %s",
            request.method,
            request.path,
            refused.detail,
            extra={"status": refused.status, "required_roles": list(roles)},
        )
        headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else None
        raise Problem(refused.status, refused.detail, headers=headers, **refused.extra) from None
