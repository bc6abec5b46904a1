"""Fan-out's YAML files (routing, incident policy) read into their models: errors name the file
and the fields at fault, as one kind of error per file."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigFileError(ValueError):
    """A file that cannot be used; ``problems`` lists each as (where, what), since a problem's own
    text may hold the "; " the message joins them with."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def load_model(path: Path, model: type[M], *, what: str, top: str, error: type[ConfigFileError]) -> M:
    """``path`` read as ``model``; ``what`` names the file in errors ("routing file"), ``top`` the
    key a mapping must start with; every failure is raised as ``error``."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise error(f"{what} {path} must be a mapping with `{top}:`")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            (".".join(str(p) for p in err["loc"]) or "file", err["msg"])
            for err in exc.errors(include_url=False, include_input=False)
        ]
        listed = "; ".join(f"{where}: {message}" for where, message in problems)
        raise error(f"{what} {path} is invalid: {listed}", problems) from None
