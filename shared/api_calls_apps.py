"""The recorder's hook on functions-framework (``shared/api_calls.py`` records, this attributes):
every app ``functions_framework.create_app(target, ...)`` makes after install serves each request
with its calls attributed to ``target``. Apart from the recorder itself because it reaches the
HTTP layer, which only entry points (``main.py``, ``devtools.serve``, the tests) may import."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from shared import api_calls

_patched = False


class _AttributedApp:
    """WSGI middleware: the calls made while serving a request are the target's."""

    def __init__(self, target: str, app: Callable[..., Any]) -> None:
        self.target = target
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with api_calls.calls_of(self.target):
            return self.app(environ, start_response)


def attribute_app(app: Any, target: str) -> Any:
    """Attribute the calls a Flask app (one ``create_app`` made) makes to ``target``."""
    app.wsgi_app = _AttributedApp(target, app.wsgi_app)
    return app


def _patch_create_app() -> None:
    global _patched
    if _patched:
        return
    import functions_framework

    original = functions_framework.create_app

    def create_app(target: str | None = None, *args: Any, **kwargs: Any) -> Any:
        app = original(target, *args, **kwargs)
        name = target or os.environ.get("FUNCTION_TARGET")
        return attribute_app(app, name) if name else app

    functions_framework.create_app = create_app  # type: ignore[assignment]
    _patched = True


def install_from_env() -> bool:
    """``shared.api_calls.install_from_env``, and the apps made from now on attribute their calls
    to their target. True when recording (``ION_RECORD_API_CALLS`` set)."""
    if not api_calls.install_from_env():
        return False
    _patch_create_app()
    return True
