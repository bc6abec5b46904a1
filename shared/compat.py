"""Reading what another version of ours wrote: Firestore documents and internal Pub/Sub messages.

A deploy is never one moment: old and new instances of a function serve side by side for minutes,
a publisher may be deployed before its consumers (or after), documents written by the previous
version stay in Firestore, and a dead letter stored months ago is re-driven by today's code. So,
as Alertmanager and CloudEvents readers do:

- a reader ignores fields it does not know (a newer writer added them), and a document that is
  read, changed and written back keeps them (``extra="allow"``), or an older instance would erase
  what a newer one wrote;
- a field a version adds has a default, so documents and messages written before it still load;
- a message whose ``schema_version`` is newer than its consumer reads (a field changed meaning) is
  never guessed at: it goes to the dead-letter store with the reason, recoverable, so a re-drive
  after the consumer is deployed delivers it (``shared.events.decode_pubsub``).

Strictness stays where a person or a file we ship writes: HTTP bodies (a 422 naming the unknown
fields) and configuration files.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails

SCHEMA_VERSION_FIELD = "schema_version"


@cache
def known_names(model: type[BaseModel]) -> frozenset[str]:
    """The keys ``model`` reads: its fields' names and aliases (once per model: every message our
    code builds asks)."""
    names = set(model.model_fields)
    for info in model.model_fields.values():
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                names.add(alias)
    return frozenset(names)


def unknown_fields(model: type[BaseModel], data: Mapping[str, Any]) -> list[str]:
    """The keys of ``data`` that ``model`` does not know, sorted."""
    return sorted(set(map(str, data)) - known_names(model))


def known_fields(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without the keys ``model`` does not know."""
    known = known_names(model)
    return {key: value for key, value in data.items() if key in known}


class BuiltStrictly(BaseModel):
    """A message or record our own code builds and other versions of it read.

    Read tolerantly: validation (``model_validate``, a delivered message, a stored document, the
    model nested in another) ignores fields this version does not know. Built strictly: the
    constructor, which only our code calls, refuses a keyword that is no field, so a producer's
    misspelt field is an error rather than a field silently never sent.
    """

    model_config = ConfigDict(extra="ignore")

    def __init__(self, /, **data: Any) -> None:
        unknown = unknown_fields(type(self), data)
        if unknown:
            errors = [
                InitErrorDetails(type="extra_forbidden", loc=(name,), input=data[name]) for name in unknown
            ]
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        super().__init__(**data)

    # Marks this as the base constructor, as pydantic's RootModel does its own: validation then
    # never calls it (a model with a constructor of its own has it called by model_validate too),
    # so only building is strict.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class Versioned(BuiltStrictly):
    """A message with a ``schema_version``: ``SCHEMA_VERSION`` is the one this code writes and the
    newest it can read. Adding a field (with a default) keeps the version; a field changing
    meaning raises it, and a consumer of an older version refuses such a message instead of
    misreading it (``newer_schema``)."""

    SCHEMA_VERSION: ClassVar[int] = 1
    # A subclass raising SCHEMA_VERSION raises this default with it.
    schema_version: int = Field(default=1, ge=1)


def newer_schema(model: type[BaseModel], raw: Any) -> str | None:
    """Why a message ``model``'s consumer cannot interpret it because a newer version wrote it, or
    None (not versioned, no version, or one this code reads)."""
    supported = getattr(model, "SCHEMA_VERSION", None)
    if not isinstance(supported, int) or not isinstance(raw, Mapping):
        return None
    version = raw.get(SCHEMA_VERSION_FIELD)
    if isinstance(version, bool) or not isinstance(version, int) or version <= supported:
        return None
    return (
        f"{SCHEMA_VERSION_FIELD} {version} is newer than this consumer of {model.__name__} reads "
        f"(up to {supported}); re-drive it once the consumer's newer version is deployed"
    )
