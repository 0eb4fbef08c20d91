"""Loss terms, one class each (torchdistill's layout): (student output, reduced teacher target) → one loss per
example (batch,), so that methods can weight, censor or select examples before the mean; `Combined` sums terms
with weights."""

from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional

from edgekd.losses.configs import (
    CombinedConfig,
    RelationalConfig,
    SmoothL1Config,
    TermConfig,
)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def soft_kl_rows(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T²·KL(softmax(teacher/T) ‖ softmax(student/T)) per row: the soft-target term of KD, and the way every
    distribution (class predictions, similarities, attention) is matched here. T² keeps gradients comparable
    across temperatures (Hinton et al. 2015)."""
    teacher = torch.log_softmax(teacher_logits / temperature, -1)
    student = torch.log_softmax(student_logits / temperature, -1)
    return temperature**2 * (teacher.exp() * (teacher - student)).sum(-1)


def cosine_logits(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    return functional.normalize(queries, dim=-1) @ functional.normalize(keys, dim=-1).T / temperature


class Mse:
    """Mean squared error (the SEA loss)."""

    def __init__(self, config=None):
        pass

    def __call__(self, student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((student - target) ** 2).mean(1)


class SmoothL1:
    """Huber-style loss, robust to outlier targets."""

    def __init__(self, config: SmoothL1Config):
        self.beta = config.beta

    def __call__(self, student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.smooth_l1_loss(student, target, beta=self.beta, reduction="none").mean(1)


class Cosine:
    """1 − cosine similarity: matches direction, ignores scale."""

    def __init__(self, config=None):
        pass

    def __call__(self, student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1 - functional.cosine_similarity(student, target, dim=1)


class Relational:
    """Similarity mimicry: the student's distribution of similarities between the examples of a batch matches the
    teacher's — KL(teacher ‖ student) of row-wise softmaxes over cosine similarities, self-similarity left out."""

    def __init__(self, config: RelationalConfig):
        self.temperature = config.temperature

    def __call__(self, student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if len(student) < 2:
            return student.sum(1) * 0.0
        off_diagonal = ~torch.eye(len(student), dtype=torch.bool, device=student.device)
        s_logits = cosine_logits(student, student, self.temperature)[off_diagonal].view(len(student), -1)
        t_logits = cosine_logits(target, target, self.temperature)[off_diagonal].view(len(student), -1)
        return soft_kl_rows(s_logits, t_logits)


def _term(config: TermConfig) -> LossFn:
    if config.name == "smooth_l1":
        return SmoothL1(SmoothL1Config(beta=config.beta))
    if config.name == "relational":
        return Relational(RelationalConfig(temperature=config.temperature))
    return {"mse": Mse, "cosine": Cosine}[config.name]()


class Combined:
    """Weighted sum of the terms above."""

    def __init__(self, config: CombinedConfig):
        self.parts = [(term.weight, _term(term)) for term in config.terms]

    def __call__(self, student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(weight * term(student, target) for weight, term in self.parts)
