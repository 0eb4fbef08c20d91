"""Loss registry: name → config model and a function (student output, reduced teacher target) → scalar."""

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


def relational_loss(temperature: float) -> LossFn:
    """Similarity mimicry: the student's distribution of similarities between the examples of a batch matches the
    teacher's — KL(teacher ‖ student) of row-wise softmaxes over cosine similarities, self-similarity left out."""

    def loss(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if len(student) < 2:
            return student.sum() * 0.0
        s = torch.nn.functional.normalize(student, dim=1)
        t = torch.nn.functional.normalize(target, dim=1)
        off_diagonal = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
        s_logits = (s @ s.T / temperature)[off_diagonal].view(len(s), -1)
        t_logits = (t @ t.T / temperature)[off_diagonal].view(len(s), -1)
        return torch.nn.functional.kl_div(torch.log_softmax(s_logits, 1), torch.log_softmax(t_logits, 1),
                                          reduction="batchmean", log_target=True)

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
    "mse": Entry(MseConfig, lambda c: torch.nn.functional.mse_loss, "mean squared error (the SEA loss)"),
    "smooth_l1": Entry(SmoothL1Config, lambda c: lambda s, t: torch.nn.functional.smooth_l1_loss(s, t, beta=c.beta),
                           "Huber-style loss, robust to outlier targets"),
    "cosine": Entry(CosineConfig,
                        lambda c: lambda s, t: (1 - torch.nn.functional.cosine_similarity(s, t, dim=1)).mean(),
                        "1 − cosine similarity: matches direction, ignores scale"),
    "relational": Entry(RelationalConfig, lambda c: relational_loss(c.temperature),
                            "similarity mimicry: match the teacher's distribution of in-batch similarities"),
    "combined": Entry(CombinedConfig, _combined, "weighted sum of the losses above"),
}


def build_loss(config: BaseModel) -> LossFn:
    return LOSSES[config.name].build(config)
