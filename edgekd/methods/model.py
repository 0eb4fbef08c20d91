"""What the trainer optimises: the student plus what the recipe's methods add (a head, a peer, a memory bank, a
knowledge base, an attention teacher), and the per-example objective that combines them.

Every term is computed per example, so that selection (teacher reliability) and censoring (teacher-student gap)
can scale the teacher's supervision of each example before the mean: `trust` 1 is plain supervision, 0 leaves an
example to its hard label (with a head) or out of the loss.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.losses import LossFn, cosine_logits, soft_kl_rows
from edgekd.methods.attention import amad_loss
from edgekd.methods.config import MethodsConfig
from edgekd.methods.retrieval import RetrievalAugmented


class DistillationModel(nn.Module):
    def __init__(self, student: nn.Module, embedding_loss: LossFn, methods: MethodsConfig,
                 num_classes: int | None = None, peer: nn.Module | None = None,
                 knowledge_base: torch.Tensor | None = None, attention_teacher: nn.Module | None = None):
        super().__init__()
        self.methods, self.embedding_loss = methods, embedding_loss
        if methods.retrieval is not None:
            retrieval = methods.retrieval
            student = RetrievalAugmented(student, knowledge_base, retrieval.temperature,
                                         retrieval.mix if retrieval.at_inference else 0.0)
        self.student = student
        dim = student.embedding_dim
        self.head = nn.Linear(dim, num_classes) if methods.kd is not None else None
        self.peer = peer
        self.peer_head = nn.Linear(dim, num_classes) if peer is not None and self.head is not None else None
        if methods.relational_bank is not None:
            size = methods.relational_bank.size
            self.register_buffer("bank_student", torch.zeros(size, dim))
            self.register_buffer("bank_teacher", torch.zeros(size, dim))
            self.register_buffer("bank_filled", torch.zeros((), dtype=torch.long))
        self.attention_teacher = attention_teacher
        if attention_teacher is not None:
            attention_teacher.requires_grad_(False)

    def deployable(self) -> nn.Module:
        """The model to save and export: the student, with its knowledge base when it is used at inference."""
        retrieval = self.methods.retrieval
        if retrieval is not None and not retrieval.at_inference:
            return self.student.student
        return self.student

    def train(self, mode: bool = True) -> "DistillationModel":
        super().train(mode)
        if self.attention_teacher is not None:  # a frozen teacher keeps its running statistics
            self.attention_teacher.eval()
        return self

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict = {}
        if self.methods.retrieval is not None:
            out["embedding"], out["retrieval_logits"] = self.student.retrieve(self.student.student(audio))
        else:
            out["embedding"] = self.student(audio)
        if self.head is not None:
            out["logits"] = self.head(out["embedding"])
        if self.peer is not None:
            out["peer_embedding"] = self.peer(audio)
            if self.peer_head is not None:
                out["peer_logits"] = self.peer_head(out["peer_embedding"])
        if self.attention_teacher is not None:
            out["attention"] = _attention_maps(self.student)
            with torch.no_grad():
                self.attention_teacher(audio)
            out["teacher_attention"] = _attention_maps(self.attention_teacher)
        return out

    def _teacher_rows(self, embedding, logits, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example (embedding loss to the teacher, soft-target KL of the head); zeros where absent."""
        zeros = torch.zeros(len(embedding), device=embedding.device)
        embedded = self.embedding_loss(embedding, batch["target"]) if "target" in batch else zeros
        kd = self.methods.kd
        soft = soft_kl_rows(logits, batch["soft"], kd.temperature) if kd is not None and "soft" in batch else zeros
        return embedded, soft

    def _supervised_rows(self, embedding, logits, batch, epoch: int, trust: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example loss of one student (or peer) against the teacher and the labels, and the teacher trust it
        used: given (the peer takes the student's), or from the batch and, when censoring, this student's gap."""
        embedded, soft = self._teacher_rows(embedding, logits, batch)
        if trust is None:
            trust = self._trust(embedded.detach(), soft.detach(), batch, epoch)
        rows = trust * embedded
        kd = self.methods.kd
        if kd is not None:
            hard = nn.functional.cross_entropy(logits, batch["label"], reduction="none")
            soft_share = (1 - kd.alpha) * trust
            rows = rows + kd.weight * ((1 - soft_share) * hard + soft_share * soft)
        return rows, trust

    def _trust(self, embedded: torch.Tensor, soft: torch.Tensor, batch, epoch: int) -> torch.Tensor:
        trust = batch.get("trust", torch.ones_like(embedded))
        censor = self.methods.censor
        if censor is None or epoch < censor.start_epoch:
            return trust
        # the teacher-student gap (detached terms) decides the weights; it is not itself optimised
        gap = embedded + (self.methods.kd.weight * soft if self.methods.kd is not None else 0)
        censored = gap > torch.quantile(gap, censor.quantile)
        return torch.where(censored, trust * censor.weight, trust)

    def loss(self, out: dict, batch: dict, epoch: int) -> torch.Tensor:
        methods = self.methods
        rows, trust = self._supervised_rows(out["embedding"], out.get("logits"), batch, epoch)
        total = rows.mean()
        if methods.mutual is not None:
            mutual = methods.mutual
            total = total + self._supervised_rows(out["peer_embedding"], out.get("peer_logits"), batch, epoch,
                                                  trust)[0].mean()
            total = total + mutual.weight * (
                ((out["embedding"] - out["peer_embedding"].detach()) ** 2).mean()
                + ((out["peer_embedding"] - out["embedding"].detach()) ** 2).mean())
            if "logits" in out:
                total = total + mutual.weight * (
                    soft_kl_rows(out["logits"], out["peer_logits"].detach(), mutual.temperature).mean()
                    + soft_kl_rows(out["peer_logits"], out["logits"].detach(), mutual.temperature).mean())
        if methods.relational_bank is not None and "target" in batch:
            total = total + methods.relational_bank.weight * self._bank_loss(out["embedding"], batch["target"])
        if methods.retrieval is not None and "target" in batch:
            teacher_logits = self.student.retrieval_logits(batch["target"])  # the teacher's query, same base
            total = total + methods.retrieval.weight * soft_kl_rows(out["retrieval_logits"], teacher_logits).mean()
        if methods.attention is not None:
            total = total + methods.attention.weight * amad_loss(out["attention"], out["teacher_attention"],
                                                                  methods.attention.temperature)
        return total

    def _bank_loss(self, embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """CompRess-2q: similarities of each example to the student's queue of its past embeddings, against the
        teacher's to the same past examples; then the batch joins the queue (oldest out)."""
        config = self.methods.relational_bank
        filled = int(self.bank_filled)
        loss = embedding.sum() * 0.0
        if filled >= 2:
            student_logits = cosine_logits(embedding, self.bank_student[:filled], config.temperature)
            teacher_logits = cosine_logits(target, self.bank_teacher[:filled], config.temperature)
            loss = soft_kl_rows(student_logits, teacher_logits).mean()
        with torch.no_grad():
            incoming = len(embedding)
            self.bank_student.copy_(torch.cat([embedding.detach(), self.bank_student])[: config.size])
            self.bank_teacher.copy_(torch.cat([target, self.bank_teacher])[: config.size])
            self.bank_filled.fill_(min(config.size, filled + incoming))
        return loss

    @torch.no_grad()
    def validation(self, out: dict, batch: dict) -> tuple[float, float | None, float | None]:
        """(loss, cosine to the teacher, head accuracy) on held-out windows; the loss is the plain objective, the
        same for every method, so the plateau schedule compares like with like."""
        cosine = accuracy = None
        if "logits" in out:
            accuracy = float((out["logits"].argmax(1) == batch["label"]).float().mean())
        if "target" in batch:
            loss = float(self.embedding_loss(out["embedding"], batch["target"]).mean())
            cosine = float(nn.functional.cosine_similarity(out["embedding"], batch["target"], dim=1).mean())
        else:
            loss = float(nn.functional.cross_entropy(out["logits"], batch["label"]))
        return loss, cosine, accuracy


def _attention_maps(student: nn.Module) -> list[torch.Tensor]:
    body = student.student.body if isinstance(student, RetrievalAugmented) else student.body
    if not hasattr(body, "attention_maps"):
        raise TypeError("attention distillation needs transformer students and teachers")
    return body.attention_maps()
