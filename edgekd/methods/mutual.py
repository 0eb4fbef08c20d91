"""Deep mutual learning (Zhang et al. 2018): a peer student of the same family, started from another seed, trains
alongside; each also mimics the other's (detached) embedding and, with a head, its predictions."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from edgekd.distillation import DistillationModel, Method
from edgekd.losses.terms import soft_kl_rows
from edgekd.runtime import seeded
from edgekd.schema import StrictModel
from edgekd.students import build_student
from edgekd.supervision import Supervision


class MutualConfig(StrictModel):
    weight: float = Field(1.0, ge=0)
    temperature: float = Field(1.0, gt=0, description="softening of the peers' predictions (heads only)")


class MutualLearning(Method):
    name = "mutual"
    config_model = MutualConfig
    order = 70

    def attach(self, model: DistillationModel, supervision: Supervision) -> None:
        with seeded(self.context.seed + 1):
            model.peer = build_student(self.context.student, model.embedding_dim)
        model.peer_head = None
        if model.head is not None:  # the peer learns the same head task
            with seeded(self.context.seed + 3):
                model.peer_head = nn.Linear(model.embedding_dim, model.head.out_features)

    def outputs(self, model: DistillationModel, audio: torch.Tensor, out: dict) -> None:
        out["peer_embedding"] = model.peer(audio)
        if model.peer_head is not None:
            out["peer_logits"] = model.peer_head(out["peer_embedding"])

    def loss_terms(self, model, out, batch, epoch, trust):
        weight, student, peer = self.config.weight, out["embedding"], out["peer_embedding"]
        terms = [model.supervised_rows(peer, out.get("peer_logits"), batch, epoch, trust)[0].mean(),
                 weight * (((student - peer.detach()) ** 2).mean() + ((peer - student.detach()) ** 2).mean())]
        if "logits" in out:
            temperature = self.config.temperature
            terms.append(weight * (soft_kl_rows(out["logits"], out["peer_logits"].detach(), temperature).mean()
                                   + soft_kl_rows(out["peer_logits"], out["logits"].detach(), temperature).mean()))
        return terms


METHOD = MutualLearning
