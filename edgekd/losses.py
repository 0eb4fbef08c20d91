"""Loss registry: name → config model and a function (student output, reduced teacher target) → one loss per
example (batch,), so that methods can weight, censor or select examples before the mean."""

from typing import Callable, Literal

import torch
from pydantic import BaseModel, Field

from edgekd.config import StrictModel
from edgekd.registry import Entry

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class MseConfig(StrictModel):
    name: Literal["mse"] = "mse"


class SmoothL1Config(StrictModel):
    name: Literal["smooth_l1"] = "smooth_l1"
    beta: float = Field(1.0, gt=0)


class CosineConfig(StrictModel):
    name: Literal["cosine"] = "cosine"


class RelationalConfig(StrictModel):
    name: Literal["relational"] = "relational"
    temperature: float = Field(0.1, gt=0, description="softmax temperature over cosine similarities")


class TermConfig(StrictModel):
    name: Literal["mse", "smooth_l1", "cosine", "relational"]
    weight: float = Field(1.0, ge=0)
    beta: float = Field(1.0, gt=0, description="smooth_l1 only")
    temperature: float = Field(0.1, gt=0, description="relational only")


class CombinedConfig(StrictModel):
    name: Literal["combined"] = "combined"
    terms: list[TermConfig] = Field(min_length=1, description="weighted sum of losses")


def soft_kl_rows(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T²·KL(softmax(teacher/T) ‖ softmax(student/T)) per row: the soft-target term of KD, and the way every
    distribution (class predictions, similarities, attention) is matched here. T² keeps gradients comparable
    across temperatures (Hinton et al. 2015)."""
    teacher = torch.log_softmax(teacher_logits / temperature, -1)
    student = torch.log_softmax(student_logits / temperature, -1)
    return temperature**2 * (teacher.exp() * (teacher - student)).sum(-1)


def cosine_logits(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.nn.functional.normalize(queries, dim=-1) @ torch.nn.functional.normalize(keys, dim=-1).T / temperature


def relational_loss(temperature: float) -> LossFn:
    """Similarity mimicry: the student's distribution of similarities between the examples of a batch matches the
    teacher's — KL(teacher ‖ student) of row-wise softmaxes over cosine similarities, self-similarity left out."""

    def loss(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if len(student) < 2:
            return student.sum(1) * 0.0
        off_diagonal = ~torch.eye(len(student), dtype=torch.bool, device=student.device)
        s_logits = cosine_logits(student, student, temperature)[off_diagonal].view(len(student), -1)
        t_logits = cosine_logits(target, target, temperature)[off_diagonal].view(len(student), -1)
        return soft_kl_rows(s_logits, t_logits)

    return loss


def _combined(config: CombinedConfig) -> LossFn:
    parts = [(term.weight, build_loss(_term_config(term))) for term in config.terms]
    return lambda s, t: sum(weight * fn(s, t) for weight, fn in parts)


def _term_config(term: TermConfig) -> BaseModel:
    if term.name == "smooth_l1":
        return SmoothL1Config(beta=term.beta)
    if term.name == "relational":
        return RelationalConfig(temperature=term.temperature)
    return LOSSES[term.name].config()


LOSSES: dict[str, Entry] = {
    "mse": Entry(MseConfig, lambda c: lambda s, t: ((s - t) ** 2).mean(1), "mean squared error (the SEA loss)"),
    "smooth_l1": Entry(SmoothL1Config, lambda c: lambda s, t: torch.nn.functional.smooth_l1_loss(
                           s, t, beta=c.beta, reduction="none").mean(1), "Huber-style loss, robust to outlier targets"),
    "cosine": Entry(CosineConfig,
                        lambda c: lambda s, t: 1 - torch.nn.functional.cosine_similarity(s, t, dim=1),
                        "1 − cosine similarity: matches direction, ignores scale"),
    "relational": Entry(RelationalConfig, lambda c: relational_loss(c.temperature),
                            "similarity mimicry: match the teacher's distribution of in-batch similarities"),
    "combined": Entry(CombinedConfig, _combined, "weighted sum of the losses above"),
}


def build_loss(config: BaseModel) -> LossFn:
    return LOSSES[config.name].build(config)
