"""The `loss:` section: how the student's embedding is scored against the reduced teacher embedding."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field

from edgekd.schema import StrictModel


class MseConfig(StrictModel):
    name: Literal["mse"] = "mse"


class SmoothL1Config(StrictModel):
    name: Literal["smooth_l1"] = "smooth_l1"
    beta: float = Field(1.0, gt=0)


class CosineConfig(StrictModel):
    name: Literal["cosine"] = "cosine"


class RelationalConfig(StrictModel):
    name: Literal["relational"] = "relational"
    temperature: float = Field(0.1, gt=0, description="softmax temperature over cosine similarities")


class TermConfig(StrictModel):
    name: Literal["mse", "smooth_l1", "cosine", "relational"]
    weight: float = Field(1.0, ge=0)
    beta: float = Field(1.0, gt=0, description="smooth_l1 only")
    temperature: float = Field(0.1, gt=0, description="relational only")


class CombinedConfig(StrictModel):
    name: Literal["combined"] = "combined"
    terms: list[TermConfig] = Field(min_length=1, description="weighted sum of losses")


LossConfig = Union[MseConfig, SmoothL1Config, CosineConfig, RelationalConfig, CombinedConfig]
