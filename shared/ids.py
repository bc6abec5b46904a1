"""Firestore document ids taken from requests (path variables, cursors, filters), checked before
any Firestore call: a value Firestore refuses as an id would otherwise surface as a 500.

Firestore's rules (https://firebase.google.com/docs/firestore/quotas#collections_documents_and_fields):
an id is at most 1,500 bytes of UTF-8, contains no ``/``, is not ``.`` or ``..``, and does not
match ``__.*__`` (reserved). We are stricter still: no control characters, and a length limit per
kind of id (``max_length``), so no id taken from a request reaches a query's 1,500-byte limit.

``document_id(value)`` raises ``ValueError`` saying what is wrong and what is allowed;
``DocumentId(...)`` is the same rule as a pydantic type (for query, path and body models), with
an optional shape ``pattern`` that the OpenAPI schema shows.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

FIRESTORE_MAX_ID_BYTES = 1500
DEFAULT_MAX_LENGTH = 256
_RESERVED = re.compile(r"__.*__", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The part of the rule a JSON Schema pattern can say: no '/', no control characters. (A request
# path with a control character never reaches a handler: functions-framework's own routing answers
# it 404 in HTML, so the contract must not call such ids valid.)
SAFE_PATTERN = r"^[^/\u0000-\u001f\u007f]+$"
RULES = (
    "a Firestore document id: 1 to {most} characters, no '/', no control characters, "
    "not '.' or '..', not of the form __name__"
)


def document_id(value: str, *, max_length: int = DEFAULT_MAX_LENGTH, what: str = "id") -> str:
    """``value`` if Firestore takes it as a document id (and it is at most ``max_length``
    characters), else ``ValueError`` naming the rule it breaks."""
    rules = RULES.format(most=max_length)
    if not value:
        raise ValueError(f"{what} is empty; {rules}")
    if len(value) > max_length:
        raise ValueError(f"{what} is {len(value)} characters long; {rules}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid UTF-8 text; {rules}") from None
    if size > FIRESTORE_MAX_ID_BYTES:
        raise ValueError(f"{what} is {size} bytes of UTF-8; {rules}")
    if "/" in value:
        raise ValueError(f"{what} contains '/'; {rules}")
    if value in (".", ".."):
        raise ValueError(f"{what} is {value!r}; {rules}")
    if _RESERVED.fullmatch(value):
        raise ValueError(f"{what} {value[:64]!r} is reserved by Firestore (__name__ form); {rules}")
    if _CONTROL.search(value):
        raise ValueError(f"{what} contains a control character; {rules}")
    return value


def is_document_id(value: str, *, max_length: int = DEFAULT_MAX_LENGTH) -> bool:
    try:
        document_id(value, max_length=max_length)
    except ValueError:
        return False
    return True


def DocumentId(
    *, max_length: int = DEFAULT_MAX_LENGTH, pattern: str | None = None, description: str | None = None
) -> Any:
    """A str type for models: ``document_id``'s rule, and ``pattern`` (a shape the id must also
    have, e.g. a UUID; shown in the JSON Schema) when given."""
    text = description or RULES.format(most=max_length)
    field = Field(min_length=1, max_length=max_length, pattern=pattern or SAFE_PATTERN, description=text)
    return Annotated[str, field, AfterValidator(lambda v: document_id(v, max_length=max_length))]
