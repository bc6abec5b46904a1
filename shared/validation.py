"""Pydantic validation errors as data any boundary can answer with (HTTP, a CLI, a log line)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def validation_errors(exc: ValidationError, whole: str = "body") -> list[dict[str, Any]]:
    """Pydantic errors as ``[{"field": "a.b", "message": ..., "type": ...}]`` without echoing input;
    an error of the model as a whole (a check across fields) names ``whole``."""
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in err["loc"]) or whole
        errors.append({"field": loc, "message": err["msg"], "type": err["type"]})
    return errors
