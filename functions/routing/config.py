"""The routing function's versioned weight configuration (YAML): weight sets and the experiment."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HERE = Path(__file__).resolve().parent
DEFAULT_WEIGHTS_FILE = HERE / "weights.yaml"


class Weights(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tone: float = Field(ge=0, le=1)
    pace: float = Field(ge=0, le=1)
    intent: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Weights:
        if sum(self.exact()) != 1:
            raise ValueError(f"weights must add up to 1, got {self.tone} + {self.pace} + {self.intent}")
        return self

    def exact(self) -> tuple[Fraction, Fraction, Fraction]:
        # Decimal text → exact fractions, so ties are decided exactly (0.5*0.8 + 0.3*1.0 == 0.7).
        return Fraction(str(self.tone)), Fraction(str(self.pace)), Fraction(str(self.intent))


class WeightSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    weights: Weights


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    arms: list[str] = Field(min_length=2, max_length=250)

    @field_validator("arms")
    @classmethod
    def _unique(cls, arms: list[str]) -> list[str]:
        if len(set(arms)) != len(arms):
            raise ValueError("arms must be unique")
        return arms


class WeightConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1, lt=65536)
    default: str
    weight_sets: dict[str, WeightSet] = Field(min_length=1)
    experiment: Experiment | None = None

    @model_validator(mode="after")
    def _names_resolve(self) -> WeightConfig:
        if self.default not in self.weight_sets:
            raise ValueError(f"default weight set {self.default!r} is not defined")
        for arm in self.experiment.arms if self.experiment else []:
            if arm not in self.weight_sets:
                raise ValueError(f"experiment arm {arm!r} is not a defined weight set")
        return self


def load_weight_config(path: Path) -> WeightConfig:
    return WeightConfig.model_validate(yaml.safe_load(path.read_text()))
