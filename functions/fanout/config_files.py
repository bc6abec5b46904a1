"""Fan-out's YAML files (routing, incident policy) read into their models: errors name the file
and the fields at fault, as one kind of error per file."""

from __future__ import annotations

import difflib
import types
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

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
            (".".join(str(p) for p in err["loc"]) or "file", err["msg"] + _unknown_field_hint(model, err))
            for err in exc.errors(include_url=False, include_input=False)
        ]
        listed = "; ".join(f"{where}: {message}" for where, message in problems)
        raise error(f"{what} {path} is invalid: {listed}", problems) from None


def _unknown_field_hint(model: type[BaseModel], err: Any) -> str:
    """For a field the model has no place for: the field meant, if one is close, and the fields
    there (a typo said only "Extra inputs are not permitted")."""
    if err["type"] != "extra_forbidden" or not err["loc"]:
        return ""
    *path, name = err["loc"]
    where: Any = model
    for part in path:  # down the models, list items and mapping values the path goes through
        if isinstance(where, type) and issubclass(where, BaseModel):
            field = where.model_fields.get(str(part))
            where = field.annotation if field else None
        else:
            where = _inner(where)
        where = _inner(where, unwrap_only=True)
    if not (isinstance(where, type) and issubclass(where, BaseModel)):
        return ""
    fields = sorted(where.model_fields)
    close = difflib.get_close_matches(str(name), fields, n=1)
    meant = f"did you mean {close[0]}? " if close else ""
    return f" ({meant}fields here: {', '.join(fields)})"


def _inner(annotation: Any, *, unwrap_only: bool = False) -> Any:
    """A list's item or a mapping's value type (``unwrap_only``: only ``X | None`` to ``X``)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        models = [a for a in args if a is not type(None)]
        return _inner(models[0], unwrap_only=unwrap_only) if len(models) == 1 else annotation
    if unwrap_only or not args:
        return annotation
    return _inner(args[-1], unwrap_only=True)
