"""Similarity mimicry over a memory bank (CompRess, Abbasi Koohpayegani et al. 2020): the student's softmax of
similarities to a queue of its own past embeddings matches the teacher's to the same examples (CompRess-2q)."""

from __future__ import annotations

import torch
from pydantic import Field

from edgekd.distillation import DistillationModel, Method
from edgekd.losses.terms import cosine_logits, soft_kl_rows
from edgekd.schema import StrictModel
from edgekd.supervision import Supervision


class RelationalBankConfig(StrictModel):
    size: int = Field(256, ge=2, description="examples held in the memory bank")
    temperature: float = Field(0.1, gt=0)
    weight: float = Field(1.0, ge=0)


class RelationalBank(Method):
    name = "relational_bank"
    config_model = RelationalBankConfig
    order = 80
    needs_teacher = True

    def attach(self, model: DistillationModel, supervision: Supervision) -> None:
        # buffers, so the queue is checkpointed with the weights (under torchrun each process keeps its own)
        size, dim = self.config.size, model.embedding_dim
        model.register_buffer("bank_student", torch.zeros(size, dim))
        model.register_buffer("bank_teacher", torch.zeros(size, dim))
        model.register_buffer("bank_filled", torch.zeros((), dtype=torch.long))

    def loss_terms(self, model, out, batch, epoch, trust):
        if "target" not in batch:
            return []
        return [self.config.weight * self._bank_loss(model, out["embedding"], batch["target"])]

    def _bank_loss(self, model: DistillationModel, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Similarities of each example to the student's queue of past embeddings, against the teacher's to the
        same past examples; then the batch joins the queue (oldest out)."""
        config = self.config
        filled = int(model.bank_filled)
        loss = embedding.sum() * 0.0
        if filled >= 2:
            student_logits = cosine_logits(embedding, model.bank_student[:filled], config.temperature)
            teacher_logits = cosine_logits(target, model.bank_teacher[:filled], config.temperature)
            loss = soft_kl_rows(student_logits, teacher_logits).mean()
        with torch.no_grad():
            model.bank_student.copy_(torch.cat([embedding.detach(), model.bank_student])[: config.size])
            model.bank_teacher.copy_(torch.cat([target, model.bank_teacher])[: config.size])
            model.bank_filled.fill_(min(config.size, filled + len(embedding)))
        return loss


METHOD = RelationalBank
