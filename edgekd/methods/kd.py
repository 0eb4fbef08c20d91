"""Vanilla knowledge distillation (Hinton et al. 2015): a classification head on the student's embedding learns
α·CE(hard labels) + (1−α)·T²·KL(teacher soft targets at T ‖ student at T). The teacher's soft targets come from a
logistic head on the raw teacher embedding, out of fold on the training windows."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from torch import nn

from edgekd.distillation import DistillationModel, Method
from edgekd.losses.terms import soft_kl_rows
from edgekd.runtime import seeded
from edgekd.schema import StrictModel
from edgekd.supervision import Supervision


class KdConfig(StrictModel):
    temperature: float = Field(4.0, gt=0, description="softening temperature T")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the hard labels; 1−α goes to the soft targets")
    weight: float = Field(1.0, ge=0, description="weight of the head's loss beside the embedding loss")
    teacher_head_folds: int = Field(5, ge=2, description="out-of-fold teacher head on training windows: a head "
                                    "scored on its own training rows would agree with every label")


class KnowledgeDistillation(Method):
    name = "kd"
    config_model = KdConfig
    order = 10
    needs_labels = True

    def prepare(self, supervision: Supervision) -> None:
        supervision.rows["label"] = supervision.labels.astype(np.int64)
        if supervision.teacher is not None:
            supervision.rows["soft"] = supervision.teacher_head(self.config.teacher_head_folds)

    def attach(self, model: DistillationModel, supervision: Supervision) -> None:
        with seeded(self.context.seed + 2):
            model.head = nn.Linear(model.embedding_dim, supervision.num_classes)

    def teacher_rows(self, model, embedding, logits, batch):
        if "soft" not in batch:  # teacher-free without soft labels: the head learns the labels alone
            return torch.zeros(len(embedding), device=embedding.device)
        return soft_kl_rows(logits, batch["soft"], self.config.temperature)

    def gap_share(self, rows: torch.Tensor) -> torch.Tensor:
        return self.config.weight * rows

    def example_rows(self, model, logits, batch, teacher_rows, trust):
        hard = nn.functional.cross_entropy(logits, batch["label"], reduction="none")
        soft_share = (1 - self.config.alpha) * trust
        return self.config.weight * ((1 - soft_share) * hard + soft_share * teacher_rows)


METHOD = KnowledgeDistillation
