"""Scaffolding by censoring (Kag et al. 2023): examples whose teacher-student gap is in the top of their batch are
too hard for the student's capacity; their teacher terms are down-weighted, smoothing the objective."""

from __future__ import annotations

import torch
from pydantic import Field

from edgekd.distillation import DistillationModel, Method
from edgekd.schema import StrictModel


class CensorConfig(StrictModel):
    quantile: float = Field(0.8, gt=0, lt=1, description="gaps above this in-batch quantile are censored")
    weight: float = Field(0.0, ge=0, lt=1, description="weight left on a censored example (0: dropped)")
    start_epoch: int = Field(5, ge=0, description="epochs of full supervision before censoring starts")


class Censor(Method):
    name = "censor"
    config_model = CensorConfig
    order = 60
    needs_teacher = True

    def adjust_trust(self, model: DistillationModel, trust: torch.Tensor, gap: torch.Tensor, epoch: int
                     ) -> torch.Tensor:
        if epoch < self.config.start_epoch:
            return trust
        censored = gap > torch.quantile(gap, self.config.quantile)
        return torch.where(censored, trust * self.config.weight, trust)


METHOD = Censor
