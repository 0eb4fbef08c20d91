"""Retrieval-augmented student: a knowledge base of teacher embeddings the student queries by cosine similarity."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


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


class RetrievalAugmented(nn.Module):
    """The student's embedding e queries the base; its output is (1−mix)·e + mix·Σ softmax(cos(e, entry)/T)·entry.
    The base is stored once, as unit-length entries laid out (dim, entries) plus their norms: every product reads
    that one constant untransposed, so the ONNX exporter has no transposed or normalised copy to fold into a second
    initializer. Saved with the weights and exported as initializers named knowledge_base_*, which `edgekd profile`
    counts apart."""

    def __init__(self, student: nn.Module, entries: torch.Tensor, temperature: float, mix: float):
        super().__init__()
        self.student = student
        self.embedding_dim = student.embedding_dim
        self.temperature, self.mix = temperature, mix
        norms = entries.norm(dim=1)
        self.register_buffer("knowledge_base_keys", (entries / norms.clamp(min=1e-12)[:, None]).T.contiguous())
        self.register_buffer("knowledge_base_norms", norms)

    @property
    def frontend(self) -> nn.Module:
        return self.student.frontend

    def retrieval_logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(embedding, dim=-1) @ self.knowledge_base_keys / self.temperature

    def retrieve(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(augmented output, retrieval logits): the logits once, for the output and for training's KL."""
        logits = self.retrieval_logits(embedding)
        weights = torch.softmax(logits, -1) * self.knowledge_base_norms
        retrieved = (self.knowledge_base_keys @ weights.T).T  # Σ weight·norm·unit entry
        return (1 - self.mix) * embedding + self.mix * retrieved, logits

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.retrieve(self.student(audio))[0]

    def embed_features(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.retrieve(self.student.embed_features(logmel))[0]
