"""Every API parameter that names a day takes YYYY-MM-DD only: pydantic alone would also take a
midnight with any offset (dropping it, so ``2026-11-01T00:00:00+09:00`` meant 1 November where
the API counts days in UTC or Pacific time) or a Unix time."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import BaseModel, ValidationError

from functions.cost.main import CostQuery, ForecastQuery, RunBody
from functions.fanout.api_models import DigestRequest
from functions.health.api_models import RunQuery

DAY_FIELDS: list[tuple[type[BaseModel], str]] = [
    (CostQuery, "date"),
    (ForecastQuery, "date"),
    (RunBody, "date"),
    (DigestRequest, "date"),
    (RunQuery, "as_of"),
]


@pytest.mark.parametrize(("model", "field"), DAY_FIELDS)
@pytest.mark.parametrize(
    "value",
    ["2026-11-01T00:00:00+09:00", "2026-11-01T00:00:00Z", "2026-11-01T00:00", 1793491200, "1793491200"],
)
def test_a_day_parameter_refuses_a_time(model: type[BaseModel], field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({field: value})
    assert "YYYY-MM-DD" in str(caught.value)


@pytest.mark.parametrize(("model", "field"), DAY_FIELDS)
def test_a_day_parameter_takes_a_date_including_a_leap_day(model: type[BaseModel], field: str) -> None:
    parsed = model.model_validate({field: "2028-02-29"})
    assert date(2028, 2, 29) in parsed.model_dump().values()
    with pytest.raises(ValidationError):
        model.model_validate({field: "2027-02-29"})
