"""Loss registry: name → config model and term class."""

from __future__ import annotations

from edgekd.losses.configs import (
    CombinedConfig,
    CosineConfig,
    LossConfig,
    MseConfig,
    RelationalConfig,
    SmoothL1Config,
)
from edgekd.registry import Entry

_TERMS = "edgekd.losses.terms"

LOSSES: dict[str, Entry] = {
    "mse": Entry(MseConfig, f"{_TERMS}:Mse", "mean squared error (the SEA loss)"),
    "smooth_l1": Entry(SmoothL1Config, f"{_TERMS}:SmoothL1", "Huber-style loss, robust to outlier targets"),
    "cosine": Entry(CosineConfig, f"{_TERMS}:Cosine", "1 − cosine similarity: matches direction, ignores scale"),
    "relational": Entry(RelationalConfig, f"{_TERMS}:Relational",
                        "similarity mimicry: match the teacher's distribution of in-batch similarities"),
    "combined": Entry(CombinedConfig, f"{_TERMS}:Combined", "weighted sum of the losses above"),
}


def build_loss(config: LossConfig):
    """The loss term the section names: a callable (student, target) → loss per example."""
    return LOSSES[config.name].build(config)
