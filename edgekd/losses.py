"""Loss registry: name → config model and a function (student, target) → scalar."""

from dataclasses import dataclass
from typing import Callable, Literal

import torch
from pydantic import BaseModel

from edgekd.config import StrictModel


class MseConfig(StrictModel):
    name: Literal["mse"] = "mse"


class SmoothL1Config(StrictModel):
    name: Literal["smooth_l1"] = "smooth_l1"
    beta: float = 1.0


class CosineConfig(StrictModel):
    name: Literal["cosine"] = "cosine"


@dataclass(frozen=True)
class LossEntry:
    config: type[BaseModel]
    build: Callable[[BaseModel], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
    description: str


LOSSES: dict[str, LossEntry] = {
    "mse": LossEntry(MseConfig, lambda c: torch.nn.functional.mse_loss, "mean squared error (the SEA loss)"),
    "smooth_l1": LossEntry(
        SmoothL1Config,
        lambda c: lambda s, t: torch.nn.functional.smooth_l1_loss(s, t, beta=c.beta),
        "Huber-style loss, robust to outlier targets",
    ),
    "cosine": LossEntry(
        CosineConfig,
        lambda c: lambda s, t: (1 - torch.nn.functional.cosine_similarity(s, t, dim=1)).mean(),
        "1 − cosine similarity: matches direction, ignores scale",
    ),
}


def build_loss(config: BaseModel):
    return LOSSES[config.name].build(config)
