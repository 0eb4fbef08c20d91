"""What the trainer optimises: the student plus what the recipe's methods add to it, and the per-example objective
that combines their terms.

A method (edgekd/methods/, one module each) is a `Method`: it declares what it needs, prepares its supervision before
training, attaches its parts to the model (a head, a peer, a memory bank) and contributes terms to the objective.
Every teacher term is computed per example, so that methods can scale the teacher's supervision of each example
(`trust`: 1 is plain supervision, 0 leaves an example to its hard label, or out of the loss) before the mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from edgekd.losses.terms import LossFn
from edgekd.schema import StrictModel
from edgekd.students import StudentConfig

if TYPE_CHECKING:
    from edgekd.supervision import Supervision


@dataclass(frozen=True)
class MethodContext:
    """What a method reads of the run it is part of, and no more of the recipe: the seed its parts are initialised
    from, the student's config (a peer is built alike), the recipe file its errors name, and how to read the student
    of an earlier run (the attention teacher), handed in by the module that owns run directories."""

    seed: int
    student: StudentConfig
    source: str
    student_of_run: Callable[[Path], tuple[nn.Module, StudentConfig]]


class Method:
    """One distillation method. Subclasses set the class attributes and override the hooks they need."""

    name: ClassVar[str]  # its key under `methods:`, the name of its module
    config_model: ClassVar[type[StrictModel]]
    order: ClassVar[int]  # methods prepare, attach and add loss terms in this order (see methods/registry.py)
    needs_teacher: ClassVar[bool] = False  # works on the teacher's outputs
    needs_labels: ClassVar[bool] = False  # needs one class label per window
    requires: ClassVar[dict[str, str]] = {}  # other method → why this one needs it and what to do (one line)
    excludes: ClassVar[dict[str, str]] = {}  # other method → why they cannot be combined (one line)

    def __init__(self, config: StrictModel, context: MethodContext):
        self.config, self.context = config, context

    def prepare(self, supervision: Supervision) -> None:
        """Before training: add per-window rows, narrow the training windows, report."""

    def attach(self, model: DistillationModel, supervision: Supervision) -> None:
        """Add the parts this method trains or consults (modules, buffers) to the model."""

    def outputs(self, model: DistillationModel, audio: torch.Tensor, out: dict) -> None:
        """Add what this method's terms need to the forward pass's outputs (before the head reads the embedding)."""

    def teacher_rows(self, model: DistillationModel, embedding: torch.Tensor, logits: torch.Tensor | None,
                     batch: dict) -> torch.Tensor | None:
        """A per-example teacher term of one network beside the embedding loss (scaled by trust)."""
        return None

    def gap_share(self, rows: torch.Tensor) -> torch.Tensor:
        """This method's `teacher_rows` as they count in the teacher-student gap."""
        return rows

    def adjust_trust(self, model: DistillationModel, trust: torch.Tensor, gap: torch.Tensor, epoch: int
                     ) -> torch.Tensor:
        """The teacher's weight per example, given the (detached) teacher-student gap."""
        return trust

    def example_rows(self, model: DistillationModel, logits: torch.Tensor | None, batch: dict,
                     teacher_rows: torch.Tensor | None, trust: torch.Tensor) -> torch.Tensor | None:
        """A per-example term of one network's supervised objective, given this method's teacher rows and trust."""
        return None

    def loss_terms(self, model: DistillationModel, out: dict, batch: dict, epoch: int, trust: torch.Tensor
                   ) -> list[torch.Tensor]:
        """Batch-level terms added to the objective, in order."""
        return []

    def deployable(self, model: DistillationModel | None, student: nn.Module, saved: dict | None = None
                   ) -> nn.Module:
        """The student as saved and exported, with what this method ships inside it: from the trained `model`, or
        (model None) shaped to receive the `saved` state dict of a run's student.pt."""
        return student


class DistillationModel(nn.Module):
    def __init__(self, student: nn.Module, embedding_loss: LossFn, methods: list[Method]):
        super().__init__()
        self.student, self.embedding_loss = student, embedding_loss
        self.methods = methods
        self.head: nn.Module | None = None  # a classification head on the embedding, when a method adds one
        self.frozen: list[nn.Module] = []  # consulted, never trained (e.g. an attention teacher)

    @property
    def embedding_dim(self) -> int:
        return self.student.embedding_dim

    def deployable(self) -> nn.Module:
        """The model to save and export: the student, with what the methods ship inside it."""
        student = self.student
        for method in self.methods:
            student = method.deployable(self, student)
        return student

    def train(self, mode: bool = True) -> DistillationModel:
        super().train(mode)
        for module in self.frozen:  # a frozen teacher keeps its running statistics
            module.eval()
        return self

    def forward(self, audio: torch.Tensor) -> dict:
        out: dict = {"embedding": self.student(audio)}
        for method in self.methods:
            method.outputs(self, audio, out)
        if self.head is not None:
            out["logits"] = self.head(out["embedding"])
        return out

    def supervised_rows(self, embedding: torch.Tensor, logits: torch.Tensor | None, batch: dict, epoch: int,
                        trust: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example loss of one network (the student, or a peer) against the teacher and the labels, and the
        teacher trust it used: given (a peer takes the student's), or from the batch and the methods."""
        zeros = torch.zeros(len(embedding), device=embedding.device)
        embedded = self.embedding_loss(embedding, batch["target"]) if "target" in batch else zeros
        teacher = {m.name: m.teacher_rows(self, embedding, logits, batch) for m in self.methods}
        teacher = {name: rows for name, rows in teacher.items() if rows is not None}
        if trust is None:
            trust = batch.get("trust", torch.ones_like(embedded))
            gap = embedded.detach()  # the teacher-student gap decides weights; it is not itself optimised
            for method in self.methods:
                if method.name in teacher:
                    gap = gap + method.gap_share(teacher[method.name].detach())
            for method in self.methods:
                trust = method.adjust_trust(self, trust, gap, epoch)
        rows = trust * embedded
        for method in self.methods:
            extra = method.example_rows(self, logits, batch, teacher.get(method.name), trust)
            if extra is not None:
                rows = rows + extra
        return rows, trust

    def loss(self, out: dict, batch: dict, epoch: int) -> torch.Tensor:
        rows, trust = self.supervised_rows(out["embedding"], out.get("logits"), batch, epoch)
        total = rows.mean()
        for method in self.methods:
            for term in method.loss_terms(self, out, batch, epoch, trust):
                total = total + term
        return total

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
