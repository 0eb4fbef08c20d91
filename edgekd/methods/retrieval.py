"""Retrieval-augmented KD: a knowledge base of teacher embeddings (k-means representatives of the training set);
the student learns to retrieve from it as the teacher would and, with `at_inference`, its output is mixed with what
it retrieves — the base then ships inside the model and counts in its storage."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from torch import nn

from edgekd.distillation import DistillationModel, Method
from edgekd.losses.terms import soft_kl_rows
from edgekd.schema import StrictModel
from edgekd.supervision import Supervision


class RetrievalConfig(StrictModel):
    size: int = Field(64, ge=2, description="knowledge-base entries")
    temperature: float = Field(0.1, gt=0, description="softmax temperature over cosine similarities to the base")
    weight: float = Field(1.0, ge=0, description="weight of matching the teacher's retrieval distribution")
    at_inference: bool = Field(True, description="deploy the base: output (1−mix)·student + mix·retrieved")
    mix: float = Field(0.5, ge=0, le=1)


def choose_knowledge_base(targets: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Row indices of `size` representatives of the training targets: the row nearest each k-means centre, so
    every entry is a real teacher embedding and the base covers the data's modes."""
    from sklearn.cluster import KMeans

    size = min(size, len(targets))
    centres = KMeans(size, n_init=1, random_state=seed).fit(targets).cluster_centers_
    distances = ((targets[None] - centres[:, None]) ** 2).sum(-1)
    chosen: list[int] = []
    for row in distances:  # nearest row not already taken, so entries are distinct
        for index in np.argsort(row):
            if index not in chosen:
                chosen.append(int(index))
                break
    return np.asarray(chosen)


class KnowledgeBase(nn.Module):
    """An embedding e queries the base: (1−mix)·e + mix·Σ softmax(cos(e, entry)/T)·entry. The base is stored once,
    as unit-length entries laid out (dim, entries) plus their norms: every product reads that one constant
    untransposed, so the ONNX exporter has no transposed or normalised copy to fold into a second initializer.
    Exported as initializers named knowledge_base.*, which `edgekd profile` counts apart."""

    def __init__(self, entries: torch.Tensor, temperature: float, mix: float):
        super().__init__()
        self.temperature, self.mix = temperature, mix
        norms = entries.norm(dim=1)
        self.register_buffer("keys", (entries / norms.clamp(min=1e-12)[:, None]).T.contiguous())
        self.register_buffer("norms", norms)

    def retrieval_logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(embedding, dim=-1) @ self.keys / self.temperature

    def retrieve(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(augmented output, retrieval logits): the logits once, for the output and for training's KL."""
        logits = self.retrieval_logits(embedding)
        weights = torch.softmax(logits, -1) * self.norms
        retrieved = (self.keys @ weights.T).T  # Σ weight·norm·unit entry
        return (1 - self.mix) * embedding + self.mix * retrieved, logits


class RetrievalAugmented(nn.Module):
    """The deployed student: its embedding mixed with what it retrieves from the knowledge base it carries."""

    def __init__(self, student: nn.Module, knowledge_base: KnowledgeBase):
        super().__init__()
        self.student, self.knowledge_base = student, knowledge_base
        self.embedding_dim = student.embedding_dim

    @property
    def frontend(self) -> nn.Module:
        return self.student.frontend

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.knowledge_base.retrieve(self.student(audio))[0]

    def embed_features(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.knowledge_base.retrieve(self.student.embed_features(logmel))[0]


class Retrieval(Method):
    name = "retrieval"
    config_model = RetrievalConfig
    order = 90
    needs_teacher = True

    def _base(self, entries: torch.Tensor) -> KnowledgeBase:
        mix = self.config.mix if self.config.at_inference else 0.0
        return KnowledgeBase(entries, self.config.temperature, mix)

    def attach(self, model: DistillationModel, supervision: Supervision) -> None:
        targets = supervision.rows["target"][supervision.train]
        chosen = choose_knowledge_base(targets, self.config.size, self.context.seed)
        model.knowledge_base = self._base(torch.from_numpy(targets[chosen]))

    def outputs(self, model: DistillationModel, audio: torch.Tensor, out: dict) -> None:
        out["embedding"], out["retrieval_logits"] = model.knowledge_base.retrieve(out["embedding"])

    def loss_terms(self, model, out, batch, epoch, trust):
        if "target" not in batch:
            return []
        teacher_logits = model.knowledge_base.retrieval_logits(batch["target"])  # the teacher's query, same base
        return [self.config.weight * soft_kl_rows(out["retrieval_logits"], teacher_logits).mean()]

    def deployable(self, model: DistillationModel | None, student: nn.Module, saved: dict | None = None
                   ) -> nn.Module:
        if not self.config.at_inference:
            return student
        if model is not None:
            return RetrievalAugmented(student, model.knowledge_base)
        shape = saved["knowledge_base.keys"].shape  # (dim, entries); the values are loaded next
        return RetrievalAugmented(student, self._base(torch.ones(shape[1], shape[0])))


METHOD = Retrieval
