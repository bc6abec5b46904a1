"""Reading what another version of ours wrote (``shared/compat.py``): unknown fields ignored on
reading, refused on building; a newer schema version named, never misread."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from shared.compat import BuiltStrictly, Versioned, known_fields, newer_schema, unknown_fields


class Record(BuiltStrictly):
    name: str
    count: int = 0


class Holder(BaseModel):
    records: list[Record]


class Message(Versioned):
    text: str


class Aliased(BaseModel):
    starts_at: str = Field(alias="startsAt")


def test_reading_ignores_unknown_fields_even_nested() -> None:
    assert Record.model_validate({"name": "a", "added_later": 1}) == Record(name="a")
    assert Holder.model_validate({"records": [{"name": "a", "added_later": 1}]}).records == [Record(name="a")]


def test_building_refuses_an_unknown_keyword_naming_it() -> None:
    with pytest.raises(ValidationError, match="misspelt"):
        Record(name="a", misspelt=1)  # type: ignore[call-arg]


def test_a_newer_schema_version_is_named_and_an_older_or_none_is_read() -> None:
    assert newer_schema(Message, {"schema_version": 1, "text": "x"}) is None
    assert newer_schema(Message, {"text": "x"}) is None
    assert newer_schema(Message, {"schema_version": True}) is None
    assert newer_schema(Record, {"schema_version": 9}) is None  # not versioned
    reason = newer_schema(Message, {"schema_version": 3})
    assert reason is not None
    assert "schema_version 3 is newer" in reason
    assert "up to 1" in reason


def test_known_fields_count_names_and_aliases() -> None:
    data = {"starts_at": 1, "startsAt": 2, "other": 3}
    assert unknown_fields(Aliased, data) == ["other"]
    assert known_fields(Aliased, data) == {"starts_at": 1, "startsAt": 2}
